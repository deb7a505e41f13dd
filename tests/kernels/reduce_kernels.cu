// Test kernels for the device emulation: reductions through shared memory and __syncthreads,
// through warp shuffles, and a two-stage reduction whose second stage runs in warp 0 only.
// Pointers passed to the host function are device memory; sizes are element counts.
#include "kernels/cuda/compat.cuh"

#include "tests/kernels/test_kernels.h"

namespace dsn::emu_test {
namespace {

constexpr int kBlock = 256;

// out[block] = sum of in[block * 256 .. block * 256 + 255], by tree reduction in shared memory.
__global__ void block_sum_shared(const float* __restrict__ in, float* __restrict__ out, int n) {
  __shared__ float partial[kBlock];
  const int tid = threadIdx.x;
  const long long i = (long long)blockIdx.x * kBlock + tid;
  partial[tid] = i < n ? in[i] : 0.0f;
  __syncthreads();
  for (int stride = kBlock / 2; stride > 0; stride /= 2) {
    if (tid < stride) partial[tid] += partial[tid + stride];
    __syncthreads();
  }
  if (tid == 0) out[blockIdx.x] = partial[0];
}

// The same reduction with the barrier inside the loop missing: a race whose outcome depends on
// the order in which threads run.
__global__ void block_sum_missing_barrier(const float* __restrict__ in, float* __restrict__ out,
                                          int n) {
  __shared__ float partial[kBlock];
  const int tid = threadIdx.x;
  const long long i = (long long)blockIdx.x * kBlock + tid;
  partial[tid] = i < n ? in[i] : 0.0f;
  __syncthreads();
  for (int stride = kBlock / 2; stride > 0; stride /= 2) {
    if (tid < stride) partial[tid] += partial[tid + stride];
  }
  if (tid == 0) out[blockIdx.x] = partial[0];
}

__device__ float warp_sum(float value) {
  for (int offset = warpSize / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;
}

// Two stages: every warp reduces its lanes, then warp 0 alone reduces the per-warp sums.
__global__ void block_sum_warps(const float* __restrict__ in, float* __restrict__ out, int n) {
  __shared__ float warp_sums[kBlock / 32];
  const int tid = threadIdx.x;
  const int warp = tid / warpSize, lane = tid % warpSize;
  const long long i = (long long)blockIdx.x * blockDim.x + tid;
  float value = warp_sum(i < n ? in[i] : 0.0f);
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < int(blockDim.x / warpSize) ? warp_sums[lane] : 0.0f;
    value = warp_sum(value);
    if (lane == 0) out[blockIdx.x] = value;
  }
}

}  // namespace

void block_sum(ReduceKind kind, const float* in, float* out, int n, cudaStream_t stream) {
  const int blocks = cuda::ceil_div(n, kBlock);
  switch (kind) {
    case ReduceKind::shared:
      cuda::launch(block_sum_shared, blocks, kBlock, 0, stream, in, out, n);
      break;
    case ReduceKind::missing_barrier:
      cuda::launch(block_sum_missing_barrier, blocks, kBlock, 0, stream, in, out, n);
      break;
    case ReduceKind::warps:
      cuda::launch(block_sum_warps, blocks, kBlock, 0, stream, in, out, n);
      break;
  }
}

}  // namespace dsn::emu_test
