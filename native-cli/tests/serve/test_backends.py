"""`sluice serve` on the other ways the engine runs: a model streamed under a device budget (its
batched replies equal the resident server's, and the prefetch counters move), and WebGPU (skipped
with a reason where no adapter is found, unless SLUICE_REQUIRE_WEBGPU=1)."""

import os
import subprocess
import threading

import pytest

from conftest import Server, model_path, sluice_bin

ASKS = ["Name a fruit.", "What colour is the sky?"]


def replies(server, max_tokens=12):
    out = {}

    def one(i):
        r = server.post("/v1/chat/completions",
                        {"messages": [{"role": "user", "content": ASKS[i]}],
                         "max_tokens": max_tokens, "temperature": 0})
        assert r.status_code == 200, r.text
        out[i] = r.json()["choices"][0]["message"]["content"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(ASKS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [out[i] for i in range(len(ASKS))]


def metric(server, name):
    for line in server.metrics_text().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name)


def test_a_streamed_model_serves_the_same_batched_replies(server):
    want = replies(server)
    s = Server("--device-mem", "40MiB", "--parallel", "2")
    try:
        assert replies(s) == want
        assert metric(s, "sluice_prefetch_hits_total") + metric(
            s, "sluice_prefetch_sync_loads_total") > 0
    finally:
        assert s.stop() == 0, "".join(s.stderr)


def webgpu_available():
    probe = subprocess.run([sluice_bin(), "run", "--backend", "webgpu", "--model", model_path(),
                            "-n", "1", "--temp", "0", "Hi"], capture_output=True, text=True,
                           timeout=300)
    return probe.returncode == 0, probe.stderr.strip()[-300:]


def test_webgpu_serves_what_sluice_run_on_webgpu_gives():
    ok, why = webgpu_available()
    if not ok:
        if os.environ.get("SLUICE_REQUIRE_WEBGPU") == "1":
            pytest.fail(f"SLUICE_REQUIRE_WEBGPU=1 but WebGPU did not start: {why}")
        pytest.skip(f"no WebGPU adapter: {why}")
    run = subprocess.run([sluice_bin(), "run", "--backend", "webgpu", "--model", model_path(),
                          "--chat", "--temp", "0", "-n", "8", ASKS[0]], capture_output=True,
                         text=True, timeout=300, check=True)
    s = Server("--backend", "webgpu", "--parallel", "2")
    try:
        got = replies(s, max_tokens=8)
        assert got[0] == run.stdout[:-1]
    finally:
        assert s.stop() == 0, "".join(s.stderr)
