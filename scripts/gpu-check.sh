#!/usr/bin/env bash
# The one GPU check (issue: "GPUs for real"): every CUDA test with SLUICE_REQUIRE_CUDA=1, the WebGPU
# tests on the GPU's own Vulkan driver when it has one, and the decode benchmarks (SmolLM2 when its
# file is given, a synth 7B-shaped Q4_0 model resident and streamed under a quarter of its size,
# each against the bandwidths measured in the same run), written as one JSON report.
#
#   scripts/gpu-check.sh [--dry-run] [--bundle-only] [--out FILE]
#
# GPU machines here have no Rust toolchain and no network, so the binaries come from a bundle:
# where cargo exists this script builds them (release, stripped) into $SLUICE_GPU_BUNDLE (default
# .gpu-bundle/, ignored by git); where it does not, it runs the bundle it finds. `--bundle-only`
# builds the bundle and stops (run it on the build machine, then carry .gpu-bundle over).
#
# --dry-run: no GPU needed. Builds (the dev profile the test command already built, unless
# SLUICE_GPU_CHECK_PROFILE says otherwise), runs every step whose tools exist (the PTX test with
# NVRTC; the benchmarks on the CPU backend with a small synth model), skips the GPU steps with the
# reason, and writes the same report, so its plumbing is tested on every commit.
#
# Environment:
#   SLUICE_NVRTC_DIR           a `pip install --target DIR nvidia-cuda-nvrtc-cu12==12.9.*` folder
#                              (or any folder holding libnvrtc.so.12); default: the user cache's
#   SLUICE_TEST_MODEL_SMOLLM2  the SmolLM2-135M-Instruct Q4_1 file (its steps skip without it)
#   SLUICE_GPU_BUNDLE          the bundle folder (default .gpu-bundle; target/gpu-check/bundle
#                              in a dry run)
#   SLUICE_GPU_CHECK_WORK      scratch for synth models (default: a temporary folder)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

dry_run=0 bundle_only=0 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --bundle-only) bundle_only=1 ;;
    --out) out=${2:?--out needs a file}; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] || out="${OUT:-$root/target}/gpu-check.json"
mkdir -p "$(dirname "$out")"

# A dry run's bundle (dev binaries) stays under target/, away from the one a GPU machine runs.
bundle="${SLUICE_GPU_BUNDLE:-$([ $dry_run = 1 ] && echo "$root/target/gpu-check/bundle" || echo "$root/.gpu-bundle")}"
profile="${SLUICE_GPU_CHECK_PROFILE:-$([ $dry_run = 1 ] && echo dev || echo release)}"
if [ -n "${SLUICE_GPU_CHECK_WORK:-}" ]; then
  work=$SLUICE_GPU_CHECK_WORK
  mkdir -p "$work"
else
  # A temporary folder goes when the script does (the 7B model alone is 3.6 GiB).
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
steps="$work/steps.jsonl"
: >"$steps"
logs="$work/logs"
mkdir -p "$logs"
started=$(date +%s)

# One line of the report per step: name, status (pass/fail/skip), seconds, reason or log tail,
# and the JSON a benchmark printed.
record() { # name status seconds reason [json-file]
  python3 - "$@" >>"$steps" <<'PY'
import json, sys
name, status, secs, reason = sys.argv[1:5]
row = {"name": name, "status": status, "seconds": float(secs), "detail": reason}
if len(sys.argv) > 5:
    try:
        row["result"] = json.load(open(sys.argv[5]))
    except (OSError, ValueError) as e:
        row["status"], row["detail"] = "fail", f"{reason}; its JSON did not parse: {e}"
print(json.dumps(row))
PY
  echo "gpu-check: $1: $2${4:+ ($4)}" >&2
}
skip() { record "$1" skip 0 "$2"; }

# Runs a step's command with its log kept; records pass or fail with the log's last lines.
run_step() { # name command...
  local name=$1; shift
  local t0=$(date +%s) log="$logs/$name.log" rc=0
  "$@" >"$log" 2>&1 || rc=$?
  if [ $rc = 0 ]; then
    record "$name" pass $(($(date +%s) - t0)) "$(tail -c 600 "$log" | tr '\n' ' ')"
  else
    record "$name" fail $(($(date +%s) - t0)) "exit $rc: $(tail -c 1500 "$log" | tr '\n' ' ')"
  fi
}

# A benchmark: `sluice bench` JSON on stdout, kept in the report.
bench_step() { # name bench-args...
  local name=$1; shift
  local t0=$(date +%s) json="$work/$name.json" rc=0
  "$bundle/bin/sluice" bench "$@" >"$json" 2>"$logs/$name.log" || rc=$?
  if [ $rc = 0 ]; then
    record "$name" pass $(($(date +%s) - t0)) "sluice bench $*" "$json"
  else
    record "$name" fail $(($(date +%s) - t0)) "exit $rc: $(tail -c 1500 "$logs/$name.log" | tr '\n' ' ')"
  fi
}

# --- Binaries -------------------------------------------------------------------------------
# Test executables the check runs, as `package:test-target`.
# Each is bundled as bin/PACKAGE-TARGET.
tests="backend-cuda:ptx backend-cuda:conformance sluice-tests:cuda_reference \
backend-webgpu:matmul backend-webgpu:conformance backend-webgpu:attention sluice-tests:webgpu_reference"

build_bundle() {
  # The dev profile is what the test command builds (`cargo test`, `cargo run`): nothing new.
  local t0=$(date +%s) pflag="" dir=debug
  [ "$profile" = dev ] || { pflag="--profile=$profile"; dir=$profile; }
  cargo build --locked $pflag -p sluice-cli || return 1
  local args=()
  for t in $tests; do args+=(-p "${t%%:*}" --test "${t#*:}"); done
  cargo test --locked $pflag --no-run --message-format=json "${args[@]}" >"$work/build.json" || return 1
  rm -rf "$bundle" && mkdir -p "$bundle/bin"
  cp "target/$dir/sluice" "$bundle/bin/sluice"
  python3 - "$work/build.json" "$bundle/bin" "$tests" <<'PY' || return 1
import json, shutil, sys
want = [tuple(t.split(":")) for t in sys.argv[3].split()]
found = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    for pkg, target in want:
        # A path package's id ends `#NAME@VERSION`, or `#VERSION` in a folder of its own name.
        pid = m["package_id"]
        if m["target"]["name"] == target and (f"#{pkg}@" in pid or f"/{pkg}#" in pid):
            found[f"{pkg}-{target}"] = m["executable"]
missing = sorted({f"{p}-{t}" for p, t in want} - set(found))
if missing:
    sys.exit(f"no test executable for {missing}")
for name, exe in found.items():
    shutil.copy(exe, f"{sys.argv[2]}/{name}")
PY
  if [ "$profile" != dev ] && command -v strip >/dev/null; then strip "$bundle"/bin/* 2>/dev/null; fi
  git rev-parse HEAD >"$bundle/rev" 2>/dev/null || echo unknown >"$bundle/rev"
  echo "$(($(date +%s) - t0)) $(nproc) $profile" >"$bundle/built"
}

if command -v cargo >/dev/null; then
  t0=$(date +%s)
  if build_bundle >"$logs/build.log" 2>&1; then
    record build pass $(($(date +%s) - t0)) "profile $profile on $(nproc) cores into $bundle"
  else
    record build fail $(($(date +%s) - t0)) "$(tail -c 2000 "$logs/build.log" | tr '\n' ' ')"
  fi
elif [ -x "$bundle/bin/sluice" ]; then
  skip build "no cargo here: using the bundle built at $(cat "$bundle/rev") ($(cat "$bundle/built"): seconds, cores, profile)"
else
  echo "gpu-check.sh: no cargo and no bundle at $bundle: run scripts/gpu-check.sh --bundle-only where cargo is, and carry the bundle" >&2
  exit 2
fi
if [ $bundle_only = 1 ]; then
  grep -q '"status": "fail"' "$steps" && { cat "$logs/build.log" >&2; exit 1; }
  du -sh "$bundle" >&2
  exit 0
fi
bin="$bundle/bin"
# The bundled test binaries read the fixtures of this checkout, wherever they were built.
export SLUICE_FIXTURES_DIR="$root/fixtures"

# --- What this machine has ------------------------------------------------------------------
gpu=""
if command -v nvidia-smi >/dev/null; then
  gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
fi
nvrtc_dir="${SLUICE_NVRTC_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/nvrtc}"
nvrtc=""
for d in "$nvrtc_dir/nvidia/cuda_nvrtc/lib" "$nvrtc_dir" /usr/local/cuda/lib64; do
  if [ -e "$d/libnvrtc.so.12" ] || [ -e "$d/libnvrtc.so" ]; then nvrtc=$d; break; fi
done
[ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
vulkan=""
for f in ${VK_DRIVER_FILES:-} /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
  /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
  if [ -e "$f" ]; then vulkan=$f; break; fi
done
no_gpu=""
if [ -z "$gpu" ]; then
  no_gpu="no NVIDIA GPU (nvidia-smi found none)"
  [ $dry_run = 1 ] || { echo "gpu-check.sh: $no_gpu; --dry-run checks the plumbing without one" >&2; exit 2; }
fi
[ $dry_run = 1 ] && no_gpu="dry run${no_gpu:+: $no_gpu}"

# --- Tests ----------------------------------------------------------------------------------
# Without the SmolLM2 file (98 MB: often more than can travel to a GPU machine with no network)
# its parity tests skip inside the reference tests, which still run every synth architecture.
if [ -z "${SLUICE_TEST_MODEL_SMOLLM2:-}" ]; then
  export SLUICE_OFFLINE=1
  skip smollm2_parity "SLUICE_TEST_MODEL_SMOLLM2 is not set: the reference tests skip their SmolLM2 cases"
fi
if [ -n "$nvrtc" ]; then
  SLUICE_REQUIRE_NVRTC=1 run_step cuda_ptx "$bin/backend-cuda-ptx"
else
  skip cuda_ptx "no libnvrtc.so.12 under $nvrtc_dir (set SLUICE_NVRTC_DIR)"
fi
if [ -z "$no_gpu" ]; then
  SLUICE_REQUIRE_CUDA=1 run_step cuda_conformance "$bin/backend-cuda-conformance"
  SLUICE_REQUIRE_CUDA=1 run_step cuda_reference "$bin/sluice-tests-cuda_reference"
else
  skip cuda_conformance "$no_gpu"
  skip cuda_reference "$no_gpu"
fi
if [ -n "$vulkan" ] && [ -z "$no_gpu" ]; then
  export VK_DRIVER_FILES="$vulkan"
  for t in backend-webgpu-matmul backend-webgpu-conformance backend-webgpu-attention \
    sluice-tests-webgpu_reference; do
    SLUICE_REQUIRE_WEBGPU=1 run_step "${t/backend-/}" "$bin/$t"
  done
else
  for t in webgpu-matmul webgpu-conformance webgpu-attention sluice-tests-webgpu_reference; do
    skip "$t" "${no_gpu:-no NVIDIA Vulkan driver (nvidia_icd.json) found}"
  done
fi

# --- Benchmarks -----------------------------------------------------------------------------
# The 7B-shaped model (about 3.6 GiB in Q4_0); a small one in a dry run (enough layers that a
# quarter of it still holds a few).
if [ $dry_run = 1 ]; then
  shape=(--layers 12 --dim 256 --ffn 768 --heads 4 --kv-heads 2 --vocab 2048)
  backend=cpu
else
  shape=(--preset 7b)
  backend=cuda
fi
model="$work/synth-7b-q4_0.gguf"
run_step synth_7b "$bin/sluice" synth --out "$model" "${shape[@]}" --type Q4_0 --seed 7
lengths=(--prompt-tokens 128 --gen-tokens 64 --reps 3 --roofline)
if [ -s "$model" ]; then
  quarter=$(($(stat -c %s "$model") / 4))
  bench_step "bench_7b_${backend}_resident" --backend $backend -m "$model" "${lengths[@]}"
  bench_step "bench_7b_${backend}_streamed" --backend $backend -m "$model" --device-mem "$quarter" \
    "${lengths[@]}"
  if [ -n "$vulkan" ] && [ -z "$no_gpu" ]; then
    bench_step bench_7b_webgpu_resident --backend webgpu -m "$model" "${lengths[@]}"
  else
    skip bench_7b_webgpu_resident "${no_gpu:-no NVIDIA Vulkan driver}"
  fi
fi
if [ -n "${SLUICE_TEST_MODEL_SMOLLM2:-}" ] && [ -e "$SLUICE_TEST_MODEL_SMOLLM2" ]; then
  bench_step "bench_smollm2_${backend}" --backend $backend -m "$SLUICE_TEST_MODEL_SMOLLM2" "${lengths[@]}"
  if [ -n "$vulkan" ] && [ -z "$no_gpu" ]; then
    bench_step bench_smollm2_webgpu --backend webgpu -m "$SLUICE_TEST_MODEL_SMOLLM2" "${lengths[@]}"
  fi
else
  skip "bench_smollm2_${backend}" "SLUICE_TEST_MODEL_SMOLLM2 is not set to the model's file"
fi

# --- Report ---------------------------------------------------------------------------------
python3 - "$steps" "$out" "$dry_run" "$gpu" "$(cat "$bundle/rev" 2>/dev/null)" "$(($(date +%s) - started))" "$nvrtc" "$vulkan" <<'PY'
import json, os, sys
steps_file, out, dry, gpu, rev, secs, nvrtc, vulkan = sys.argv[1:9]
steps = [json.loads(l) for l in open(steps_file)]
count = lambda s: sum(1 for r in steps if r["status"] == s)
report = {
    "dry_run": dry == "1",
    "rev": rev,
    "gpu": gpu or None,
    "nvrtc": nvrtc or None,
    "vulkan_icd": vulkan or None,
    "cpu_cores": os.cpu_count(),
    "seconds": int(secs),
    "summary": {"pass": count("pass"), "fail": count("fail"), "skip": count("skip")},
    "steps": steps,
}
json.dump(report, open(out, "w"), indent=2)
print(json.dumps(report["summary"]), "->", out)
sys.exit(1 if count("fail") else 0)
PY
