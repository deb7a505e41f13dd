// Hand-written CUDA single-precision GEMM on row-major matrices, the twin of dsn::cpu::gemm
// (kernels/gemm.h): C (M, N) = alpha * op(A) op(B) + beta * C. No cuBLAS inside.
#pragma once

#include "kernels/cuda/stream.h"
#include "kernels/gemm.h"

namespace dsn::cuda {

// The kernel and block tile that a tiled GEMM launcher picks for a problem, for logs, benchmarks
// and tests that must reach every path.
struct TilePlan {
  const char* kernel = "";  // __global__ function name
  int tile_m = 0;           // rows of C per block
  int tile_n = 0;           // columns of C per block
  int tile_k = 0;           // reduction elements staged in shared memory per step
  int splits = 1;           // independent slices of the reduction (summed in a fixed order)
};

// C (M, N) = alpha * op(A) (M, K) op(B) (K, N) + beta * C, with the leading dimensions of
// `shape` (0 means packed). C is not read when beta is 0, so it may hold NaN or garbage then.
// Enqueued on `stream`; a, b and c are device pointers.
void gemm(const GemmShape& shape, const float* a, const float* b, float* c, Stream stream);

// Returns the kernel and tile that gemm() launches for `shape`.
TilePlan plan_gemm(const GemmShape& shape);

}  // namespace dsn::cuda
