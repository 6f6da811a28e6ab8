#!/usr/bin/env python3
"""Reference renderings of chat templates by Python's jinja2, for engine-core/tests/chat_template.rs.

Run from the repository root, in a venv with `pip install jinja2==3.1.6 gguf==0.19.0`:

    python scripts/chat_template_fixture.py --smollm2 PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf

Writes fixtures/chat/templates.json: for each template (SmolLM2's real `tokenizer.chat_template`,
the ChatML template `sluice synth` writes, and a hand-written one that exercises whitespace control,
`namespace`, loop variables, string methods and `raise_exception`), the rendering of every
conversation below with and without `add_generation_prompt`, rendered as Hugging Face transformers
renders chat templates: an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the
loopcontrols extension, `raise_exception`, and `bos_token`/`eos_token` from the vocabulary.
"""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "chat" / "templates.json"

# engine-core/src/synth/vocab.rs CHAT_TEMPLATE
SYNTH_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Exercises what real templates use: block whitespace control, namespace, loop.first/last,
# slicing, string methods, filters, and raise_exception.
FEATURES = """{{ bos_token }}
{% set ns = namespace(system='') %}
{% if messages and messages[0]['role'] == 'system' %}
    {% set ns.system = messages[0]['content'].strip() %}
    {% set loop_messages = messages[1:] %}
{% else %}
    {% set loop_messages = messages %}
{% endif %}
{% if ns.system %}
<<SYS>>{{ ns.system | trim }}<</SYS>>
{% endif %}
{% for message in loop_messages %}
    {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {% endif %}
    {% if message['role'] == 'user' %}
[INST] {{ message['content'] | trim }} [/INST]
    {%- elif message['role'] == 'assistant' %}
 {{ message['content'].strip() }}{{ eos_token }}
    {% endif %}
    {% if loop.last and message['content'].startswith('Hello') %}
(greeting, {{ loop.length }} turns, {{ message['content'] | length }} chars)
    {% endif %}
{% endfor %}
{% if add_generation_prompt %}
{{ 'Assistant:' }}
{% endif %}"""

CONVERSATIONS = [
    [],
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
    [
        {"role": "system", "content": "  Answer in French.  "},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ],
    [
        {"role": "user", "content": "Multi-line\n  indented\n\ttabbed\n"},
        {"role": "assistant", "content": "Ünïcödé 你好 😀 <b>tags</b> & {{ not jinja }} {% raw %}"},
    ],
    [{"role": "user", "content": "Hello there, template"}],
    [{"role": "assistant", "content": "I speak first."}],
]


def render_all(source: str, bos: str, eos: str) -> list[dict]:
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    template = env.from_string(source)
    cases = []
    for messages in CONVERSATIONS:
        for add in (False, True):
            case = {"messages": messages, "add_generation_prompt": add}
            try:
                case["output"] = template.render(messages=messages, add_generation_prompt=add,
                                                 bos_token=bos, eos_token=eos)
            except jinja2.exceptions.TemplateError as e:
                case["error"] = str(e)
            cases.append(case)
    return cases


def smollm2_template(path: str) -> tuple[str, str, str]:
    import gguf

    r = gguf.GGUFReader(path)

    def field_str(key: str) -> str:
        f = r.fields[key]
        return bytes(f.parts[f.data[0]]).decode("utf-8")

    tokens = r.fields["tokenizer.ggml.tokens"]

    def token(key: str) -> str:
        f = r.fields[key]
        return bytes(tokens.parts[tokens.data[int(f.parts[f.data[0]][0])]]).decode("utf-8")

    return (field_str("tokenizer.chat_template"), token("tokenizer.ggml.bos_token_id"),
            token("tokenizer.ggml.eos_token_id"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smollm2", required=True, help="SmolLM2-135M-Instruct GGUF (`sluice fetch`)")
    args = p.parse_args()
    source, bos, eos = smollm2_template(args.smollm2)
    templates = [
        {"name": "smollm2", "source": source, "bos_token": bos, "eos_token": eos,
         "from": Path(args.smollm2).name},
        {"name": "synth-chatml", "source": SYNTH_CHATML, "bos_token": "<|im_start|>",
         "eos_token": "<|im_end|>"},
        {"name": "features", "source": FEATURES, "bos_token": "<s>", "eos_token": "</s>"},
    ]
    for t in templates:
        t["cases"] = render_all(t["source"], t["bos_token"], t["eos_token"])
    out = {
        "generator": "scripts/chat_template_fixture.py",
        "jinja2": version("jinja2"),
        "environment": "ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, "
        "extensions=[loopcontrols]) + raise_exception, as transformers renders chat templates",
        "templates": templates,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    n = sum(len(t["cases"]) for t in templates)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(templates)} templates, {n} renderings")


if __name__ == "__main__":
    main()
