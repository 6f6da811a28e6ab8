#!/usr/bin/env bash
# The browser tests: web/tests run in headless Chromium (SwiftShader WebGPU, flags in
# web/webdriver.json): every kernel on WebGPU against the CPU backend in the same page (kernels),
# and the JavaScript API's Engine generating on both (generate), loading by File and URL (load);
# on wasm64 also a model over 4 GiB streaming through a 1 GiB WebGPU budget against the CPU
# (big_model); then the chat page (www/, built with Trunk) in Chromium driven by playwright-core,
# with the real SmolLM2 (SLUICE_TEST_MODEL_SMOLLM2; without it that step says it skips).
# wasm32 on stable, then wasm64 on the shipped nightly with build-std (SLUICE_WEB_WASM64=0 skips it),
# optimized: big_model writes and runs 4.2 GiB of weights.
# The WebGPU adapter is required here (SLUICE_REQUIRE_WEBGPU=1 unless set otherwise): with
# Chromium's flags SwiftShader always provides one, so a missing adapter is a failure, not a skip.
# Needs scripts/setup-web.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
export SLUICE_REQUIRE_WEBGPU="${SLUICE_REQUIRE_WEBGPU:-1}"
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/web/webdriver.json"
# The first test compiles every pipeline on a software adapter: more than the default 20 s.
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-120}"
for tool in wasm-bindgen-test-runner chromedriver chromium; do
  command -v "$tool" >/dev/null || { echo "test-web: $tool missing (run scripts/setup-web.sh)" >&2; exit 1; }
done

timed() {
  local start=$SECONDS
  "$@"
  echo "test-web: '$*' took $((SECONDS - start)) s"
}

# Libraries only: the native dev-dependencies (proptest) do not build for wasm; then the browser
# tests themselves.
timed cargo clippy --locked --target wasm32-unknown-unknown -p engine-core -p backend-webgpu \
  -p sluice-web -p sluice-www --lib -- -D warnings
timed cargo clippy --locked --target wasm32-unknown-unknown -p sluice-web --tests -- -D warnings
timed cargo test --locked --target wasm32-unknown-unknown -p sluice-web --test kernels --test generate --test load
if [ "${SLUICE_WEB_WASM64:-1}" = 1 ]; then
  WASM_BINDGEN_TEST_TIMEOUT="${SLUICE_WEB_BIG_TIMEOUT:-900}" \
    timed cargo +nightly test --release --locked --target wasm64-unknown-unknown \
    -Zbuild-std=std,panic_abort -p sluice-web --test kernels --test generate --test load \
    --test big_model
fi

# The chat page: Trunk build, then loading SmolLM2 by URL on WebGPU and the CPU, the model cache,
# an interrupted download and a refused quota (www/tests/chat.test.mjs).
if [ -z "${SLUICE_TEST_MODEL_SMOLLM2:-}" ]; then
  echo "test-web: chat page test skipped: SLUICE_TEST_MODEL_SMOLLM2 is not set"
else
  missing=""
  for tool in trunk wasm-bindgen node; do
    command -v "$tool" >/dev/null || missing="$missing $tool"
  done
  [ -d www/tests/node_modules/playwright-core ] || missing="$missing playwright-core"
  if [ -z "$missing" ]; then
    timed bash scripts/build-page.sh
    timed node www/tests/chat.test.mjs
  elif [ "${SLUICE_REQUIRE_BROWSER:-0}" = 1 ]; then
    echo "test-web: SLUICE_REQUIRE_BROWSER=1 but the chat page test lacks:$missing (run scripts/setup-web.sh)" >&2
    exit 1
  else
    echo "test-web: chat page test skipped: missing$missing (run scripts/setup-web.sh)"
  fi
fi
