// Kernels with synchronisation bugs that the device emulation must report instead of hanging or
// returning silently wrong results. They are undefined behaviour on a GPU and never run there.
#include "kernels/cuda/compat.cuh"

#include "tests/kernels/test_kernels.h"

namespace dsn::emu_test {
namespace {

// Even threads wait at the block barrier, odd threads at a warp barrier that needs the even ones.
__global__ void divergent_barriers(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncwarp();
  }
  out[threadIdx.x] = 1;
}

// The upper half of the block returns before the barrier that the lower half reaches.
__global__ void barrier_after_return(int* out) {
  if (threadIdx.x >= blockDim.x / 2) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

// Lanes 16-31 return, then lanes 0-15 shuffle with a mask that still names them.
__global__ void shuffle_after_exit(int* out) {
  const int lane = threadIdx.x % warpSize;
  if (lane >= 16) return;
  out[threadIdx.x] = __shfl_sync(0xffffffffu, lane, 0);
}

// Lanes 16-31 pass a mask that does not include themselves.
__global__ void mask_without_caller(int* out) {
  out[threadIdx.x] = __shfl_sync(0x0000ffffu, int(threadIdx.x), 0);
}

}  // namespace

void run_faulty(Fault fault, int* out, cudaStream_t stream) {
  switch (fault) {
    case Fault::divergent_barriers:
      cuda::launch(divergent_barriers, 1, 64, 0, stream, out);
      break;
    case Fault::barrier_after_return:
      cuda::launch(barrier_after_return, 1, 64, 0, stream, out);
      break;
    case Fault::shuffle_after_exit:
      cuda::launch(shuffle_after_exit, 1, 32, 0, stream, out);
      break;
    case Fault::mask_without_caller:
      cuda::launch(mask_without_caller, 1, 32, 0, stream, out);
      break;
  }
}

}  // namespace dsn::emu_test
