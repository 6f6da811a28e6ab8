#!/usr/bin/env bash
# Builds the chat page (www/) with Trunk into www/dist: a release wasm32 build of the sluice-www
# crate, wasm-bindgen'd for the web. Offline: Trunk must find wasm-bindgen on PATH at the version
# Cargo.lock holds (scripts/setup-web.sh installs it and Trunk). wasm-opt is off in index.html
# (Debian's binaryen miscompiles; see the README). Then the same crate for wasm64 (Memory64, for
# models over 4 GiB; nightly with build-std, as scripts/build-wasm.sh) into www/dist/wasm64/,
# which the page imports when a model needs it; SLUICE_PAGE_WASM64=0 or a nightly without
# rust-src leaves it out (the page then says so when asked for wasm64).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in trunk wasm-bindgen; do
  command -v "$tool" >/dev/null || { echo "build-page: $tool missing (run scripts/setup-web.sh)" >&2; exit 1; }
done
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
nightly="${SLUICE_NIGHTLY:-nightly}"
# Trunk runs cargo from www/: the workspace's .cargo/config.toml gives it web-sys's WebGPU cfg.
(cd www && trunk build --release --offline --locked "$@")
if [ "${SLUICE_PAGE_WASM64:-1}" != 1 ]; then
  echo "build-page: wasm64 module skipped (SLUICE_PAGE_WASM64=${SLUICE_PAGE_WASM64})"
elif ! rustup component list --installed --toolchain "$nightly" 2>/dev/null | grep -q '^rust-src'; then
  echo "build-page: wasm64 module skipped: $nightly lacks rust-src (run scripts/setup-web.sh)"
else
  # After Trunk, which replaces dist/ whole.
  cargo "+$nightly" build --locked --release --target wasm64-unknown-unknown \
    -Zbuild-std=std,panic_abort -p sluice-www
  wasm-bindgen --target web --out-dir www/dist/wasm64 \
    "$target_dir/wasm64-unknown-unknown/release/sluice_www.wasm"
fi
echo "build-page: www/dist: $(du -sh www/dist | cut -f1) ($(ls www/dist | tr '\n' ' '))"
