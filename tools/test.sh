#!/usr/bin/env bash
# Installs what is missing, builds dsn and runs the whole test suite:
#   1. a Release build of the CPU engine, every CUDA kernel compiled by nvcc (compile only when
#      the machine has no GPU), the same kernels compiled for the CPU device emulation, and the
#      benchmarks. ctest runs every suite, and the emulated kernel tests run under forward,
#      reverse and random thread schedules;
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build of the CPU kernel, engine,
#      emulation, CUDA kernel and CUDA backend suites (ctest label 'sanitize').
# Needs root or sudo for the package installation only.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
tools/install-deps.sh
media=$(tools/fetch-media.sh)
jobs=$(nproc)

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

echo "== Release build (${SECONDS} s elapsed)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSN_DEMO_MEDIA="$media" \
  "${launcher[@]}"
cmake --build build -j "$jobs"

echo "== ASan + UBSan build of the kernel and engine suites (${SECONDS} s elapsed)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDSN_SANITIZE="address;undefined" -DDSN_WITH_CUDA=OFF -DDSN_BUILD_BENCH=OFF \
  -DDSN_DEMO_MEDIA="$media" "${launcher[@]}" >/dev/null
cmake --build build-asan -j "$jobs" --target dsn_cpu_kernel_tests dsn_engine_tests \
  dsn_emu_tests dsn_cuda_kernel_tests dsn_backend_tests

echo "== Tests, Release build (${SECONDS} s elapsed)"
ctest --test-dir build --output-on-failure --timeout 900
echo "== Tests, sanitizer build (label 'sanitize') (${SECONDS} s elapsed)"
ctest --test-dir build-asan --output-on-failure --timeout 1800 -L sanitize
