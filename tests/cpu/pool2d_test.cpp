// CPU pooling against hand-computed Caffe output sizes and divisors, the window-enumerating
// references in tests/support/reference.h, and central differences of those references.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/pool2d.h"
#include "tests/cpu/tolerance.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::kExact;
using test::kForward;
using test::kGradient;

Pool2dShape make_shape(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                       std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                       bool ceil_mode = true) {
  Pool2dShape shape;
  shape.n = n;
  shape.c = c;
  shape.h = h;
  shape.w = w;
  shape.kernel_h = shape.kernel_w = kernel;
  shape.stride_h = shape.stride_w = stride;
  shape.pad_h = shape.pad_w = pad;
  shape.ceil_mode = ceil_mode;
  return shape;
}

std::string describe(const Pool2dShape& s) {
  return fmt::format("x ({}, {}, {}, {}), kernel {}x{}, stride {}x{}, pad {}x{}, {}", s.n, s.c, s.h,
                     s.w, s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.pad_h, s.pad_w,
                     s.ceil_mode ? "ceil" : "floor");
}

std::int64_t input_size(const Pool2dShape& s) {
  return s.n * s.c * s.h * s.w;
}
std::int64_t output_size(const Pool2dShape& s) {
  return s.n * s.c * s.out_h() * s.out_w();
}

// The three DSN-VGG-Face pools (2x2/s2, 3x3/s2/p1, 3x3/s1/p1) on odd sizes, ceil rounding with
// a partial last window, a window that would start in the padding, floor mode, and a
// rectangular kernel.
std::vector<Pool2dShape> awkward_shapes() {
  std::vector<Pool2dShape> shapes = {
      make_shape(1, 1, 7, 5, 2, 2, 0),         make_shape(3, 3, 8, 6, 2, 2, 0),
      make_shape(1, 5, 9, 11, 3, 2, 1),        make_shape(3, 3, 7, 5, 3, 2, 1),
      make_shape(1, 17, 8, 8, 3, 2, 1),        make_shape(3, 5, 7, 5, 3, 1, 1),
      make_shape(1, 3, 5, 5, 2, 2, 1),         make_shape(3, 1, 7, 5, 2, 2, 0, false),
      make_shape(1, 3, 9, 11, 3, 2, 1, false), make_shape(1, 3, 14, 13, 3, 2, 0),
  };
  Pool2dShape rectangular = make_shape(3, 3, 9, 7, 3, 2, 1);
  rectangular.kernel_w = 2;
  rectangular.stride_w = 3;
  rectangular.pad_w = 0;
  shapes.push_back(rectangular);
  return shapes;
}

struct SizeCase {
  std::int64_t size, kernel, stride, pad;
  bool ceil_mode;
  std::int64_t expected;
};

// Expected sizes worked out by hand from ceil((size + 2 pad - kernel) / stride) + 1 (or floor),
// minus one when the last window would start at or beyond size + pad.
TEST_CASE("pool output sizes follow Caffe rounding") {
  const SizeCase cases[] = {
      {7, 2, 2, 0, true, 4},   // ceil(5/2)+1: last window covers row 6 only
      {7, 2, 2, 0, false, 3},  // floor drops the partial window
      {224, 2, 2, 0, true, 112},
      {112, 3, 2, 1, true, 57},  // ceil(111/2)+1 = 57, the last window starts at row 111
      {9, 3, 2, 1, true, 5},     // windows start at -1, 1, 3, 5, 7
      {8, 3, 2, 1, true, 5},     // the last window starts at row 7 and covers one image row
      {5, 2, 2, 1, true, 3},     // ceil(5/2)+1 = 4, but window 4 would start at 5 = size, dropped
      {7, 3, 1, 1, true, 7},     // same-size 3x3/s1/p1
      {14, 3, 2, 0, true, 7},    // ceil(11/2)+1
      {14, 3, 2, 0, false, 6},   // floor(11/2)+1
      {5, 1, 3, 0, true, 2},     // ceil(4/3)+1 = 3, but window 3 would start at 6 > size, dropped
      {3, 3, 1, 0, true, 1},
  };
  for (const SizeCase& c : cases) {
    CAPTURE(c.size);
    CAPTURE(c.kernel);
    CAPTURE(c.stride);
    CAPTURE(c.pad);
    CAPTURE(c.ceil_mode);
    Pool2dShape shape = make_shape(1, 1, c.size, c.size, c.kernel, c.stride, c.pad, c.ceil_mode);
    CHECK(shape.out_h() == c.expected);
    CHECK(shape.out_w() == c.expected);
    CHECK(ref::pool_out_size(c.size, c.kernel, c.stride, c.pad, c.ceil_mode) == c.expected);
  }
}

TEST_CASE("pool output sizes match enumerated windows") {
  for (const Pool2dShape& s : awkward_shapes()) {
    CAPTURE(describe(s));
    CHECK(s.out_h() == ref::pool_out_size(s.h, s.kernel_h, s.stride_h, s.pad_h, s.ceil_mode));
    CHECK(s.out_w() == ref::pool_out_size(s.w, s.kernel_w, s.stride_w, s.pad_w, s.ceil_mode));
  }
}

TEST_CASE("max pool forward matches reference") {
  std::uint32_t seed = 1000;
  for (const Pool2dShape& shape : awkward_shapes()) {
    CAPTURE(describe(shape));
    const std::vector<float> x = ref::random_uniform(input_size(shape), -1.0f, 1.0f, ++seed);
    std::vector<float> y(output_size(shape));
    std::vector<std::int32_t> argmax(output_size(shape), -5);
    cpu::max_pool2d_forward(shape, x.data(), y.data(), argmax.data());
    const ref::MaxPoolResult expected = ref::max_pool2d(shape, ref::to_double(x));
    DSN_CHECK_CLOSE(y, expected.y, kExact);
    CHECK(argmax == expected.argmax);
  }
}

TEST_CASE("max pool takes the first maximum and never the padding") {
  // All-equal 4x4 plane, 2x2/s2: each window's first cell in row-major order wins.
  const Pool2dShape ties = make_shape(1, 1, 4, 4, 2, 2, 0);
  const std::vector<float> zeros(16, 0.0f);
  std::vector<float> y(4);
  std::vector<std::int32_t> argmax(4);
  cpu::max_pool2d_forward(ties, zeros.data(), y.data(), argmax.data());
  CHECK(argmax == std::vector<std::int32_t>{0, 2, 8, 10});

  // Negative 3x3 plane, 3x3/s2/p1: padding (zero) must not win. Windows clipped to the image
  // are rows/columns {0, 1} and {1, 2}.
  const Pool2dShape padded = make_shape(1, 1, 3, 3, 3, 2, 1);
  const std::vector<float> x = {-9, -8, -7, -6, -5, -4, -3, -2, -1};
  cpu::max_pool2d_forward(padded, x.data(), y.data(), argmax.data());
  CHECK(y == std::vector<float>{-5, -4, -2, -1});
  CHECK(argmax == std::vector<std::int32_t>{4, 5, 7, 8});
}

TEST_CASE("avg pool forward matches reference") {
  std::uint32_t seed = 1100;
  for (const Pool2dShape& shape : awkward_shapes()) {
    CAPTURE(describe(shape));
    const std::vector<float> x = ref::random_uniform(input_size(shape), -1.0f, 1.0f, ++seed);
    std::vector<float> y(output_size(shape));
    cpu::avg_pool2d_forward(shape, x.data(), y.data());
    DSN_CHECK_CLOSE(y, ref::avg_pool2d(shape, ref::to_double(x)), kForward);
  }
}

// A 4x4 plane of ones under 3x3/s2/p1 (3x3 output). Window starts are -1, 1, 3; the last
// window ends at 6 but the padded input ends at 5, so its divisor extent is 2, not 3. Each
// output is (cells inside the image) / (cells inside the padded input), counted by hand.
TEST_CASE("avg pool divisor at the border") {
  const Pool2dShape shape = make_shape(1, 1, 4, 4, 3, 2, 1);
  REQUIRE(shape.out_h() == 3);
  const std::vector<float> ones(16, 1.0f);
  std::vector<float> y(9);
  cpu::avg_pool2d_forward(shape, ones.data(), y.data());
  const Vec expected = {4.0 / 9, 6.0 / 9, 2.0 / 6,  //
                        6.0 / 9, 9.0 / 9, 3.0 / 6,  //
                        2.0 / 6, 3.0 / 6, 1.0 / 4};
  DSN_CHECK_CLOSE(y, expected, kExact);
}

TEST_CASE("max pool backward matches finite differences") {
  std::uint32_t seed = 1200;
  for (const Pool2dShape& shape : awkward_shapes()) {
    CAPTURE(describe(shape));
    // Distinct values 1e-2 apart keep the argmax fixed under the 1e-6 perturbation.
    const std::vector<float> x = ref::random_distinct(input_size(shape), 1e-2f, ++seed);
    const std::vector<float> g = ref::random_uniform(output_size(shape), -1.0f, 1.0f, seed + 50);
    std::vector<float> y(output_size(shape));
    std::vector<std::int32_t> argmax(output_size(shape));
    cpu::max_pool2d_forward(shape, x.data(), y.data(), argmax.data());
    std::vector<float> dx(input_size(shape), 3.0f);
    cpu::max_pool2d_backward(shape, g.data(), argmax.data(), dx.data());

    const Vec g_d = ref::to_double(g);
    const Vec numeric = ref::numeric_gradient(
        [&](const Vec& v) { return ref::dot(g_d, ref::max_pool2d(shape, v).y); },
        ref::to_double(x));
    DSN_CHECK_CLOSE(dx, numeric, kGradient);
  }
}

TEST_CASE("avg pool backward matches finite differences") {
  std::uint32_t seed = 1300;
  for (const Pool2dShape& shape : awkward_shapes()) {
    CAPTURE(describe(shape));
    const std::vector<float> x = ref::random_uniform(input_size(shape), -1.0f, 1.0f, ++seed);
    const std::vector<float> g = ref::random_uniform(output_size(shape), -1.0f, 1.0f, seed + 50);
    std::vector<float> dx(input_size(shape), 3.0f);
    cpu::avg_pool2d_backward(shape, g.data(), dx.data());

    const Vec g_d = ref::to_double(g);
    const Vec numeric = ref::numeric_gradient(
        [&](const Vec& v) { return ref::dot(g_d, ref::avg_pool2d(shape, v)); }, ref::to_double(x));
    DSN_CHECK_CLOSE(dx, numeric, kGradient);
  }
}

TEST_CASE("global avg pool forward and backward") {
  const std::int64_t n = 3, c = 5, hw = 7 * 5;
  const std::vector<float> x = ref::random_uniform(n * c * hw, -1.0f, 1.0f, 1400);
  const std::vector<float> g = ref::random_uniform(n * c, -1.0f, 1.0f, 1401);
  std::vector<float> y(n * c), dx(n * c * hw, 3.0f);
  cpu::global_avg_pool_forward(n, c, hw, x.data(), y.data());
  DSN_CHECK_CLOSE(y, ref::global_avg_pool(n, c, hw, ref::to_double(x)), kForward);

  cpu::global_avg_pool_backward(n, c, hw, g.data(), dx.data());
  const Vec g_d = ref::to_double(g);
  const Vec numeric = ref::numeric_gradient(
      [&](const Vec& v) { return ref::dot(g_d, ref::global_avg_pool(n, c, hw, v)); },
      ref::to_double(x));
  DSN_CHECK_CLOSE(dx, numeric, kGradient);
}

TEST_CASE("pool validate rejects invalid shapes") {
  CHECK_NOTHROW(validate(make_shape(1, 1, 7, 5, 3, 2, 1)));
  CHECK_THROWS_WITH_AS(validate(make_shape(1, 1, 7, 5, 3, 2, 3)),
                       doctest::Contains("smaller than the kernel"), Error);
  CHECK_THROWS_AS(validate(make_shape(1, 0, 7, 5, 3, 2, 1)), Error);
  CHECK_THROWS_AS(validate(make_shape(1, 1, 7, 5, 3, 0, 1)), Error);
  CHECK_THROWS_WITH_AS(validate(make_shape(1, 1, 2, 2, 5, 1, 1)),
                       doctest::Contains("larger than the padded input"), Error);
}

}  // namespace
}  // namespace dsn
