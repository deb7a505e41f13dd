// cuda::gemm against a double-precision reference (tests/support/reference.h): every
// transposition on edge sizes, leading dimensions with alpha and beta, both tile sizes, and
// bit-identical results across the emulation's thread schedules.
//
// Tolerance: |got - expected| <= 2 * terms * 2^-24 * (|alpha| sum_l |a_il b_lj| + |beta c_ij|)
// per element, a worst-case float rounding bound for a sum of `terms` products, which no
// summation order can exceed but an indexing error does.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/error.h"
#include "kernels/cuda/gemm.h"
#include "tests/cuda/device_buffer.h"
#include "tests/cuda/rounding_bound.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using test::BoundCheck;
using test::check_rounding_bound;
using test::DeviceBuffer;

std::vector<float> absolute(const std::vector<float>& values) {
  std::vector<float> result(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) result[i] = std::abs(values[i]);
  return result;
}

// Elements of the stored A, B and C buffers for `shape`, leading dimensions included.
std::size_t a_elements(const GemmShape& shape) {
  return std::size_t((shape.trans_a ? shape.k : shape.m) * shape.lead_a());
}
std::size_t b_elements(const GemmShape& shape) {
  return std::size_t((shape.trans_b ? shape.n : shape.k) * shape.lead_b());
}
std::size_t c_elements(const GemmShape& shape) {
  return std::size_t(shape.m * shape.lead_c());
}

struct GemmRun {
  std::vector<float> c_before;
  std::vector<float> c_after;
  ref::Vec expected;
  ref::Vec magnitude;
};

// Runs cuda::gemm on random A, B and C and computes the double reference and magnitudes.
GemmRun run_gemm(const GemmShape& shape, std::uint32_t seed) {
  const std::vector<float> a = ref::random_uniform(a_elements(shape), -1.0f, 1.0f, seed);
  const std::vector<float> b = ref::random_uniform(b_elements(shape), -1.0f, 1.0f, seed + 1);
  GemmRun run;
  run.c_before = ref::random_uniform(c_elements(shape), -1.0f, 1.0f, seed + 2);

  DeviceBuffer<float> a_device(a), b_device(b), c_device(run.c_before);
  cuda::gemm(shape, a_device.get(), b_device.get(), c_device.get(), nullptr);
  run.c_after = c_device.to_host();

  run.expected =
      ref::gemm(shape, ref::to_double(a), ref::to_double(b), ref::to_double(run.c_before));
  GemmShape absolute_shape = shape;
  absolute_shape.alpha = std::abs(shape.alpha);
  absolute_shape.beta = std::abs(shape.beta);
  run.magnitude = ref::gemm(absolute_shape, ref::to_double(absolute(a)),
                            ref::to_double(absolute(b)), ref::to_double(absolute(run.c_before)));
  return run;
}

// The result C must meet the rounding bound inside (M, N), and the columns between N and ldc
// must be unchanged.
void check_gemm(const GemmShape& shape, std::uint32_t seed) {
  const GemmRun run = run_gemm(shape, seed);
  std::vector<float> got;
  ref::Vec expected, magnitude;
  bool padding_unchanged = true;
  for (std::int64_t i = 0; i < shape.m; ++i) {
    for (std::int64_t j = 0; j < shape.lead_c(); ++j) {
      const std::size_t at = std::size_t(i * shape.lead_c() + j);
      if (j < shape.n) {
        got.push_back(run.c_after[at]);
        expected.push_back(run.expected[at]);
        magnitude.push_back(run.magnitude[at]);
      } else if (std::memcmp(&run.c_after[at], &run.c_before[at], sizeof(float)) != 0) {
        padding_unchanged = false;
      }
    }
  }
  const BoundCheck result = check_rounding_bound(got, expected, magnitude, double(shape.k) + 2);
  CHECK_MESSAGE(result.ok, result.message);
  CHECK_MESSAGE(padding_unchanged, "gemm wrote C outside its n columns");
}

GemmShape make_shape(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k) {
  GemmShape shape;
  shape.trans_a = trans_a;
  shape.trans_b = trans_b;
  shape.m = m;
  shape.n = n;
  shape.k = k;
  return shape;
}

TEST_CASE("cuda gemm edge sizes all transpositions") {
  const std::int64_t sizes[] = {1, 7, 33, 65};
  std::uint32_t seed = 100;
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      for (const std::int64_t m : sizes) {
        for (const std::int64_t n : sizes) {
          for (const std::int64_t k : sizes) {
            CAPTURE(trans_a);
            CAPTURE(trans_b);
            CAPTURE(m);
            CAPTURE(n);
            CAPTURE(k);
            check_gemm(make_shape(trans_a, trans_b, m, n, k), seed++);
          }
        }
      }
    }
  }
}

TEST_CASE("cuda gemm leading dimensions alpha beta") {
  std::uint32_t seed = 300;
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      GemmShape shape = make_shape(trans_a, trans_b, 37, 70, 19);
      shape.lda = (trans_a ? shape.m : shape.k) + 5;
      shape.ldb = (trans_b ? shape.k : shape.n) + 3;
      shape.ldc = shape.n + 9;
      shape.alpha = -0.75f;
      shape.beta = 1.5f;
      CAPTURE(trans_a);
      CAPTURE(trans_b);
      check_gemm(shape, seed++);
    }
  }
}

TEST_CASE("cuda gemm beta zero ignores C") {
  const GemmShape shape = make_shape(false, false, 9, 13, 5);
  const std::vector<float> a = ref::random_uniform(9 * 5, -1.0f, 1.0f, 1);
  const std::vector<float> b = ref::random_uniform(5 * 13, -1.0f, 1.0f, 2);
  const std::vector<float> nan_c(9 * 13, std::numeric_limits<float>::quiet_NaN());
  DeviceBuffer<float> a_device(a), b_device(b), c_device(nan_c);
  cuda::gemm(shape, a_device.get(), b_device.get(), c_device.get(), nullptr);
  const std::vector<float> got = c_device.to_host();
  const ref::Vec expected =
      ref::gemm(shape, ref::to_double(a), ref::to_double(b), ref::Vec(9 * 13, 0.0));
  const ref::Vec magnitude = ref::gemm(shape, ref::to_double(absolute(a)),
                                       ref::to_double(absolute(b)), ref::Vec(9 * 13, 0.0));
  const BoundCheck result = check_rounding_bound(got, expected, magnitude, 5 + 2);
  CHECK_MESSAGE(result.ok, result.message);
}

TEST_CASE("cuda gemm empty reduction scales C") {
  GemmShape shape = make_shape(false, false, 5, 6, 0);
  shape.lda = 1;  // a packed (5, 0) A has no valid leading dimension
  shape.beta = 0.5f;
  const std::vector<float> c = ref::random_uniform(5 * 6, -1.0f, 1.0f, 3);
  DeviceBuffer<float> a_device(1), b_device(1), c_device(c);
  cuda::gemm(shape, a_device.get(), b_device.get(), c_device.get(), nullptr);
  const std::vector<float> got = c_device.to_host();
  for (std::size_t i = 0; i < c.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == 0.5f * c[i]);
  }
}

TEST_CASE("cuda gemm large tile") {
  // 17 x 17 tiles of 128 x 128: enough blocks for the large tile.
  for (const auto& [trans_a, trans_b] : {std::pair{false, true}, std::pair{true, false}}) {
    const GemmShape shape = make_shape(trans_a, trans_b, 2100, 2060, 9);
    REQUIRE(cuda::plan_gemm(shape).tile_m == 128);
    CAPTURE(trans_a);
    CAPTURE(trans_b);
    check_gemm(shape, 400 + trans_a);
  }
}

TEST_CASE("cuda gemm plan picks tile by grid size") {
  const cuda::TilePlan small = cuda::plan_gemm(make_shape(false, false, 512, 512, 64));
  CHECK(small.tile_m == 64);
  CHECK(small.tile_n == 64);
  CHECK(std::string(small.kernel) == "gemm_tiled");
  const cuda::TilePlan large = cuda::plan_gemm(make_shape(false, false, 4096, 4096, 64));
  CHECK(large.tile_m == 128);
  CHECK(large.tile_n == 128);
}

TEST_CASE("cuda gemm rejects invalid leading dimensions") {
  GemmShape shape = make_shape(false, false, 4, 4, 4);
  DeviceBuffer<float> buffer(64);
  shape.lda = 3;
  CHECK_THROWS_AS(cuda::gemm(shape, buffer.get(), buffer.get(), buffer.get(), nullptr), Error);
  shape.lda = 0;
  shape.ldc = 2;
  CHECK_THROWS_AS(cuda::gemm(shape, buffer.get(), buffer.get(), buffer.get(), nullptr), Error);
  shape.ldc = 0;
  shape.k = -1;
  CHECK_THROWS_AS(cuda::gemm(shape, buffer.get(), buffer.get(), buffer.get(), nullptr), Error);
}

#if defined(DSN_DEVICE_EMULATION)
TEST_CASE("cuda gemm identical across schedules") {
  const GemmShape shape = make_shape(true, false, 70, 90, 45);
  const std::vector<float> a = ref::random_uniform(a_elements(shape), -1.0f, 1.0f, 7);
  const std::vector<float> b = ref::random_uniform(b_elements(shape), -1.0f, 1.0f, 8);
  DeviceBuffer<float> a_device(a), b_device(b), c_device(c_elements(shape));
  const emu::Schedule saved = emu::schedule();
  std::vector<std::vector<float>> results;
  for (const char* order : {"forward", "reverse", "random:99"}) {
    emu::set_schedule(emu::parse_schedule(order));
    cuda::gemm(shape, a_device.get(), b_device.get(), c_device.get(), nullptr);
    results.push_back(c_device.to_host());
  }
  emu::set_schedule(saved);
  for (std::size_t run = 1; run < results.size(); ++run) {
    CAPTURE(run);
    CHECK(std::memcmp(results[run].data(), results[0].data(), results[0].size() * sizeof(float)) ==
          0);
  }
}
#endif

}  // namespace
}  // namespace dsn
