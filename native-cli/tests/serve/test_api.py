"""The OpenAI API of `sluice serve`, through the official `openai` client and raw HTTP: replies,
wire shapes field by field, greedy parity with `sluice run`, bad input, auth, and metrics."""

import json
import os
import subprocess
import time

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import API_KEY, THREADS, Server, model_path, sluice_bin

MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name three colours of the rainbow."},
]


def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0)


def sluice_run(prompt, max_tokens, chat=True, system=None):
    args = [sluice_bin(), "run", "--model", model_path(), "--threads", THREADS, "--temp", "0",
            "-n", str(max_tokens)]
    if chat:
        args.append("--chat")
    if system:
        args += ["--system", system]
    out = subprocess.run(args + [prompt], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.endswith("\n")
    return out.stdout[:-1]


def tokenize(server, text, add_special=True):
    r = server.post("/tokenize", {"content": text, "add_special": add_special})
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


def test_models_lists_the_served_model(server):
    models = client(server).models.list()
    assert [m.id for m in models.data] == [os.path.basename(model_path())[: -len(".gguf")]]
    assert models.data[0].object == "model"
    assert abs(models.data[0].created - time.time()) < 3600


def test_chat_whole_and_streamed_equal_sluice_run_greedy(server):
    c = client(server)
    want = sluice_run(MESSAGES[1]["content"], 24, system=MESSAGES[0]["content"])
    before = time.time()
    r = c.chat.completions.create(model="any", messages=MESSAGES, max_tokens=24, temperature=0,
                                  logprobs=True, top_logprobs=3)
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert before - 2 <= r.created <= time.time() + 2
    assert r.model == c.models.list().data[0].id
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == want
    assert choice.finish_reason in ("stop", "length")
    # One logprobs entry per generated token, each with three alternatives, the chosen one the
    # most likely (greedy).
    content = choice.logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == want
    for t in content:
        assert len(t.top_logprobs) == 3
        assert t.logprob == pytest.approx(t.top_logprobs[0].logprob)
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 24

    chunks = list(c.chat.completions.create(model="any", messages=MESSAGES, max_tokens=24,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(ch.id == chunks[0].id and ch.object == "chat.completion.chunk" for ch in chunks)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == want
    finals = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == choice.finish_reason
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.completion_tokens == r.usage.completion_tokens
    assert usage.usage.prompt_tokens == r.usage.prompt_tokens
    # The same prompt again comes from a slot's cache (all but the last token).
    assert usage.usage.prompt_tokens_details.cached_tokens == r.usage.prompt_tokens - 1


def test_completions_text_and_token_prompts_equal_sluice_run(server):
    c = client(server)
    prompt = "The three primary colours are"
    want = sluice_run(prompt, 16, chat=False)
    r = c.completions.create(model="any", prompt=prompt, max_tokens=16, temperature=0,
                             logprobs=2)
    assert r.id.startswith("cmpl-") and r.object == "text_completion"
    assert r.choices[0].text == want
    assert r.choices[0].index == 0
    ids = tokenize(server, prompt)
    assert r.usage.prompt_tokens == len(ids)
    assert r.usage.completion_tokens == len(r.choices[0].logprobs.tokens) == 16
    assert r.choices[0].logprobs.text_offset[0] == 0
    assert all(len(t) <= 2 for t in r.choices[0].logprobs.top_logprobs)
    by_ids = c.completions.create(model="any", prompt=ids, max_tokens=16, temperature=0)
    assert by_ids.choices[0].text == want
    streamed = list(c.completions.create(model="any", prompt=prompt, max_tokens=16,
                                         temperature=0, stream=True))
    assert "".join(ch.choices[0].text for ch in streamed if ch.choices) == want
    assert streamed[-1].choices[0].finish_reason == "length"
    # Detokenizing the prompt's ids gives the prompt back.
    d = server.post("/detokenize", {"tokens": tokenize(server, prompt, add_special=False)})
    assert d.json()["content"] == prompt


def test_sampling_is_seeded_and_stop_strings_cut(server):
    c = client(server)
    ask = dict(model="any", messages=MESSAGES, max_tokens=20, temperature=0.9, top_p=0.9,
               seed=1234)
    a = c.chat.completions.create(**ask).choices[0].message.content
    b = c.chat.completions.create(**ask).choices[0].message.content
    assert a == b
    greedy = c.chat.completions.create(model="any", messages=MESSAGES, max_tokens=20,
                                       temperature=0).choices[0].message.content
    stop = greedy[5:8]
    cut = c.chat.completions.create(model="any", messages=MESSAGES, max_tokens=20,
                                    temperature=0, stop=[stop, "zzzz"])
    assert cut.choices[0].message.content == greedy[: greedy.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


BIG = "x" * (10 * 1024 * 1024)


def bad_requests():
    """(name, path, body bytes or JSON, headers, expected status, expected param or None)."""
    chat = "/v1/chat/completions"
    user = [{"role": "user", "content": "hi"}]
    return [
        ("malformed json", chat, b'{"messages": [', {}, 400, None),
        ("not an object", chat, b'[1, 2]', {}, 400, None),
        ("empty body", chat, b"", {}, 400, None),
        ("invalid utf-8", chat, b'{"messages": "\xff\xfe"}', {}, 400, None),
        ("nan literal", chat, b'{"messages": [], "temperature": NaN}', {}, 400, None),
        ("messages missing", chat, {"max_tokens": 3}, {}, 400, None),
        ("messages empty", chat, {"messages": []}, {}, 400, "messages"),
        ("messages wrong type", chat, {"messages": "hi"}, {}, 400, "messages"),
        ("unknown role", chat, {"messages": [{"role": "wizard", "content": "x"}]}, {}, 400,
         "messages[0].role"),
        ("content wrong type", chat, {"messages": [{"role": "user", "content": 7}]}, {}, 400,
         "messages[0].content"),
        ("empty user content", chat, {"messages": [{"role": "user", "content": ""}]}, {}, 400,
         "messages[0].content"),
        ("image part", chat, {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "x"}}]}]}, {}, 400, "messages[0].content"),
        ("negative temperature", chat, {"messages": user, "temperature": -0.5}, {}, 400,
         "temperature"),
        ("temperature as string", chat, {"messages": user, "temperature": "hot"}, {}, 400,
         "temperature"),
        ("huge temperature", chat, {"messages": user, "temperature": 1e300}, {}, 400,
         "temperature"),
        ("top_p zero", chat, {"messages": user, "top_p": 0}, {}, 400, "top_p"),
        ("negative top_k", chat, {"messages": user, "top_k": -3}, {}, 400, "top_k"),
        ("huge max_tokens", chat, {"messages": user, "max_tokens": 10**9}, {}, 400, "max_tokens"),
        ("zero max_completion_tokens", chat, {"messages": user, "max_completion_tokens": 0}, {},
         400, "max_completion_tokens"),
        ("n of 2", chat, {"messages": user, "n": 2}, {}, 400, "n"),
        ("presence penalty", chat, {"messages": user, "presence_penalty": 0.5}, {}, 400,
         "presence_penalty"),
        ("top_logprobs without logprobs", chat, {"messages": user, "top_logprobs": 2}, {}, 400,
         "top_logprobs"),
        ("too many top_logprobs", chat, {"messages": user, "logprobs": True, "top_logprobs": 99},
         {}, 400, "top_logprobs"),
        ("stop wrong type", chat, {"messages": user, "stop": 5}, {}, 400, "stop"),
        ("prompt longer than the context", chat,
         {"messages": [{"role": "user", "content": "word " * 5000}]}, {}, 400, "messages"),
        ("10 MB body", chat, {"messages": [{"role": "user", "content": BIG}]}, {}, 413, None),
        ("completion token out of range", "/v1/completions", {"prompt": [1, 999999]}, {}, 400,
         "prompt"),
        ("two prompts", "/v1/completions", {"prompt": ["a", "b"]}, {}, 400, "prompt"),
        ("echo", "/v1/completions", {"prompt": "a", "echo": True}, {}, 400, "echo"),
        ("detokenize bad id", "/detokenize", {"tokens": [4000000000]}, {}, 400, "tokens"),
        ("missing key", chat, {"messages": user}, {"Authorization": None}, 401, None),
        ("wrong key", chat, {"messages": user}, {"Authorization": "Bearer nope"}, 401, None),
        ("not bearer", chat, {"messages": user}, {"Authorization": API_KEY}, 401, None),
        ("unknown endpoint", "/v1/embeddings", {"input": "x"}, {}, 404, None),
    ]


@pytest.mark.parametrize("case", bad_requests(), ids=lambda c: c[0])
def test_bad_requests_get_the_right_4xx_in_openai_shape(server, case):
    name, path, body, headers, status, param = case
    h = {**server.headers(), "Content-Type": "application/json"}
    for k, v in headers.items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(server.url + path, content=content, headers=h, timeout=60)
    assert r.status_code == status, (name, r.status_code, r.text[:300])
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    if param is not None:
        assert err["param"] == param, (name, err)
    if name == "prompt longer than the context":
        # Both numbers are named: the prompt's length and the context's.
        assert "2048" in err["message"] and err["code"] == "context_length_exceeded"
    # The server keeps serving.
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200


def test_a_method_not_allowed_is_json_too(server):
    r = httpx.get(server.url + "/v1/chat/completions", headers=server.headers(), timeout=10)
    assert r.status_code == 405 and "error" in r.json()


def test_health_and_metrics_need_no_key_and_metrics_parse(server):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    c = client(server)
    c.chat.completions.create(model="any", messages=MESSAGES, max_tokens=4, temperature=0)
    text = server.metrics_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ["sluice_requests", "sluice_prompt_tokens", "sluice_prompt_tokens_reused",
                 "sluice_generated_tokens", "sluice_time_to_first_token_seconds",
                 "sluice_inter_token_latency_seconds", "sluice_queue_depth",
                 "sluice_slots_active", "sluice_slots_total", "sluice_kv_cells_used",
                 "sluice_prefetch_hits", "sluice_prefetch_sync_loads",
                 "sluice_prefetch_stall_seconds", "sluice_ready"]:
        assert name in families, (name, sorted(families))

    def value(family, sample_name=None, **labels):
        for s in families[family].samples:
            if (sample_name is None or s.name == sample_name) and all(
                    s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise AssertionError((family, labels))

    assert value("sluice_ready") == 1
    assert value("sluice_slots_total") == 4
    assert value("sluice_generated_tokens") >= 4
    assert value("sluice_prompt_tokens") > value("sluice_prompt_tokens_reused") > 0
    assert value("sluice_requests", endpoint="/v1/chat/completions", status="200") >= 1
    assert value("sluice_time_to_first_token_seconds",
                 "sluice_time_to_first_token_seconds_count") >= 1
    assert families["sluice_time_to_first_token_seconds"].type == "histogram"


def test_the_kubernetes_manifest_probes_health_and_is_scraped():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..")
    with open(os.path.join(root, "deploy", "kubernetes.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    kinds = {d["kind"]: d for d in docs}
    deployment = kinds["Deployment"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["args"][0] == "serve"
    assert "0.0.0.0" in container["args"]
    port = container["ports"][0]["containerPort"]
    assert str(port) in container["args"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": port}
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    key = [e for e in container["env"] if e["name"] == "SLUICE_API_KEY"][0]
    assert "secretKeyRef" in key["valueFrom"]
    service = kinds["Service"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_health_is_503_while_the_model_loads():
    # A slow simulated disk keeps the model loading for a few seconds.
    s = Server("--throttle", "40MB", "--parallel", "1", wait=False)
    try:
        r = httpx.get(s.url + "/health", timeout=10)
        assert r.status_code == 503 and r.json()["status"] == "loading"
        r = httpx.get(s.url + "/v1/models", headers=s.headers(), timeout=10)
        assert r.status_code == 503 and "loading" in r.json()["error"]["message"]
        assert r.headers["retry-after"]
        s.wait_ready()
        assert "curl" in s.curl_example
    finally:
        assert s.stop() == 0
