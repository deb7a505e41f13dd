// Double-precision warp and block sums shared by the reduction kernels of
// kernels/cuda/elementwise.cu, pool2d.cu and reduce.cu. Both add in a fixed tree order, so a
// result does not depend on the thread schedule. Include after kernels/cuda/compat.cuh.
#pragma once

namespace dsn::cuda {

// Returns the sum over the warp in lane 0, added in a fixed tree order (lane l takes lane
// l + offset for offset = 16, 8, 4, 2, 1).
__device__ inline double warp_sum(double value) {
  for (int offset = warpSize / 2; offset > 0; offset /= 2) {
    value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  return value;
}

// Returns the sum over the block in its first thread (other threads receive partial sums). The
// block is 1-D or 2-D (x fastest) with a multiple of 32 threads.
__device__ inline double block_sum(double value) {
  __shared__ double warp_totals[32];
  const int thread = threadIdx.y * blockDim.x + threadIdx.x;
  const int warp = thread / warpSize, lane = thread % warpSize;
  value = warp_sum(value);
  if (lane == 0) warp_totals[warp] = value;
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x * blockDim.y / warpSize;
    value = warp_sum(lane < warps ? warp_totals[lane] : 0.0);
  }
  return value;
}

}  // namespace dsn::cuda
