// Internal to the CPU kernels: a checked row-major SGEMM call into OpenBLAS's CBLAS interface
// and the loop-size threshold below which OpenMP regions stay single-threaded.
#pragma once

#include <cstdint>

namespace dsn::cpu::detail {

// Element counts below this run on one thread: starting an OpenMP team costs microseconds,
// more than a simple loop over this many floats takes.
inline constexpr std::int64_t kParallelMinElements = 1 << 15;

// C (m, n) = alpha * op(A) op(B) + beta * C on row-major matrices with leading dimensions lda,
// ldb, ldc. Throws dsn::Error when a size does not fit CBLAS's 32-bit integers or a leading
// dimension is smaller than its matrix's row length.
void sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc);

}  // namespace dsn::cpu::detail
