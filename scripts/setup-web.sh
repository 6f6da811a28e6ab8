#!/usr/bin/env bash
# Installs what the browser builds and tests need, skipping whatever is already there, and says
# what it did: the wasm32 target, nightly's std sources (wasm64 builds std with build-std),
# Debian's Chromium with its chromedriver, and wasm-bindgen-cli at the version of the
# `wasm-bindgen` crate the lockfile holds (its test runner must match the crate exactly).
set -euo pipefail
cd "$(dirname "$0")/.."

did() { echo "setup-web: $*"; }

if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  did "wasm32-unknown-unknown target: present"
else
  rustup target add wasm32-unknown-unknown
  did "wasm32-unknown-unknown target: installed"
fi

if rustup component list --installed --toolchain nightly | grep -q '^rust-src'; then
  did "nightly rust-src: present"
else
  rustup component add rust-src --toolchain nightly
  did "nightly rust-src: installed"
fi

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  did "chromium and chromedriver: present ($(chromium --version 2>/dev/null | head -1))"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  did "chromium and chromedriver: installed ($(chromium --version 2>/dev/null | head -1))"
else
  echo "setup-web: chromium and chromedriver are missing; install Debian's chromium and" \
    "chromium-driver (needs root)" >&2
  exit 1
fi

# The version the workspace locks; the CLI's test runner refuses a crate of another version.
want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if [ -z "$want" ]; then
  echo "setup-web: no wasm-bindgen in Cargo.lock (run cargo generate-lockfile first)" >&2
  exit 1
fi
have="$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)"
if [ "$have" = "$want" ] && command -v wasm-bindgen-test-runner >/dev/null; then
  did "wasm-bindgen-cli $want: present"
else
  # No --locked: the CLI's own lockfile names releases the registry may lack.
  cargo install wasm-bindgen-cli --version "$want"
  did "wasm-bindgen-cli $want: installed (was: ${have:-none})"
fi
