// Test kernels for the device emulation's memory model: dynamic shared memory, atomics on global
// memory, multi-dimensional indices, and half/bfloat16 conversions.
#include "kernels/cuda/compat.cuh"

#include "tests/kernels/test_kernels.h"

namespace dsn::emu_test {
namespace {

// Reverses each block's slice of in: out[b * B + t] = in[b * B + B - 1 - t], through shared memory.
__global__ void reverse_blocks(const float* __restrict__ in, float* __restrict__ out) {
  DSN_DYNAMIC_SHARED(float, tile);
  const unsigned base = blockIdx.x * blockDim.x;
  tile[threadIdx.x] = in[base + threadIdx.x];
  __syncthreads();
  out[base + threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}

__global__ void atomics(const int* __restrict__ values, int n, unsigned* __restrict__ bins,
                        int bin_count, AtomicResults* __restrict__ results) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int v = values[i];
  atomicAdd(&bins[v % bin_count], 1u);
  atomicMax(&results->max, v);
  atomicMin(&results->min, v);
  atomicAdd(&results->float_sum, float(v) * 0.001f);
  atomicAdd(&results->double_sum, double(v) * 0.001);
  atomicAdd(&results->count, 1ull);
  int old = results->cas_sum;
  int assumed;
  do {
    assumed = old;
    old = atomicCAS(&results->cas_sum, assumed, assumed + v);
  } while (old != assumed);
}

// out[global linear thread] encodes every built-in index, two bits per value.
__global__ void indices_3d(int* __restrict__ out) {
  const int block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const int thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  const int threads_per_block = blockDim.x * blockDim.y * blockDim.z;
  out[block * threads_per_block + thread] =
      int(threadIdx.x | threadIdx.y << 2 | threadIdx.z << 4 | blockIdx.x << 6 | blockIdx.y << 8 |
          blockIdx.z << 10);
}

// out[i] = float(half(in[i])), out[n + i] = float(bfloat16(in[i])).
__global__ void half_roundtrip(const float* __restrict__ in, float* __restrict__ out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  out[i] = __half2float(__float2half(in[i]));
  out[n + i] = __bfloat162float(__float2bfloat16(in[i]));
}

}  // namespace

void reverse_in_blocks(const float* in, float* out, int blocks, int threads,
                       std::size_t shared_bytes, cudaStream_t stream) {
  cuda::launch(reverse_blocks, blocks, threads, shared_bytes, stream, in, out);
}

void allow_dynamic_shared(int bytes) {
  DSN_CUDA_CHECK(
      cudaFuncSetAttribute(reverse_blocks, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

void run_atomics(const int* values, int n, unsigned* bins, int bin_count, AtomicResults* results,
                 cudaStream_t stream) {
  cuda::launch(atomics, cuda::ceil_div(n, 128), 128, 0, stream, values, n, bins, bin_count,
               results);
}

void write_indices_3d(int* out, cudaStream_t stream) {
  cuda::launch(indices_3d, dim3(2, 3, 2), dim3(4, 2, 2), 0, stream, out);
}

void round_to_half(const float* in, float* out, int n, cudaStream_t stream) {
  cuda::launch(half_roundtrip, cuda::ceil_div(n, 64), 64, 0, stream, in, out, n);
}

}  // namespace dsn::emu_test
