// Measures the device emulation's cost per barrier and per warp shuffle, per CUDA thread, and
// the cost of a barrier-free kernel per thread. Prints a table; run by hand (target
// dsn_emu_barrier_cost), with DSN_EMU_WORKERS to choose the worker count.
#include "kernels/cuda/compat.cuh"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace {

constexpr int kRounds = 64;

__global__ void barriers(float* out) {
  __shared__ float value[1024];
  float sum = 0.0f;
  for (int r = 0; r < kRounds; ++r) {
    value[threadIdx.x] = float(r + threadIdx.x);
    __syncthreads();
    sum += value[(threadIdx.x + 1) % blockDim.x];
    __syncthreads();
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = sum;
}

__global__ void shuffles(float* out) {
  float value = float(threadIdx.x);
  for (int r = 0; r < kRounds; ++r) value += __shfl_xor_sync(0xffffffffu, value, r % 32);
  out[blockIdx.x * blockDim.x + threadIdx.x] = value;
}

__global__ void no_barrier(float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = float(i) * 0.5f;
}

// Returns nanoseconds per CUDA thread per operation, `per_thread` operations per thread, as the
// best of several launches after a warm-up that maps the fiber stacks and starts the pool.
template <typename Kernel>
double time_ns(Kernel kernel, int blocks, int threads, float* out, double per_thread) {
  dsn::cuda::launch(kernel, blocks, threads, 0, nullptr, out);
  double best = 1e300;
  for (int repeat = 0; repeat < 7; ++repeat) {
    const auto start = std::chrono::steady_clock::now();
    dsn::cuda::launch(kernel, blocks, threads, 0, nullptr, out);
    const std::chrono::duration<double, std::nano> elapsed =
        std::chrono::steady_clock::now() - start;
    best = std::min(best, elapsed.count());
  }
  return best / (double(blocks) * threads * per_thread);
}

}  // namespace

int main() {
  const int total = 1 << 16;
  float* out = nullptr;
  DSN_CUDA_CHECK(cudaMalloc(&out, total * sizeof(float)));
  std::printf("block  barrier ns  shuffle ns  barrier-free ns   (per thread per operation)\n");
  for (int threads : {32, 256, 1024}) {
    const int blocks = total / threads;
    std::printf("%5d  %10.1f  %10.1f  %15.1f\n", threads,
                time_ns(barriers, blocks, threads, out, 2.0 * kRounds),
                time_ns(shuffles, blocks, threads, out, kRounds),
                time_ns(no_barrier, blocks, threads, out, 1.0));
  }
  DSN_CUDA_CHECK(cudaFree(out));
  return 0;
}
