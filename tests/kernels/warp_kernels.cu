// Test kernels for the device emulation's warp collectives and block-wide barrier reductions.
// Every thread writes kWarpOutputs results for the host to compare with the CUDA Programming
// Guide's definition of each intrinsic, computed there from the inputs.
#include "kernels/cuda/compat.cuh"

#include "tests/kernels/test_kernels.h"

namespace dsn::emu_test {
namespace {

__global__ void warp_ops(const int* __restrict__ in, int* __restrict__ out) {
  const unsigned full = 0xffffffffu;
  const int lane = threadIdx.x % warpSize;
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  const int v = in[t];
  int* o = out + t * kWarpOutputs;
  // First, while no lane has returned: the emulation's mask is the lanes not yet returned.
  o[15] = int(__activemask());
  o[0] = __shfl_sync(full, v, 5);
  o[1] = __shfl_sync(full, v, lane + 3, 8);
  o[2] = __shfl_up_sync(full, v, 3);
  o[3] = __shfl_down_sync(full, v, 5, 16);
  o[4] = __shfl_xor_sync(full, v, 9);
  o[5] = __shfl_xor_sync(full, v, 20, 16);
  o[6] = int(__ballot_sync(full, v & 1));
  o[7] = __any_sync(full, v % 7 == 0);
  o[8] = __all_sync(full, v > 0);
  o[9] = -1;
  if (lane < 16) o[9] = __shfl_down_sync(0x0000ffffu, v, 1, 16);
  o[10] = __syncthreads_count(v & 1);
  o[11] = __syncthreads_and(v > 0);
  o[12] = __syncthreads_or(v % 5 == 0);
  o[13] = int(__shfl_xor_sync(full, double(v) * 0.5, 1) * 2.0);
  const long long pair = (long long)v << 32 | unsigned(-v);
  const long long swapped = __shfl_xor_sync(full, pair, 2);
  o[14] = int(swapped >> 32) + 3 * int(unsigned(swapped));
}

}  // namespace

void warp_intrinsics(const int* in, int* out, int blocks, int threads, cudaStream_t stream) {
  cuda::launch(warp_ops, blocks, threads, 0, stream, in, out);
}

}  // namespace dsn::emu_test
