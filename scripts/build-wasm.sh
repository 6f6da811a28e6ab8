#!/usr/bin/env bash
# Release builds of the browser crates (engine-core and the web API) for wasm32 on stable and for
# wasm64 (Memory64, models over 4 GiB) on the image's nightly with build-std, then their sizes.
# Packages each with wasm-bindgen (into target/web-pkg/). Pass `--no-wasm64` to build wasm32
# only. Needs scripts/setup-web.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
# The one nightly this project uses: only wasm64 needs it (build-std is nightly-only).
NIGHTLY="${SLUICE_NIGHTLY:-nightly}"

timed() {
  local start=$SECONDS
  "$@"
  echo "build-wasm: '$*' took $((SECONDS - start)) s"
}

# The raw module keeps line tables (the release profile's debug setting); wasm-bindgen drops them
# and whatever the JavaScript API does not reach, which is what a page would load.
size_of() {
  local f="$target_dir/$1/release/sluice_web.wasm" pkg="$target_dir/web-pkg/$1"
  if [ ! -f "$f" ]; then
    echo "build-wasm: $1: no sluice_web.wasm under $target_dir" >&2
    exit 1
  fi
  wasm-bindgen --target web --out-dir "$pkg" "$f"
  echo "build-wasm: $1: sluice_web.wasm $(stat -c %s "$f") bytes;" \
    "after wasm-bindgen $(stat -c %s "$pkg/sluice_web_bg.wasm") bytes (+ $(stat -c %s "$pkg/sluice_web.js") bytes of JS)"
}

timed cargo build --locked --release --target wasm32-unknown-unknown -p engine-core -p sluice-web
size_of wasm32-unknown-unknown
if [ "${1:-}" != --no-wasm64 ]; then
  rustup component list --installed --toolchain "$NIGHTLY" | grep -q '^rust-src' || {
    echo "build-wasm: $NIGHTLY lacks rust-src (run scripts/setup-web.sh)" >&2
    exit 1
  }
  timed cargo "+$NIGHTLY" build --locked --release --target wasm64-unknown-unknown \
    -Zbuild-std=std,panic_abort -p engine-core -p sluice-web
  size_of wasm64-unknown-unknown
fi
