// A manual check that AddressSanitizer detects dynamic shared memory overruns in the emulation:
// every thread writes one element past its own, so the last thread writes past the allocation.
// Build it in an ASan build (target dsn_emu_oob_shared) and expect a heap-buffer-overflow report
// naming this file; without ASan it runs silently. Not a test, because it must fail.
#include "kernels/cuda/compat.cuh"

namespace {

__global__ void shift_by_one(float* out) {
  DSN_DYNAMIC_SHARED(float, tile);
  tile[threadIdx.x + 1] = float(threadIdx.x);  // overruns for the last thread
  __syncthreads();
  out[threadIdx.x] = tile[threadIdx.x];
}

}  // namespace

int main() {
  const int threads = 64;
  float* out = nullptr;
  DSN_CUDA_CHECK(cudaMalloc(&out, threads * sizeof(float)));
  dsn::cuda::launch(shift_by_one, 1, threads, threads * sizeof(float), nullptr, out);
  DSN_CUDA_CHECK(cudaFree(out));
  return 0;
}
