#!/usr/bin/env bash
# Builds the chat page and serves it at http://127.0.0.1:PORT/ (default 8080) with Node's http
# module, the default model (SmolLM2-135M-Instruct Q4_1, fetched by `sluice fetch` on first use)
# at /models/default.gguf, where the page's "Default model" button looks.
#   scripts/serve-page.sh [--no-build] [--port N] [--model PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
port=8080 model="" build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --port) port="$2"; shift ;;
    --model) model="$2"; shift ;;
    *) echo "serve-page: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
  shift
done
command -v node >/dev/null || { echo "serve-page: node missing (Node.js 20 or newer)" >&2; exit 1; }
if [ "$build" = 1 ]; then
  bash scripts/build-page.sh
fi
if [ -z "$model" ]; then
  model="$(cargo run --quiet --locked -p sluice-cli -- fetch smollm2-135m-instruct-q4_1)"
fi
exec node www/serve.mjs --root www/dist --model "default.gguf=$model" --port "$port"
