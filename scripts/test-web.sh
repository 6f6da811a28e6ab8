#!/usr/bin/env bash
# The browser tests: web/tests run in headless Chromium (SwiftShader WebGPU, flags in
# web/webdriver.json): every kernel on WebGPU against the CPU backend in the same page (kernels),
# and the JavaScript API's Engine generating on both (generate); on wasm64 also a model over 4 GiB
# streaming through a 1 GiB WebGPU budget against the CPU (big_model).
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

# Libraries only: the native dev-dependencies (proptest) do not build for wasm.
timed cargo clippy --locked --target wasm32-unknown-unknown -p engine-core -p backend-webgpu \
  -p sluice-web --lib -- -D warnings
timed cargo test --locked --target wasm32-unknown-unknown -p sluice-web --test kernels --test generate
if [ "${SLUICE_WEB_WASM64:-1}" = 1 ]; then
  WASM_BINDGEN_TEST_TIMEOUT="${SLUICE_WEB_BIG_TIMEOUT:-900}" \
    timed cargo +nightly test --release --locked --target wasm64-unknown-unknown \
    -Zbuild-std=std,panic_abort -p sluice-web --test kernels --test generate --test big_model
fi
