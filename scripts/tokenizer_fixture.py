#!/usr/bin/env python3
"""Oracle fixtures for the Sluice tokenizer, produced by llama.cpp (through llama-cpp-python).

Two subcommands, run from the repository root:

    python scripts/tokenizer_fixture.py fixture [--smollm2 PATH] [--gemma3 PATH] [--sluice BIN]
    python scripts/tokenizer_fixture.py unicode-table --llama-src DIR

`fixture` writes fixtures/tokenizer/corpus.json (the strings) and one fixtures/tokenizer/MODEL.json per
model with llama.cpp's token ids for every corpus string, its detokenization, and the vocabulary facts
(BOS/EOS/EOT ids, add_bos/add_eos, the end-of-generation set). Models:

  * smollm2: the real SmolLM2-135M-Instruct GGUF (byte-level BPE, pre-tokenizer "smollm");
  * gemma3: the real Gemma 3 270M GGUF (SentencePiece);
  * synth-PRE: the vocabulary `sluice synth --vocab 4096` writes (seed 0; the tokenizer section depends
    on the vocabulary size only), with `tokenizer.ggml.pre` rewritten to PRE. The Rust test rebuilds the
    same vocabulary with `engine_core::synth` (SYNTH_VOCAB below must match SYNTH_VOCAB there).

Needs a venv with `pip install llama-cpp-python==0.3.36 gguf==0.19.0`. Every output records the
versions and options used.

`unicode-table` regenerates engine-core/src/tokenizer/unicode_data.rs from llama.cpp's own
src/unicode-data.cpp (the category ranges and the whitespace set its pre-tokenizers use), so the Rust
splitter sees exactly the categories llama.cpp sees.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "fixtures" / "tokenizer"
UNICODE_RS = ROOT / "engine-core" / "src" / "tokenizer" / "unicode_data.rs"

# Keep in step with engine-core/tests/tokenizer_parity.rs.
SYNTH_VOCAB = 4096
SYNTH_SEED = 0
SYNTH_PRES = ["default", "gpt-2", "llama-bpe", "qwen2", "qwen35", "smollm"]

# Every EVERY-th corpus string is also tokenized with add_special=True and with parse_special=False.
EVERY = 4


# ----------------------------------------------------------------------------------------------------
# corpus


def build_corpus() -> list[str]:
    c: list[str] = []
    add = c.append

    # empty and whitespace
    add("")
    for ws in [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "\n\n\n", " \n", "\n ", " \t ", "\t\t",
               "\r", "\u00a0", "\u3000", "\u2003 ", "\u0085", "\x0b\x0c"]:
        add(ws)
    for w in ["hello", "Hello world", "a b", "x"]:
        add(" " + w)
        add("  " + w)
        add(w + " ")
        add(w + "  ")
        add("\n" + w + "\n")
        add("\t" + w)
    add("Hello  world")
    add("Hello   world")
    add("Hello \n world")
    add("Hello\n\nworld")
    add("Hello \t\n  world   ")
    add("a\r\nb\r\n")
    add("line one\nline two\n\nline four")
    add("    indented four\n        eight\n")
    add("trailing spaces    ")
    add("   leading and trailing   ")
    add(" " * 17 + "x")
    add("\n" * 5 + "x" + "\n" * 3)
    add("\t" * 4 + "tabs\t\ttabs")
    add("word\u00a0word\u2009word\u202fword")

    # english, contractions, casing
    for s in [
        "The quick brown fox jumps over the lazy dog.",
        "THE QUICK BROWN FOX",
        "it's", "don't", "we're", "they've", "I'm", "you'll", "he'd",
        "IT'S", "DON'T", "We'RE", "They'Ve", "I'M", "You'LL", "He'D",
        "'s 't 're 've 'm 'll 'd", "rock 'n' roll", "' s", "''", "'",
        "O'Neil's dog's bone", "can't won't shan't", "ma'am", "y'all'd've",
        "Hello, world!", "Hello , world !", "What? No! Yes. Maybe, maybe not.",
        "e.g. i.e. etc.", "Mr. Smith went to Washington.", "ALL CAPS and lower and MiXeD",
        "camelCaseIdentifier", "snake_case_identifier", "SCREAMING_SNAKE", "kebab-case-word",
        "supercalifragilisticexpialidocious", "a", "I", "aa bb cc dd", "zzzzzzzzzzzzzzzz",
        "quotes \"double\" and 'single' and `back`", "(parens) [brackets] {braces} <angles>",
        "a...b", "wait—what–now", "semi;colon:colon", "hash#tag @mention $dollar %percent",
        "^caret &amp *star +plus =eq |pipe ~tilde", "back\\slash /slash",
        "!!!???...", "--- *** ___ ===", "~~~", "?!", "…", "«guillemets» „quotes“ ‘single’ “double”",
    ]:
        add(s)

    # digits
    for n in [0, 7, 42, 123, 1234, 12345, 123456, 1234567, 12345678, 123456789, 1234567890,
              98765432109876543210]:
        add(str(n))
        add(" " + str(n))
    for s in ["3.14159", "-273.15", "1,000,000", "1e-10", "0x1F", "0b1010", "v1.2.3", "2024-05-17",
              "12:30:45", "+1 (555) 123-4567", "a1b2c3", "abc123def", "123abc", "1 2 3 4 5",
              "10%", "$19.99", "€5", "1/2", "½ ¼ ¾", "²³¹", "Ⅻ ⅻ", "٣٤٥", "१२३", "１２３", "①②③",
              "𝟙𝟚𝟛", "0000", "007", "1000000000000000000000000", "12 345 6789",
              "x=1+2*3-4/5", "1.2.3.4", "255.255.255.0"]:
        add(s)

    # scripts
    for s in [
        "Ünïcödé façade naïve café résumé", "Straße", "ÆØÅ æøå", "Łódź", "İstanbul ıi",
        "Привет, мир!", "Съешь же ещё этих мягких французских булок",
        "Γειά σου Κόσμε", "שלום עולם", "مرحبا بالعالم", "سلام دنیا",
        "नमस्ते दुनिया", "হ্যালো বিশ্ব", "வணக்கம் உலகம்", "สวัสดีชาวโลก", "ສະບາຍດີ",
        "Xin chào thế giới", "안녕하세요 세계", "こんにちは世界", "カタカナ ひらがな 漢字",
        "你好，世界！", "我爱自然语言处理。", "中文English混合mixed", "繁體中文測試",
        "ქართული", "Հայերեն", "አማርኛ", "ᏣᎳᎩ", "ᚠᚢᚦᚨᚱᚲ", "𐌰𐌱𐌲", "𓀀𓀁𓀂",
        "e\u0301 a\u0300 o\u0308", "n\u0303", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319algo",
        "\u0915\u094d\u0937", "\u200b zero\u200bwidth", "\ufeffBOM", "\u200d", "soft\u00adhyphen",
        "\u202eRTL override", "\u00e9\u0065\u0301", "ﬁ ﬂ ﬀ", "Ａｂｃ　ｄｅｆ", "ｶﾀｶﾅ",
        "\u0000null", "bell\u0007", "\x1b[31mred\x1b[0m", "\x7f", "\U0010fffd", "\ue000 private",
        "\ufffd", "\uffff", "\U0001fbf0",
    ]:
        add(s)

    # emoji
    for s in [
        "😀", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷🇯🇵🇺🇸", "❤️", "☺", "✔️ done", "🔥🔥🔥",
        "emoji 🎉 in text 🚀!", "🧑🏿‍💻", "👁️‍🗨️", "1️⃣ #️⃣", "🙂 🙃", "🫠", "©®™", "★☆✦",
        "←↑→↓", "∀x∈ℝ: x²≥0", "∑∫√∞≈≠", "¯\\_(ツ)_/¯", "( ͡° ͜ʖ ͡°)",
    ]:
        add(s)

    # code
    for s in [
        "def foo(x):\n    return x + 1\n",
        "fn main() {\n    println!(\"Hello, {}!\", name);\n}\n",
        "#include <stdio.h>\nint main(void) { return 0; }",
        "for (int i = 0; i < n; ++i) { a[i] = b[i] * 2; }",
        "const x = () => { console.log(`template ${x}`); };",
        "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';",
        "<div class=\"main\"><p>Hi &amp; bye</p></div>",
        "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
        "key: value\nlist:\n  - one\n  - two\n",
        "if x == 1:\n\tpass\nelif x != 2:\n\t\tpass",
        "let v: Vec<u32> = (0..10).map(|i| i * i).collect();",
        "public static void main(String[] args) throws Exception {}",
        "    x = y  # comment\n",
        "/* block */ // line\n#!/bin/bash\necho $HOME && ls -la | grep foo",
        "a<<=2; b>>=3; c**=4; d//=5; e!==f; g===h; i=>j; k->l; m::n",
        "$ pip install -U package==1.2.3",
        "```python\nprint('hi')\n```",
        "\\begin{equation} E = mc^2 \\end{equation}",
        "regex: ^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\\.[a-zA-Z0-9-.]+$",
        "0xDEADBEEF & 0xff | 1 << 8",
    ]:
        add(s)

    # urls, paths, mail
    for s in [
        "https://example.com/path?query=1&b=two#frag",
        "http://localhost:8080/api/v1/users/123",
        "ftp://files.example.org/pub/file.tar.gz",
        "user.name+tag@example.co.uk",
        "C:\\Users\\Name\\Documents\\file.txt",
        "/usr/local/bin/python3",
        "www.example.com",
        "https://ja.wikipedia.org/wiki/日本語",
    ]:
        add(s)

    # special tokens' text (matched only with parse_special, per model)
    for s in [
        "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<bos>", "<eos>", "<pad>", "<unk>", "<mask>",
        "<start_of_turn>", "<end_of_turn>", "<s>", "</s>", "<|begin_of_text|>",
        "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
        "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>",
        "text<|endoftext|>more text", "<|im_end|><|im_end|>", "<|im_start|> spaced <|im_end|>",
        " <|im_start|>", "<|im_start|> ", "<|im_start", "im_start|>", "<|IM_START|>",
        "<|im_start|><|im_start|>system", "<|endoftext|>\n\n<|endoftext|>",
        "<repo_name>sluice<file_sep>src/main.rs\n", "<table><tr><td>1</td></tr></table>",
        "<h1>Title</h1><p>para</p>", "<b>bold</b> <i>it</i> <s>strike</s>", "<unused0><unused99>",
        "<start_of_image>", "[multimodal]", "<<|im_end|>>", "<|<|im_start|>|>",
        "<0x41>", "▁", "▁▁hello▁", "Ġhello", "Ċ",
    ]:
        add(s)

    # generated: whitespace runs before words/digits/punctuation
    for n in [1, 2, 3, 4, 7, 16]:
        for tail in ["x", "1", ".", "\n", "é"]:
            add(" " * n + tail)
            add("\t" * min(n, 3) + tail)
            add("a" + " " * n + tail)
    # digit runs of every length up to 12, alone, after letters and spaces
    for n in range(1, 13):
        digits = "".join(str((i * 7 + 3) % 10) for i in range(n))
        add(digits)
        add("x" + digits)
        add("  " + digits + " ")
    # mixed paragraphs
    add("In 2023, the company's revenue grew 15% to $4.2B — beating analysts' estimates (¥600B).")
    add("Les élèves n'ont pas vu l'arc-en-ciel aujourd'hui; c'était dommage!")
    add("Der Fluß fließt durch Köln, Düsseldorf und Mainz.")
    add("日本語の文章には、漢字・ひらがな・カタカナが混ざっています。")
    add("Mixed 中文 and English with 数字 123 and emoji 😊.")
    add("Tab\tseparated\tvalues\n1\t2\t3\n")
    add("A" * 64)
    add("ab" * 40)
    add("The end.\n")
    return list(dict.fromkeys(c))  # first occurrence of each string, in order


# ----------------------------------------------------------------------------------------------------
# llama.cpp oracle


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def detokenize(llama_cpp, vocab, ids: list[int]) -> bytes:
    """llama_detokenize(remove_special=False, unparse_special=True)."""
    arr = (llama_cpp.llama_token * max(len(ids), 1))(*ids)
    size = 256 + 64 * len(ids)
    while True:
        buf = (llama_cpp.c_char * size)() if hasattr(llama_cpp, "c_char") else None
        if buf is None:
            import ctypes
            buf = (ctypes.c_char * size)()
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, False, True)
        if n < 0:
            size = -n + 16
            continue
        return bytes(buf[:n])


def run_model(path: Path, corpus: list[str], name: str, extra: dict) -> dict:
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)

    def tok(text: str, add: bool, special: bool) -> list[int]:
        return list(llm.tokenize(text.encode("utf-8"), add_bos=add, special=special))

    def opt_id(x: int):
        return None if x < 0 else int(x)

    ids, detok, ids_add, ids_noparse = [], [], {}, {}
    for i, s in enumerate(corpus):
        t = tok(s, False, True)
        ids.append(t)
        d = detokenize(llama_cpp, vocab, t)
        try:
            detok.append(d.decode("utf-8"))
        except UnicodeDecodeError:
            detok.append({"hex": d.hex()})
        if i % EVERY == 0:
            ids_add[str(i)] = tok(s, True, True)
            ids_noparse[str(i)] = tok(s, False, False)

    eog = [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)]
    return {
        "model": name,
        "file": path.name,
        "file_sha256": sha256(path),
        **extra,
        "generator": "scripts/tokenizer_fixture.py",
        "llama_cpp_python": version("llama-cpp-python"),
        "options": {
            "ids": "llm.tokenize(text.encode(), add_bos=False, special=True)",
            "ids_add_special": f"every {EVERY}th string: add_bos=True, special=True",
            "ids_no_parse_special": f"every {EVERY}th string: add_bos=False, special=False",
            "detok": "llama_detokenize(ids, remove_special=False, unparse_special=True); "
            "{'hex': ...} where not valid UTF-8",
        },
        "vocab": {
            "n_tokens": n_vocab,
            "bos": opt_id(llama_cpp.llama_vocab_bos(vocab)),
            "eos": opt_id(llama_cpp.llama_vocab_eos(vocab)),
            "eot": opt_id(llama_cpp.llama_vocab_eot(vocab)),
            "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
            "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
            "eog": eog,
        },
        "ids": ids,
        "ids_add_special": ids_add,
        "ids_no_parse_special": ids_noparse,
        "detok": detok,
    }


def synth_model(sluice: str, pre: str, tmp: Path) -> Path:
    """`sluice synth --vocab SYNTH_VOCAB` with tokenizer.ggml.pre rewritten to `pre`."""
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    base = tmp / "synth.gguf"
    if not base.exists():
        subprocess.run([sluice, "synth", "--vocab", str(SYNTH_VOCAB), "--seed", str(SYNTH_SEED),
                        "--out", str(base)], check=True, stdout=subprocess.DEVNULL)
    out = tmp / f"synth-{pre}.gguf"
    reader = gguf.GGUFReader(base, "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    writer = gguf.GGUFWriter(out, arch=arch.contents(), endianess=reader.endianess)
    new = {"tokenizer.ggml.pre": MetadataDetails(gguf.GGUFValueType.STRING, pre)}
    copy_with_new_metadata(reader, writer, new, [])
    return out


def cmd_fixture(args) -> None:
    corpus = build_corpus()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    corpus_json = json.dumps(corpus, ensure_ascii=False, indent=0)
    (OUT_DIR / "corpus.json").write_text(corpus_json + "\n", encoding="utf-8")
    corpus_sha = hashlib.sha256((corpus_json + "\n").encode("utf-8")).hexdigest()
    print(f"corpus: {len(corpus)} strings")

    jobs: list[tuple[str, Path, dict]] = []
    if args.smollm2:
        jobs.append(("smollm2", Path(args.smollm2), {}))
    if args.gemma3:
        jobs.append(("gemma3", Path(args.gemma3), {}))
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        if args.sluice:
            for pre in SYNTH_PRES:
                path = synth_model(args.sluice, pre, tmp)
                jobs.append((f"synth-{pre}", path, {
                    "synth": {"command": f"sluice synth --vocab {SYNTH_VOCAB} --seed {SYNTH_SEED}",
                              "vocab": SYNTH_VOCAB, "seed": SYNTH_SEED, "pre": pre}}))
        for name, path, extra in jobs:
            data = run_model(path, corpus, name, extra)
            data["corpus_sha256"] = corpus_sha
            if "synth" in data:
                # The file is rebuilt in the test; its hash is not an identity worth keeping.
                data.pop("file_sha256")
                data.pop("file")
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            (OUT_DIR / f"{name}.json").write_text(text + "\n", encoding="utf-8")
            print(f"{name}: {len(corpus)} strings, {sum(map(len, data['ids']))} ids")


# ----------------------------------------------------------------------------------------------------
# unicode table


def cmd_unicode_table(args) -> None:
    src_path = Path(args.llama_src) / "src" / "unicode-data.cpp"
    src = src_path.read_text(encoding="utf-8")
    m = re.search(r"unicode_ranges_flags = \{[^\n]*\n(.*?)\n\};", src, re.S)
    ranges = [(int(a, 16), int(b, 16))
              for a, b in re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+)\}", m.group(1))]
    w = re.search(r"unicode_set_whitespace = \{\n(.*?)\n\};", src, re.S)
    ws = sorted(int(x, 16) for x in re.findall(r"0x([0-9A-F]+)", w.group(1)))
    names = {0x00: "X", 0x01: "U", 0x02: "N", 0x04: "L", 0x08: "Z", 0x10: "M", 0x20: "P",
             0x40: "S", 0x80: "C"}
    assert ranges[0][0] == 0 and ranges[-1] == (0x110000, 0)
    lines = [
        "//! Generated by `scripts/tokenizer_fixture.py unicode-table` from llama.cpp's",
        "//! src/unicode-data.cpp (MIT licence), which derives it from the Unicode Character Database:",
        "//! the general category of every code point as llama.cpp's pre-tokenizers see it, and the",
        "//! code points they treat as whitespace. Do not edit by hand.",
        "",
        "use super::unicode::category::{C, L, M, N, P, S, U, X, Z};",
        "",
        "/// `(first code point, category)`; a range runs to the next entry's first code point.",
        "#[rustfmt::skip]",
        f"pub(super) static CATEGORY_RANGES: [(u32, u8); {len(ranges)}] = [",
    ]
    row = []
    for cp, flag in ranges:
        row.append(f"(0x{cp:05X}, {names[flag]})")
        if len(row) == 8:
            lines.append("    " + ", ".join(row) + ",")
            row = []
    if row:
        lines.append("    " + ", ".join(row) + ",")
    lines.append("];")
    lines.append("")
    lines.append("/// Code points llama.cpp's `\\s` matches, ascending.")
    lines.append("#[rustfmt::skip]")
    lines.append(f"pub(super) static WHITESPACE: [u32; {len(ws)}] = [")
    for i in range(0, len(ws), 8):
        lines.append("    " + ", ".join(f"0x{x:04X}" for x in ws[i:i + 8]) + ",")
    lines.append("];")
    UNICODE_RS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {UNICODE_RS.relative_to(ROOT)}: {len(ranges)} ranges, {len(ws)} whitespace")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixture", help="write fixtures/tokenizer/*.json")
    f.add_argument("--smollm2", help="SmolLM2-135M-Instruct GGUF (`sluice fetch`)")
    f.add_argument("--gemma3", help="Gemma 3 270M GGUF (`sluice fetch gemma3-270m-q4_k_m`)")
    f.add_argument("--sluice", help="a sluice binary, to synthesize the BPE vocabularies")
    u = sub.add_parser("unicode-table", help="regenerate engine-core/src/tokenizer/unicode_data.rs")
    u.add_argument("--llama-src", required=True, help="a llama.cpp source tree")
    args = p.parse_args()
    {"fixture": cmd_fixture, "unicode-table": cmd_unicode_table}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
