// CPU convolution against the naive 7-loop reference (forward), central differences of that
// reference (backward-data, backward-weight, bias), and the scatter definition of PyTorch's
// ConvTranspose2d (transposed convolution through backward-data).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/conv2d.h"
#include "tests/cpu/tolerance.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::kForward;
using test::kGradient;

Conv2dShape make_shape(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                       std::int64_t k, std::int64_t r, std::int64_t s, std::int64_t stride,
                       std::int64_t pad) {
  Conv2dShape shape;
  shape.n = n;
  shape.c = c;
  shape.h = h;
  shape.w = w;
  shape.k = k;
  shape.r = r;
  shape.s = s;
  shape.stride_h = shape.stride_w = stride;
  shape.pad_h = shape.pad_w = pad;
  return shape;
}

std::string describe(const Conv2dShape& s) {
  return fmt::format("x ({}, {}, {}, {}), w ({}, {}, {}, {}), stride {}x{}, pad {}x{}", s.n, s.c,
                     s.h, s.w, s.k, s.c, s.r, s.s, s.stride_h, s.stride_w, s.pad_h, s.pad_w);
}

std::int64_t input_size(const Conv2dShape& s) {
  return s.n * s.c * s.h * s.w;
}
std::int64_t weight_size(const Conv2dShape& s) {
  return s.k * s.c * s.r * s.s;
}
std::int64_t output_size(const Conv2dShape& s) {
  return s.n * s.k * s.out_h() * s.out_w();
}

// Small awkward shapes: odd sizes, channels 1, 3, 5, 17, batch 1 and 3, stride 2, padding 1
// and 2, 1x1 (both the direct path and stride 2), 5x5 with pad 2, non-square filters.
std::vector<Conv2dShape> awkward_shapes() {
  std::vector<Conv2dShape> shapes = {
      make_shape(1, 1, 7, 5, 1, 3, 3, 1, 1),   make_shape(3, 3, 9, 11, 5, 3, 3, 2, 1),
      make_shape(1, 17, 7, 5, 1, 5, 5, 1, 2),  make_shape(3, 5, 7, 5, 17, 1, 1, 1, 0),
      make_shape(3, 3, 9, 11, 4, 1, 1, 2, 0),  make_shape(1, 5, 8, 8, 3, 3, 3, 2, 2),
      make_shape(1, 3, 11, 11, 2, 7, 7, 2, 3), make_shape(1, 3, 6, 6, 2, 6, 6, 1, 0),
  };
  Conv2dShape rectangular = make_shape(3, 3, 7, 5, 2, 3, 2, 1, 0);
  rectangular.stride_h = 2;
  rectangular.pad_h = 1;
  shapes.push_back(rectangular);
  return shapes;
}

struct ConvData {
  std::vector<float> x, w, bias;
};

ConvData random_data(const Conv2dShape& shape, std::uint32_t seed) {
  return {ref::random_uniform(input_size(shape), -1.0f, 1.0f, seed),
          ref::random_uniform(weight_size(shape), -1.0f, 1.0f, seed + 1),
          ref::random_uniform(shape.k, -1.0f, 1.0f, seed + 2)};
}

TEST_CASE("conv2d output size matches enumerated filter positions") {
  for (const Conv2dShape& shape : awkward_shapes()) {
    CAPTURE(describe(shape));
    CHECK(shape.out_h() == ref::conv_out_size(shape.h, shape.r, shape.stride_h, shape.pad_h));
    CHECK(shape.out_w() == ref::conv_out_size(shape.w, shape.s, shape.stride_w, shape.pad_w));
  }
}

TEST_CASE("conv2d forward matches naive loops") {
  std::uint32_t seed = 100;
  for (const Conv2dShape& shape : awkward_shapes()) {
    for (const bool relu : {false, true}) {
      CAPTURE(describe(shape));
      CAPTURE(relu);
      const ConvData data = random_data(shape, seed += 3);
      std::vector<float> y(output_size(shape), -7.0f);
      cpu::conv2d_forward(shape, data.x.data(), data.w.data(), data.bias.data(), y.data(), relu);
      const Vec expected = ref::conv2d_forward(
          shape, ref::to_double(data.x), ref::to_double(data.w), ref::to_double(data.bias), relu);
      DSN_CHECK_CLOSE(y, expected, kForward);
    }
  }
}

TEST_CASE("conv2d forward without bias") {
  const Conv2dShape shape = make_shape(3, 5, 9, 11, 3, 3, 3, 2, 1);
  const ConvData data = random_data(shape, 7);
  std::vector<float> y(output_size(shape));
  cpu::conv2d_forward(shape, data.x.data(), data.w.data(), nullptr, y.data());
  const Vec expected =
      ref::conv2d_forward(shape, ref::to_double(data.x), ref::to_double(data.w), {}, false);
  DSN_CHECK_CLOSE(y, expected, kForward);
}

TEST_CASE("conv2d backward matches finite differences") {
  std::uint32_t seed = 300;
  for (const Conv2dShape& shape : awkward_shapes()) {
    CAPTURE(describe(shape));
    const ConvData data = random_data(shape, seed += 4);
    const std::vector<float> g = ref::random_uniform(output_size(shape), -1.0f, 1.0f, seed + 3);
    const Vec x = ref::to_double(data.x), w = ref::to_double(data.w);
    const Vec bias = ref::to_double(data.bias), g_d = ref::to_double(g);

    // L = sum(g * conv(x, w) + bias); the kernels receive g as dy.
    std::vector<float> dx(input_size(shape), 9.0f), dw(weight_size(shape), 9.0f);
    std::vector<float> dbias(shape.k, 9.0f);
    cpu::conv2d_backward_data(shape, g.data(), data.w.data(), dx.data());
    cpu::conv2d_backward_weight(shape, data.x.data(), g.data(), dw.data(), dbias.data());

    const Vec dx_numeric = ref::numeric_gradient(
        [&](const Vec& v) { return ref::dot(g_d, ref::conv2d_forward(shape, v, w, bias, false)); },
        x);
    const Vec dw_numeric = ref::numeric_gradient(
        [&](const Vec& v) { return ref::dot(g_d, ref::conv2d_forward(shape, x, v, bias, false)); },
        w);
    const Vec dbias_numeric = ref::numeric_gradient(
        [&](const Vec& v) { return ref::dot(g_d, ref::conv2d_forward(shape, x, w, v, false)); },
        bias);
    DSN_CHECK_CLOSE(dx, dx_numeric, kGradient);
    DSN_CHECK_CLOSE(dw, dw_numeric, kGradient);
    DSN_CHECK_CLOSE(dbias, dbias_numeric, kGradient);
  }
}

TEST_CASE("conv2d backward-weight accepts a null bias gradient") {
  const Conv2dShape shape = make_shape(3, 3, 7, 5, 2, 3, 3, 1, 1);
  const ConvData data = random_data(shape, 11);
  const std::vector<float> g = ref::random_uniform(output_size(shape), -1.0f, 1.0f, 12);
  std::vector<float> dw(weight_size(shape));
  cpu::conv2d_backward_weight(shape, data.x.data(), g.data(), dw.data(), nullptr);
  DSN_CHECK_CLOSE(dw, ref::conv2d_backward_weight(shape, ref::to_double(data.x), ref::to_double(g)),
                  kGradient);
}

// 3x3 filters over 512 channels make the kernel cut the output positions into tiles of 1,024
// columns. A 33x33 plane (1,089 positions) splits into two runs inside one image. A batch of
// five 15x15 planes puts four whole images into one tile and the fifth into another. The
// naive backward loops replace finite differences here, which would be too slow.
TEST_CASE("conv2d tiled paths match naive loops") {
  const std::vector<Conv2dShape> shapes = {make_shape(1, 512, 33, 33, 1, 3, 3, 1, 1),
                                           make_shape(5, 512, 15, 15, 2, 3, 3, 1, 1)};
  std::uint32_t seed = 500;
  for (const Conv2dShape& shape : shapes) {
    CAPTURE(describe(shape));
    const ConvData data = random_data(shape, seed += 4);
    const std::vector<float> g = ref::random_uniform(output_size(shape), -1.0f, 1.0f, seed + 3);
    const Vec x = ref::to_double(data.x), w = ref::to_double(data.w);

    std::vector<float> y(output_size(shape));
    cpu::conv2d_forward(shape, data.x.data(), data.w.data(), data.bias.data(), y.data(), true);
    DSN_CHECK_CLOSE(y, ref::conv2d_forward(shape, x, w, ref::to_double(data.bias), true),
                    test::kLongReduction);

    std::vector<float> dx(input_size(shape)), dw(weight_size(shape)), dbias(shape.k);
    cpu::conv2d_backward_data(shape, g.data(), data.w.data(), dx.data());
    cpu::conv2d_backward_weight(shape, data.x.data(), g.data(), dw.data(), dbias.data());
    DSN_CHECK_CLOSE(dx, ref::conv2d_backward_data(shape, ref::to_double(g), w),
                    test::kLongReduction);
    DSN_CHECK_CLOSE(dw, ref::conv2d_backward_weight(shape, x, ref::to_double(g)),
                    test::kLongReduction);
  }
}

TEST_CASE("conv2d results repeat exactly") {
  const Conv2dShape shape = make_shape(5, 512, 15, 15, 2, 3, 3, 1, 1);
  const ConvData data = random_data(shape, 21);
  const std::vector<float> g = ref::random_uniform(output_size(shape), -1.0f, 1.0f, 22);
  std::vector<float> first(weight_size(shape)), second(weight_size(shape));
  cpu::conv2d_backward_weight(shape, data.x.data(), g.data(), first.data(), nullptr);
  cpu::conv2d_backward_weight(shape, data.x.data(), g.data(), second.data(), nullptr);
  CHECK(first == second);
}

// --- Transposed convolution --------------------------------------------------------------------

ref::TransposedConv make_transposed(std::int64_t n, std::int64_t c_in, std::int64_t h_in,
                                    std::int64_t w_in, std::int64_t c_out, std::int64_t kernel,
                                    std::int64_t stride, std::int64_t pad) {
  ref::TransposedConv t;
  t.n = n;
  t.c_in = c_in;
  t.h_in = h_in;
  t.w_in = w_in;
  t.c_out = c_out;
  t.r = t.s = kernel;
  t.stride_h = t.stride_w = stride;
  t.pad_h = t.pad_w = pad;
  return t;
}

Conv2dShape as_conv(const ref::TransposedConv& t) {
  return transposed_conv_as_conv(t.n, t.c_in, t.h_in, t.w_in, t.c_out, t.r, t.s, t.stride_h,
                                 t.stride_w, t.pad_h, t.pad_w);
}

// Kernel 2f, stride f, pad 0 is the bilinear upsampling shape (f = 2 and f = 4); the others
// cover padding that crops the scattered output.
std::vector<ref::TransposedConv> transposed_shapes() {
  return {make_transposed(2, 3, 5, 4, 2, 4, 2, 0), make_transposed(1, 2, 3, 3, 3, 8, 4, 0),
          make_transposed(3, 5, 4, 5, 1, 3, 2, 1), make_transposed(1, 3, 5, 3, 2, 4, 2, 1),
          make_transposed(2, 1, 3, 4, 17, 3, 1, 2)};
}

TEST_CASE("transposed conv via backward-data matches scatter definition") {
  std::uint32_t seed = 700;
  for (const ref::TransposedConv& t : transposed_shapes()) {
    const Conv2dShape shape = as_conv(t);
    CAPTURE(describe(shape));
    REQUIRE(shape.h == t.h_out());
    REQUIRE(shape.w == t.w_out());
    REQUIRE(shape.out_h() == t.h_in);
    REQUIRE(shape.out_w() == t.w_in);
    const std::vector<float> x =
        ref::random_uniform(t.n * t.c_in * t.h_in * t.w_in, -1.0f, 1.0f, seed += 2);
    const std::vector<float> w =
        ref::random_uniform(t.c_in * t.c_out * t.r * t.s, -1.0f, 1.0f, seed + 1);
    std::vector<float> y(t.n * t.c_out * t.h_out() * t.w_out());
    cpu::conv2d_backward_data(shape, x.data(), w.data(), y.data());
    DSN_CHECK_CLOSE(y, ref::conv_transpose2d(t, ref::to_double(x), ref::to_double(w)), kForward);
  }
}

// The gradients of a transposed convolution are the forward convolution (input) and
// backward-weight with the roles of x and dy swapped (weights).
TEST_CASE("transposed conv gradients match finite differences") {
  std::uint32_t seed = 800;
  for (const ref::TransposedConv& t : transposed_shapes()) {
    const Conv2dShape shape = as_conv(t);
    CAPTURE(describe(shape));
    const std::vector<float> x =
        ref::random_uniform(t.n * t.c_in * t.h_in * t.w_in, -1.0f, 1.0f, seed += 3);
    const std::vector<float> w =
        ref::random_uniform(t.c_in * t.c_out * t.r * t.s, -1.0f, 1.0f, seed + 1);
    const std::vector<float> g =
        ref::random_uniform(t.n * t.c_out * t.h_out() * t.w_out(), -1.0f, 1.0f, seed + 2);
    const Vec x_d = ref::to_double(x), w_d = ref::to_double(w), g_d = ref::to_double(g);

    std::vector<float> dx(x.size()), dw(w.size());
    cpu::conv2d_forward(shape, g.data(), w.data(), nullptr, dx.data());
    cpu::conv2d_backward_weight(shape, g.data(), x.data(), dw.data(), nullptr);

    const Vec dx_numeric = ref::numeric_gradient(
        [&](const Vec& v) { return ref::dot(g_d, ref::conv_transpose2d(t, v, w_d)); }, x_d);
    const Vec dw_numeric = ref::numeric_gradient(
        [&](const Vec& v) { return ref::dot(g_d, ref::conv_transpose2d(t, x_d, v)); }, w_d);
    DSN_CHECK_CLOSE(dx, dx_numeric, kGradient);
    DSN_CHECK_CLOSE(dw, dw_numeric, kGradient);
  }
}

// --- Shape validation ----------------------------------------------------------------------

TEST_CASE("conv2d validate rejects invalid shapes") {
  const Conv2dShape good = make_shape(1, 3, 7, 5, 2, 3, 3, 1, 1);
  CHECK_NOTHROW(validate(good));

  Conv2dShape no_channels = good;
  no_channels.c = 0;
  CHECK_THROWS_WITH_AS(validate(no_channels), doctest::Contains("c = 0"), Error);

  Conv2dShape zero_stride = good;
  zero_stride.stride_w = 0;
  CHECK_THROWS_AS(validate(zero_stride), Error);

  Conv2dShape negative_pad = good;
  negative_pad.pad_h = -1;
  CHECK_THROWS_AS(validate(negative_pad), Error);

  // 2 + 2 * 0 < 3: truncating division would report one output row.
  Conv2dShape too_small = make_shape(1, 1, 2, 2, 1, 3, 3, 2, 0);
  CHECK_THROWS_WITH_AS(validate(too_small), doctest::Contains("larger than the padded input"),
                       Error);

  std::vector<float> x(4), w(9), y(1);
  CHECK_THROWS_AS(cpu::conv2d_forward(too_small, x.data(), w.data(), nullptr, y.data()), Error);
}

TEST_CASE("transposed conv rejects an empty output") {
  CHECK_THROWS_AS(transposed_conv_as_conv(1, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1), Error);
  CHECK_THROWS_AS(transposed_conv_as_conv(1, 1, 0, 3, 1, 3, 3, 1, 1, 0, 0), Error);
}

}  // namespace
}  // namespace dsn
