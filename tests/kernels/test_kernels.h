// Host entry points of the device emulation's test kernels in tests/kernels/*.cu. Every pointer
// argument is device memory; each function launches on `stream` and checks the launch.
#pragma once

#include <cstddef>

#include "kernels/cuda/check.h"

namespace dsn::emu_test {

enum class ReduceKind { shared, missing_barrier, warps };

// out: (ceil(n / 256)) per-block sums of in: (n), blocks of 256 threads.
void block_sum(ReduceKind kind, const float* in, float* out, int n, cudaStream_t stream);

// Outputs per thread of warp_intrinsics, in the order documented in warp_kernels.cu.
constexpr int kWarpOutputs = 16;
// in: (blocks * threads), out: (blocks * threads, kWarpOutputs); threads a multiple of 32.
void warp_intrinsics(const int* in, int* out, int blocks, int threads, cudaStream_t stream);

// in, out: (blocks * threads); shared_bytes at least threads * sizeof(float).
void reverse_in_blocks(const float* in, float* out, int blocks, int threads,
                       std::size_t shared_bytes, cudaStream_t stream);
// Raises the reverse kernel's dynamic shared memory limit (cudaFuncSetAttribute).
void allow_dynamic_shared(int bytes);

struct AtomicResults {
  int max, min;
  float float_sum;  // sum of 0.001 * value
  double double_sum;
  unsigned long long count;
  int cas_sum;  // sum of the values through an atomicCAS loop
};
// values: (n) non-negative; bins: (bin_count) counts of value % bin_count.
void run_atomics(const int* values, int n, unsigned* bins, int bin_count, AtomicResults* results,
                 cudaStream_t stream);

// out: (2 * 3 * 2 blocks, 4 * 2 * 2 threads), see indices_3d in memory_kernels.cu.
void write_indices_3d(int* out, cudaStream_t stream);

// in: (n), out: (2, n) as half then bfloat16 round trips.
void round_to_half(const float* in, float* out, int n, cudaStream_t stream);

enum class Fault {
  divergent_barriers,
  barrier_after_return,
  shuffle_after_exit,
  mask_without_caller
};
// out: (64) ints. Every case is a synchronisation bug; only the emulation runs them.
void run_faulty(Fault fault, int* out, cudaStream_t stream);

}  // namespace dsn::emu_test
