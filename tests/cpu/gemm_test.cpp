// CPU GEMM against the naive triple loop over every transpose combination, padded leading
// dimensions, alpha and beta; and the double-accumulated sum.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "engine/error.h"
#include "kernels/gemm.h"
#include "kernels/reduce.h"
#include "tests/cpu/tolerance.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::kForward;

GemmShape make_shape(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                     std::int64_t pad, float alpha, float beta) {
  GemmShape shape;
  shape.trans_a = trans_a;
  shape.trans_b = trans_b;
  shape.m = m;
  shape.n = n;
  shape.k = k;
  // pad > 0 stores every row `pad` elements longer than its matrix row.
  if (pad > 0) {
    shape.lda = (trans_a ? m : k) + pad;
    shape.ldb = (trans_b ? k : n) + pad;
    shape.ldc = n + pad;
  }
  shape.alpha = alpha;
  shape.beta = beta;
  return shape;
}

TEST_CASE("gemm matches naive loops") {
  struct Size {
    std::int64_t m, n, k, pad;
    float alpha, beta;
  };
  const Size sizes[] = {{7, 5, 9, 0, 1.0f, 0.0f},
                        {17, 3, 1, 0, 1.0f, 0.0f},
                        {1, 1, 33, 2, 0.5f, 1.0f},
                        {5, 11, 13, 3, -1.5f, 0.25f},
                        {64, 65, 66, 1, 1.0f, 1.0f}};
  std::uint32_t seed = 6000;
  for (const Size size : sizes) {
    for (const bool trans_a : {false, true}) {
      for (const bool trans_b : {false, true}) {
        const GemmShape shape =
            make_shape(trans_a, trans_b, size.m, size.n, size.k, size.pad, size.alpha, size.beta);
        CAPTURE(size.m);
        CAPTURE(size.n);
        CAPTURE(size.k);
        CAPTURE(trans_a);
        CAPTURE(trans_b);
        CAPTURE(size.pad);
        const std::int64_t a_rows = trans_a ? size.k : size.m;
        const std::int64_t b_rows = trans_b ? size.n : size.k;
        const std::vector<float> a =
            ref::random_uniform(a_rows * shape.lead_a(), -1.0f, 1.0f, ++seed);
        const std::vector<float> b =
            ref::random_uniform(b_rows * shape.lead_b(), -1.0f, 1.0f, seed + 50);
        std::vector<float> c = ref::random_uniform(size.m * shape.lead_c(), -1.0f, 1.0f, seed + 99);
        const Vec expected =
            ref::gemm(shape, ref::to_double(a), ref::to_double(b), ref::to_double(c));
        cpu::gemm(shape, a.data(), b.data(), c.data());
        DSN_CHECK_CLOSE(c, expected, kForward);
      }
    }
  }
}

TEST_CASE("gemm rejects short leading dimensions") {
  GemmShape shape = make_shape(false, false, 3, 4, 5, 0, 1.0f, 0.0f);
  shape.lda = 4;  // rows of A are 5 long
  std::vector<float> a(15), b(20), c(12);
  CHECK_THROWS_WITH_AS(cpu::gemm(shape, a.data(), b.data(), c.data()), doctest::Contains("lda = 4"),
                       Error);
}

TEST_CASE("sum accumulates in double") {
  // 2^24 + 1 is not a float, so a float accumulator would stall at 2^24 for this input. The
  // count also spans several of the kernel's chunks.
  const std::int64_t count = (std::int64_t{1} << 24) + 4;
  std::vector<float> ones(count, 1.0f);
  CHECK(cpu::sum(count, ones.data()) == static_cast<double>(count));

  const std::vector<float> x = ref::random_uniform(100'003, -1.0f, 1.0f, 6100);
  double expected = 0.0;
  for (const float value : x) expected += value;
  CHECK(cpu::sum(static_cast<std::int64_t>(x.size()), x.data()) ==
        doctest::Approx(expected).epsilon(1e-12));
  CHECK(cpu::sum(0, x.data()) == 0.0);
}

}  // namespace
}  // namespace dsn
