#!/usr/bin/env bash
# Installs what the browser builds and tests need, skipping whatever is already there, and says
# what it did: the wasm32 target, nightly's std sources (wasm64 builds std with build-std),
# Debian's Chromium with its chromedriver, wasm-bindgen-cli at the version of the
# `wasm-bindgen` crate the lockfile holds (its test runner must match the crate exactly), Trunk
# (builds the chat page) and playwright-core (npm, into www/tests/node_modules: drives Chromium
# in the chat page's test).
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

# 0.22 needs a newer rustc than the image's stable.
trunk_version=0.21.14
if [ "$(trunk --version 2>/dev/null | awk '{ print $2 }')" = "$trunk_version" ]; then
  did "trunk $trunk_version: present"
else
  cargo install trunk --locked --version "$trunk_version"
  did "trunk $trunk_version: installed"
fi

playwright_version=1.65.1
playwright_dir=www/tests
have="$(node -p "require('./$playwright_dir/node_modules/playwright-core/package.json').version" 2>/dev/null || true)"
if [ "$have" = "$playwright_version" ]; then
  did "playwright-core $playwright_version: present"
elif command -v npm >/dev/null; then
  npm install --prefix "$playwright_dir" --no-save --no-package-lock --no-audit --no-fund \
    --loglevel=error "playwright-core@$playwright_version" >/dev/null
  did "playwright-core $playwright_version: installed (was: ${have:-none})"
else
  echo "setup-web: npm missing: install Node.js 20 or newer for the chat page's test" >&2
  exit 1
fi
