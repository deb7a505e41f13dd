#!/usr/bin/env bash
# Checks the hand-written CUDA kernels on a machine with an NVIDIA GPU and writes one JSON report:
#   1. configure a build for the local GPU (-DCMAKE_CUDA_ARCHITECTURES=native) with the kernel
#      tests linked against the real CUDA runtime, and build only dsn_cuda_kernel_tests and
#      dsn_bench_cuda;
#   2. run the kernel tests on the device, then under compute-sanitizer memcheck (all tests) and
#      racecheck (one shared-memory-heavy test per kernel family);
#   3. run dsn_bench_cuda in two parts (everything but convolutions, then convolutions) with
#      JSON output, and summarize it with bench/summarize.py.
# Every step runs under `timeout` within a total budget, 470 s by default, so that the script
# ends inside 8 minutes. The benchmarks get the time the other steps leave. A step that fails or
# times out is recorded in the report, and the later steps that do not need it still run.
#
# Usage: tools/gpu-check.sh [OUTPUT.json] [--build-dir DIR] [--prebuilt DIR]
#        tools/gpu-check.sh --pack DIR
#   OUTPUT.json      the report (default gpu-results.json); its format is in bench/README.md
#   --build-dir DIR  build folder (default build-gpu, or build-gpu-pack with --pack)
#   --prebuilt DIR   skip configure and build; run DIR/dsn_cuda_kernel_tests and
#                    DIR/dsn_bench_cuda with DIR/lib on the library path (made by --pack)
#   --pack DIR       on a build machine (no GPU needed): build both programs for sm_90 in
#                    the build folder and copy them with the shared libraries they need, except
#                    the C/C++ runtime and the CUDA, cuBLAS and cuDNN libraries, into DIR
# Environment: DSN_GPU_CHECK_BUDGET (seconds, default 470), DSN_CUDA_ARCH (default native, 90
# for --pack), DSN_BENCH_MIN_TIME (seconds per benchmark, default 0.01), DSN_BENCH_FILTER (one
# --benchmark_filter run in place of the two parts), DSN_MEMCHECK_FILTER and DSN_RACECHECK_FILTER
# (doctest -tc= patterns; an empty memcheck filter runs every test), DSN_GIT_COMMIT (recorded
# when the tree has no .git folder).
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)

output=gpu-results.json
build_dir=""
prebuilt=""
pack=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --prebuilt) prebuilt=$2; shift 2 ;;
    --pack) pack=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo pipefail/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "gpu-check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) output=$1; shift ;;
  esac
done
# Paths given on the command line are relative to the folder the script was started from.
output=$(realpath -m "$output")
[ -n "$prebuilt" ] && prebuilt=$(realpath -m "$prebuilt")
[ -n "$pack" ] && pack=$(realpath -m "$pack")
[ -n "$build_dir" ] && build_dir=$(realpath -m "$build_dir")
cd "$repo" || exit 1

jobs=$(nproc)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

# --- cuDNN and the CUDA libraries -------------------------------------------------------------
# cuDNN may come from the toolkit or only from the nvidia-cudnn Python wheel (as on PyTorch
# images): find its header and library so CMake and the loader see them.
cudnn_args=()
cudnn_root=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null || true)
if [ -n "$cudnn_root" ] && [ -f "$cudnn_root/include/cudnn.h" ]; then
  cudnn_library=$(ls "$cudnn_root"/lib/libcudnn.so* 2>/dev/null | head -n 1)
  if ! ls /usr/local/cuda/include/cudnn.h >/dev/null 2>&1 && [ -n "$cudnn_library" ]; then
    cudnn_args=(-DDSN_CUDNN_INCLUDE_DIR="$cudnn_root/include" -DDSN_CUDNN_LIBRARY="$cudnn_library")
  fi
  export LD_LIBRARY_PATH="$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib; do
  [ -d "$dir" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$dir"
done

# configure_command DIR ARCH sets the array `configure`. The two programs are built by separate
# commands, so that one that fails (or is not defined, as dsn_bench_cuda without cuDNN) does not
# stop the other.
configure_command() {
  configure=(cmake -S "$repo" -B "$1" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_CUDA_ARCHITECTURES="$2" -DDSN_CUDA_TESTS_ON_DEVICE=ON -DDSN_BUILD_TESTS=ON
    -DDSN_BUILD_BENCH=ON "${cudnn_args[@]}")
}

# --- --pack: build here, run elsewhere -------------------------------------------------------
if [ -n "$pack" ]; then
  pack_build=${build_dir:-$repo/build-gpu-pack}
  configure_command "$pack_build" "${DSN_CUDA_ARCH:-90}"
  "${configure[@]}" || exit 1
  cmake --build "$pack_build" -j "$jobs" --target dsn_cuda_kernel_tests || exit 1
  cmake --build "$pack_build" -j "$jobs" --target dsn_bench_cuda || exit 1
  mkdir -p "$pack/lib"
  cp "$pack_build/tests/cuda/dsn_cuda_kernel_tests" "$pack_build/bench/dsn_bench_cuda" "$pack/"
  for binary in "$pack"/dsn_cuda_kernel_tests "$pack"/dsn_bench_cuda; do
    ldd "$binary" | awk '/=> \// {print $3}' | grep -Ev \
      '/(ld-linux|libc|libm|libpthread|libdl|librt|libgcc_s|libstdc\+\+|libcuda|libcudart|libcublas|libcublasLt|libcudnn[a-z_]*|libnvrtc)[.-]' \
      | while read -r library; do cp -L "$library" "$pack/lib/"; done
  done
  du -sh "$pack"
  echo "packed into $pack; on the GPU machine run: tools/gpu-check.sh --prebuilt $pack"
  exit 0
fi

# --- Steps -----------------------------------------------------------------------------------
budget=${DSN_GPU_CHECK_BUDGET:-470}
min_time=${DSN_BENCH_MIN_TIME:-0.01}
memcheck_filter=${DSN_MEMCHECK_FILTER-}
racecheck_filter=${DSN_RACECHECK_FILTER-'*conv2d_forward small shapes*,*conv2d_backward_data small shapes*,*conv2d_backward_weight split reduction*,*gemm large tile*,*batch_norm backward train matches*,*pool2d max forward and backward*,*pool2d global avg forward*,*reduce sum matches*,*softmax heads forward*,*fusion matches the CPU twin on awkward*,*layout crop forward*,*sgd matches the CPU twin across*,*bias_backward matches*'}
started=$(date +%s)
deadline=$((started + budget))
reserve=20  # seconds kept for the summary and the report
work=$(mktemp -d)
steps="$work/steps.tsv"
: >"$steps"

# run_step NAME CAP COMMAND...: runs COMMAND under `timeout` for at most CAP seconds, ending
# before the deadline less the reserve, and records its status, exit code and duration.
run_step() {
  local name=$1 cap=$2
  shift 2
  local left=$((deadline - reserve - $(date +%s)))
  local limit=$((cap < left ? cap : left))
  local log="$work/$name.log"
  if [ "$limit" -lt 5 ]; then
    echo "no time left in the ${budget} s budget" >"$log"
    printf '%s\tskipped\t\t0\t0\t%s\t%s\n' "$name" "$log" "$*" >>"$steps"
    return 1
  fi
  echo "== $name (at most ${limit} s)"
  local begin=$EPOCHREALTIME
  timeout -k 5 "$limit" "$@" >"$log" 2>&1
  local code=$?
  local end=$EPOCHREALTIME
  local status=ok
  if [ $code -eq 124 ] || [ $code -eq 137 ]; then
    status=timeout
  elif [ $code -ne 0 ]; then
    status=failed
  fi
  local duration
  duration=$(awk -v a="$begin" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$code" "$duration" "$limit" "$log" \
    "$*" >>"$steps"
  tail -n 3 "$log"
  return $code
}

skip_step() {  # skip_step NAME REASON
  echo "$2" >"$work/$1.log"
  printf '%s\tskipped\t\t0\t0\t%s\t\n' "$1" "$work/$1.log" >>"$steps"
}

if [ -n "$prebuilt" ]; then
  tests="$prebuilt/dsn_cuda_kernel_tests"
  bench="$prebuilt/dsn_bench_cuda"
  export LD_LIBRARY_PATH="$prebuilt/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  for name in configure build_tests build_bench; do
    skip_step $name "prebuilt binaries from $prebuilt"
  done
else
  build_dir=${build_dir:-$repo/build-gpu}
  tests="$build_dir/tests/cuda/dsn_cuda_kernel_tests"
  bench="$build_dir/bench/dsn_bench_cuda"
  rm -f "$tests" "$bench"
  configure_command "$build_dir" "${DSN_CUDA_ARCH:-native}"
  if run_step configure 90 "${configure[@]}"; then
    run_step build_tests 200 cmake --build "$build_dir" -j "$jobs" --target dsn_cuda_kernel_tests
    run_step build_bench 120 cmake --build "$build_dir" -j "$jobs" --target dsn_bench_cuda
  else
    skip_step build_tests "configure failed"
    skip_step build_bench "configure failed"
  fi
fi

if [ -x "$tests" ]; then
  run_step tests 45 "$tests"
  if command -v compute-sanitizer >/dev/null; then
    memcheck_args=()
    [ -n "$memcheck_filter" ] && memcheck_args=("-tc=$memcheck_filter")
    run_step memcheck 75 compute-sanitizer --tool memcheck --error-exitcode 86 "$tests" \
      "${memcheck_args[@]}"
    run_step racecheck 60 compute-sanitizer --tool racecheck --error-exitcode 86 "$tests" \
      "-tc=$racecheck_filter"
  else
    skip_step memcheck "compute-sanitizer not found"
    skip_step racecheck "compute-sanitizer not found"
  fi
else
  for name in tests memcheck racecheck; do skip_step $name "$tests was not built"; done
fi

bench_files=()
if [ -x "$bench" ]; then
  bench_run() {  # bench_run NAME CAP FILTER
    run_step "$1" "$2" "$bench" --benchmark_filter="$3" --benchmark_min_time="$min_time" \
      --benchmark_out="$work/$1.json" --benchmark_out_format=json
    [ -s "$work/$1.json" ] && bench_files+=("$work/$1.json")
  }
  if [ -n "${DSN_BENCH_FILTER-}" ]; then
    bench_run bench "$((deadline - reserve - $(date +%s)))" "$DSN_BENCH_FILTER"
  else
    # Everything but convolutions gets 40 % of the time left, convolutions the rest.
    bench_run bench_other $(((deadline - reserve - $(date +%s)) * 2 / 5)) '-^t?conv_'
    bench_run bench_conv "$((deadline - reserve - $(date +%s)))" '^t?conv_'
  fi
else
  skip_step bench_other "$bench was not built"
  skip_step bench_conv "$bench was not built"
fi

if [ ${#bench_files[@]} -gt 0 ]; then
  reserve=5
  run_step summarize 15 python3 bench/summarize.py "${bench_files[@]}" \
    --json-out "$work/summary.json"
else
  skip_step summarize "no benchmark output"
fi

# --- Report ----------------------------------------------------------------------------------
finished=$(date +%s)
DSN_WORK=$work DSN_STARTED=$started DSN_FINISHED=$finished DSN_BUDGET=$budget \
DSN_BUILD_DIR=$build_dir DSN_PREBUILT=$prebuilt DSN_MIN_TIME=$min_time \
DSN_MEMCHECK=$memcheck_filter DSN_RACECHECK=$racecheck_filter DSN_OUTPUT=$output \
DSN_ARCH=${DSN_CUDA_ARCH:-native} DSN_BENCH_FILES="${bench_files[*]}" \
python3 - <<'PYTHON'
import datetime, json, os, re, subprocess, sys

sys.dont_write_bytecode = True
sys.path.insert(0, "bench")
import summarize  # noqa: E402  (bench/summarize.py, for its tolerant JSON reader)

env = os.environ
work = env["DSN_WORK"]
TAIL = 4000


def command_output(args):
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=20)
        return done.stdout.strip() if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def header_version(names, macros):
    """Version from the first header found in the usual include folders, e.g. cudnn_version.h."""
    folders = ["/usr/local/cuda/include", "/usr/include", "/usr/local/include"]
    try:
        import nvidia.cudnn as package  # the PyTorch images' cuDNN wheel
        folders.append(os.path.join(list(package.__path__)[0], "include"))
    except ImportError:
        pass
    for folder in folders:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.exists(path):
                text = open(path, encoding="utf-8", errors="replace").read()
                parts = [re.search(rf"#define {m}\s+(\d+)", text) for m in macros]
                if all(parts):
                    return ".".join(p.group(1) for p in parts) + f" ({path})"
    return None


def iso(seconds):
    return datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc).isoformat()


steps = []
logs = {}
with open(os.path.join(work, "steps.tsv"), encoding="utf-8") as handle:
    for line in handle:
        name, status, code, duration, limit, log, command = line.rstrip("\n").split("\t")
        text = open(log, encoding="utf-8", errors="replace").read() if os.path.exists(log) else ""
        logs[name] = text
        steps.append({
            "name": name,
            "status": status,
            "exit_code": int(code) if code else None,
            "duration_seconds": float(duration),
            "timeout_seconds": int(limit),
            "command": command,
            "output_tail": text[-TAIL:],
        })


def doctest_counts(text):
    result = {}
    for kind in ("test cases", "assertions"):
        match = re.search(rf"\[doctest\] {kind}:\s*(\d+) \|\s*(\d+) passed \|\s*(\d+) failed"
                          rf"(?: \|\s*(\d+) skipped)?", text)
        if match:
            total, passed, failed, skipped = match.groups()
            result[kind.replace(" ", "_")] = {"total": int(total), "passed": int(passed),
                                              "failed": int(failed),
                                              "skipped": int(skipped or 0)}
    return result or None


def sanitizer(name, filter_text):
    """Status, error count and summary line of a compute-sanitizer run.

    memcheck ends with "ERROR SUMMARY: N errors", racecheck with
    "RACECHECK SUMMARY: N hazards displayed (E errors, W warnings)".
    """
    step = next((s for s in steps if s["name"] == name), None)
    text = logs.get(name, "")
    line = re.search(r"(?:ERROR|RACECHECK) SUMMARY: (\d+) (?:errors?|hazards?)[^\n]*", text)
    detail = re.search(r"\((\d+) errors?, (\d+) warnings?\)", line.group(0)) if line else None
    errors = int(detail.group(1)) if detail else (int(line.group(1)) if line else None)
    return {
        "status": step["status"] if step else "skipped",
        "errors": errors,
        "warnings": int(detail.group(2)) if detail else None,
        "summary_line": line.group(0).strip() if line else None,
        "filter": filter_text or None,
        "tests": doctest_counts(text),
    }


gpu = command_output(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                      "--format=csv,noheader"])
gpu_fields = [field.strip() for field in gpu.splitlines()[0].split(",")] if gpu else []
nvcc = command_output(["nvcc", "--version"])
sanitizer_version = command_output(["compute-sanitizer", "--version"])
cmake = command_output(["cmake", "--version"])
dirty = command_output(["git", "status", "--porcelain", "--untracked-files=no"])

summary = None
summary_path = os.path.join(work, "summary.json")
if os.path.exists(summary_path):
    summary = json.load(open(summary_path, encoding="utf-8"))
raw = []
for path in env["DSN_BENCH_FILES"].split():
    context, benchmarks, truncated = summarize.load_report(path)
    raw.append({"file": os.path.basename(path), "truncated": truncated, "context": context,
                "benchmarks": benchmarks})

report = {
    "schema": "dsn-gpu-check/1",
    "started_at": iso(env["DSN_STARTED"]),
    "finished_at": iso(env["DSN_FINISHED"]),
    "duration_seconds": int(env["DSN_FINISHED"]) - int(env["DSN_STARTED"]),
    "budget_seconds": int(env["DSN_BUDGET"]),
    "git": {
        # A copy of the tree without .git can pass the commit in DSN_GIT_COMMIT.
        "commit": env.get("DSN_GIT_COMMIT") or command_output(["git", "rev-parse", "HEAD"]),
        "modified_tracked_files": len(dirty.splitlines()) if dirty else 0,
    },
    "host": {"hostname": os.uname().nodename, "cpus": os.cpu_count()},
    "gpu": {
        "name": gpu_fields[0] if gpu_fields else None,
        "driver": gpu_fields[1] if len(gpu_fields) > 1 else None,
        "memory_total": gpu_fields[2] if len(gpu_fields) > 2 else None,
        "count": len(gpu.splitlines()) if gpu else 0,
    },
    "toolchain": {
        "nvcc": nvcc.splitlines()[-1] if nvcc else None,
        "cmake": cmake.splitlines()[0] if cmake else None,
        "compute_sanitizer": sanitizer_version.splitlines()[-1] if sanitizer_version else None,
        "cudnn_header": header_version(["cudnn_version.h"],
                                       ["CUDNN_MAJOR", "CUDNN_MINOR", "CUDNN_PATCHLEVEL"]),
        "cublas_header": header_version(["cublas_api.h"],
                                        ["CUBLAS_VER_MAJOR", "CUBLAS_VER_MINOR",
                                         "CUBLAS_VER_PATCH"]),
    },
    "settings": {
        "build_dir": env["DSN_BUILD_DIR"],
        "prebuilt": env["DSN_PREBUILT"] or None,
        "cuda_architectures": env["DSN_ARCH"],
        "bench_min_time_seconds": float(env["DSN_MIN_TIME"]),
        "memcheck_filter": env["DSN_MEMCHECK"] or None,
        "racecheck_filter": env["DSN_RACECHECK"] or None,
    },
    "steps": steps,
    "tests": doctest_counts(logs.get("tests", "")),
    "sanitizers": {
        "memcheck": sanitizer("memcheck", env["DSN_MEMCHECK"]),
        "racecheck": sanitizer("racecheck", env["DSN_RACECHECK"]),
    },
    "benchmark_summary": summary,
    "benchmarks_raw": raw,
}
with open(env["DSN_OUTPUT"], "w", encoding="utf-8") as handle:
    json.dump(report, handle, indent=1)
    handle.write("\n")
print(f"wrote {env['DSN_OUTPUT']}")
for step in steps:
    print(f"  {step['name']:<12} {step['status']:<8} {step['duration_seconds']:7.1f} s")
PYTHON
report_status=$?
rm -rf "$work"
exit $report_status
