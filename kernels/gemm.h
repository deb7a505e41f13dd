// Single-precision GEMM on row-major matrices: C (M, N) = alpha * op(A) op(B) + beta * C, where
// op(A) is (M, K) and op(B) is (K, N). Used by linear layers and the CPU convolution.
#pragma once

#include <cstdint>

namespace dsn {

struct GemmShape {
  bool trans_a = false, trans_b = false;
  std::int64_t m = 1, n = 1, k = 1;
  std::int64_t lda = 0, ldb = 0, ldc = 0;  // leading dimensions; 0 means packed
  float alpha = 1.0f, beta = 0.0f;

  std::int64_t lead_a() const { return lda ? lda : (trans_a ? m : k); }
  std::int64_t lead_b() const { return ldb ? ldb : (trans_b ? k : n); }
  std::int64_t lead_c() const { return ldc ? ldc : n; }
};

namespace cpu {

// Through CBLAS (OpenBLAS).
void gemm(const GemmShape& shape, const float* a, const float* b, float* c);

}  // namespace cpu
}  // namespace dsn
