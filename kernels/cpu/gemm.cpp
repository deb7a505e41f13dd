// Single-precision GEMM on row-major matrices through OpenBLAS's CBLAS interface. Every other
// CPU kernel that multiplies matrices (the convolution) goes through detail::sgemm here, so the
// size checks live in one place.
#include "kernels/gemm.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include <cblas.h>

#include "engine/error.h"
#include "kernels/cpu/blas.h"

namespace dsn::cpu {
namespace detail {
namespace {

blasint to_blas_int(std::int64_t value, const char* name) {
  DSN_CHECK(value >= 0 && value <= std::numeric_limits<blasint>::max(),
            "GEMM {} = {} is outside the range of the BLAS integer type [0, {}]; split the "
            "multiplication into smaller blocks",
            name, value, std::numeric_limits<blasint>::max());
  return static_cast<blasint>(value);
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc) {
  // Row-major storage: A is stored (m, k) or, transposed, (k, m); likewise B (k, n) or (n, k).
  const std::int64_t a_row = trans_a ? m : k;
  const std::int64_t b_row = trans_b ? k : n;
  DSN_CHECK(lda >= std::max<std::int64_t>(1, a_row),
            "GEMM lda = {} is smaller than the row length {} of A", lda, a_row);
  DSN_CHECK(ldb >= std::max<std::int64_t>(1, b_row),
            "GEMM ldb = {} is smaller than the row length {} of B", ldb, b_row);
  DSN_CHECK(ldc >= std::max<std::int64_t>(1, n), "GEMM ldc = {} is smaller than n = {}", ldc, n);
  const blasint bm = to_blas_int(m, "m");
  const blasint bn = to_blas_int(n, "n");
  const blasint bk = to_blas_int(k, "k");
  const blasint blda = to_blas_int(lda, "lda");
  const blasint bldb = to_blas_int(ldb, "ldb");
  const blasint bldc = to_blas_int(ldc, "ldc");
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, bm, bn, bk, alpha, a, blda, b, bldb, beta, c,
              bldc);
}

}  // namespace detail

void gemm(const GemmShape& shape, const float* a, const float* b, float* c) {
  detail::sgemm(shape.trans_a, shape.trans_b, shape.m, shape.n, shape.k, shape.alpha, a,
                shape.lead_a(), b, shape.lead_b(), shape.beta, c, shape.lead_c());
}

}  // namespace dsn::cpu
