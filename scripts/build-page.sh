#!/usr/bin/env bash
# Builds the chat page (www/) with Trunk into www/dist: a release wasm32 build of the sluice-www
# crate, wasm-bindgen'd for the web. Offline: Trunk must find wasm-bindgen on PATH at the version
# Cargo.lock holds (scripts/setup-web.sh installs it and Trunk). wasm-opt is off in index.html
# (Debian's binaryen miscompiles; see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in trunk wasm-bindgen; do
  command -v "$tool" >/dev/null || { echo "build-page: $tool missing (run scripts/setup-web.sh)" >&2; exit 1; }
done
# Trunk runs cargo from www/: the workspace's .cargo/config.toml gives it web-sys's WebGPU cfg.
cd www
trunk build --release --offline --locked "$@"
echo "build-page: www/dist: $(du -sh dist | cut -f1) ($(ls dist | tr '\n' ' '))"
