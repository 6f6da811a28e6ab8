#!/usr/bin/env bash
# The chat page's CPU speed beside wllama 3.8.1's in the same headless Chromium, same GGUF:
# our page (www/tests/bench.mjs: wasm32 and wasm64, one thread, warm model cache) and wllama at
# 1 and 2 threads (the peer harness, WLLAMA_BENCH, default ../shared/bench/wllama), then one JSON
# line of decode ratios. Needs a built page (scripts/build-page.sh) and scripts/setup-web.sh.
#
#   bash scripts/compare-wllama.sh MODEL.gguf
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:?usage: compare-wllama.sh MODEL.gguf}"
harness="${WLLAMA_BENCH:-../shared/bench/wllama}"
[ -f "$harness/run.sh" ] || { echo "compare-wllama: no $harness/run.sh (set WLLAMA_BENCH)" >&2; exit 1; }
work="${WLLAMA_WORK:-${CARGO_TARGET_DIR:-target}/wllama-bench}"
mkdir -p "$work"
ours="$(node www/tests/bench.mjs "$model")"
echo "$ours"
peer1="$(WORK="$(realpath "$work")" bash "$harness/run.sh" "$model" cpu 1 | tail -1)"
peer2="$(WORK="$(realpath "$work")" bash "$harness/run.sh" "$model" cpu 2 | tail -1)"
echo "$peer1"
echo "$peer2"
OURS="$ours" P1="$peer1" P2="$peer2" node -e '
  const ours = process.env.OURS.trim().split("\n").map((l) => JSON.parse(l));
  const [p1, p2] = [JSON.parse(process.env.P1), JSON.parse(process.env.P2)];
  const r = (a, b) => Number((a / b).toFixed(3));
  const out = {};
  for (const o of ours) {
    out[o.wasm] = { decode_vs_wllama_1t: r(o.decode_tok_s, p1.decode_tok_s), decode_vs_wllama_2t: r(o.decode_tok_s, p2.decode_tok_s),
      load_s: o.load_s, wllama_load_s: p2.load_ms / 1000, ttft_s: o.ttft_s, wllama_ttft_s: p2.ttft_ms / 1000,
      prompt_tokens: o.prompt_tokens };
  }
  console.log(JSON.stringify({ ratios: out }));'
