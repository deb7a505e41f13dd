// Tests of cuda::conv2d_forward, conv2d_backward_data and conv2d_backward_weight. Small awkward
// shapes are compared with the double references of tests/support/reference.h, and shapes large
// enough for the 128 x 128 tile with the CPU twin (kernels/cpu/conv2d.cpp). The transposed
// convolutions of bilinear upsampling run through backward data. Results must be bit-identical
// across the emulation's thread schedules.
//
// Tolerance: |got - expected| <= 2 * terms * 2^-24 * sum |a_i b_i| per element, where the sum
// runs over the products (and the bias) that make the element: a worst-case float rounding
// bound that no summation order can exceed but an indexing error does. Against the CPU twin the
// same bound covers the rounding of both sides, each at most terms * 2^-24 * sum |a_i b_i|.
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
#include "kernels/conv2d.h"
#include "kernels/cuda/conv2d.h"
#include "tests/cuda/device_buffer.h"
#include "tests/cuda/rounding_bound.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using test::DeviceBuffer;

std::vector<float> absolute(const std::vector<float>& values) {
  std::vector<float> result(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) result[i] = std::abs(values[i]);
  return result;
}

ref::Vec absolute_double(const std::vector<float>& values) {
  return ref::to_double(absolute(values));
}

Conv2dShape conv_shape(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
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

std::size_t x_size(const Conv2dShape& s) {
  return std::size_t(s.n * s.c * s.h * s.w);
}
std::size_t w_size(const Conv2dShape& s) {
  return std::size_t(s.k * s.c * s.r * s.s);
}
std::size_t y_size(const Conv2dShape& s) {
  return std::size_t(s.n * s.k * s.out_h() * s.out_w());
}

struct NamedShape {
  const char* name;
  Conv2dShape shape;
};

// Small awkward shapes: odd sizes, strides, padding, 1x1, channels that are not multiples of a
// tile, batch 1 and 3, the small-channel path (C * R * S <= 32), and phases without taps.
std::vector<NamedShape> small_shapes() {
  std::vector<NamedShape> shapes = {
      {"3x3 pad 1 odd sizes", conv_shape(3, 5, 9, 11, 17, 3, 3, 1, 1)},
      {"5x5 stride 2 pad 2", conv_shape(1, 17, 13, 12, 33, 5, 5, 2, 2)},
      {"1x1", conv_shape(3, 33, 7, 5, 5, 1, 1, 1, 0)},
      {"1x1 stride 2", conv_shape(1, 17, 9, 8, 7, 1, 1, 2, 0)},
      {"7x7 stride 2 pad 3", conv_shape(1, 3, 23, 21, 8, 7, 7, 2, 3)},
      {"rgb 3x3 pad 5", conv_shape(3, 3, 12, 10, 70, 3, 3, 1, 5)},
      {"gray 5x5 pad 2", conv_shape(1, 1, 8, 9, 9, 5, 5, 1, 2)},
      {"filter as large as padded input", conv_shape(2, 4, 3, 3, 6, 5, 5, 1, 1)},
      {"2x2 stride 3 pad 1", conv_shape(1, 5, 10, 11, 4, 2, 2, 3, 1)},
      {"65 channels 3x3", conv_shape(1, 65, 6, 7, 65, 3, 3, 1, 1)},
  };
  Conv2dShape rectangular = conv_shape(2, 6, 7, 10, 11, 1, 3, 1, 0);
  rectangular.stride_w = 2;
  rectangular.pad_w = 1;
  shapes.push_back({"1x3 stride 1x2 pad 0x1", rectangular});
  return shapes;
}

// --- Forward ---------------------------------------------------------------------------------

void check_forward(const Conv2dShape& shape, bool with_bias, bool relu, std::uint32_t seed) {
  const std::vector<float> x = ref::random_uniform(x_size(shape), -1.0f, 1.0f, seed);
  const std::vector<float> w = ref::random_uniform(w_size(shape), -1.0f, 1.0f, seed + 1);
  const std::vector<float> bias = ref::random_uniform(std::size_t(shape.k), -1.0f, 1.0f, seed + 2);
  DeviceBuffer<float> x_device(x), w_device(w), bias_device(bias), y_device(y_size(shape));
  cuda::conv2d_forward(shape, x_device.get(), w_device.get(),
                       with_bias ? bias_device.get() : nullptr, y_device.get(), relu, nullptr);
  const std::vector<float> got = y_device.to_host();

  const ref::Vec no_bias;
  const ref::Vec expected = ref::conv2d_forward(shape, ref::to_double(x), ref::to_double(w),
                                                with_bias ? ref::to_double(bias) : no_bias, relu);
  const ref::Vec magnitude =
      ref::conv2d_forward(shape, absolute_double(x), absolute_double(w),
                          with_bias ? absolute_double(bias) : no_bias, false);
  CHECK_ROUNDING_BOUND(got, expected, magnitude,
                       double(shape.c * shape.r * shape.s + (with_bias ? 1 : 0)));
}

TEST_CASE("cuda conv2d_forward small shapes") {
  std::uint32_t seed = 1000;
  int variant = 0;
  for (const NamedShape& named : small_shapes()) {
    INFO(named.name);
    const bool with_bias = variant % 2 == 0;
    const bool relu = variant % 3 != 1;
    CAPTURE(with_bias);
    CAPTURE(relu);
    check_forward(named.shape, with_bias, relu, seed);
    seed += 10;
    ++variant;
  }
}

TEST_CASE("cuda conv2d_forward small-channel path") {
  // conv1_1 of VGG-Face as used here: 3 input channels, 3x3 filter, padding 5.
  const Conv2dShape rgb = conv_shape(3, 3, 12, 10, 70, 3, 3, 1, 5);
  const cuda::TilePlan plan = cuda::plan_conv2d_forward(rgb);
  CHECK(plan.tile_k == 32);
  CHECK(plan.tile_k >= rgb.c * rgb.r * rgb.s);
  check_forward(rgb, true, true, 2000);
  // 4 channels of 3x3 (36 taps) no longer fit one step.
  CHECK(cuda::plan_conv2d_forward(conv_shape(1, 4, 8, 8, 8, 3, 3, 1, 1)).tile_k == 8);
}

// --- Backward data ---------------------------------------------------------------------------

void check_backward_data(const Conv2dShape& shape, std::uint32_t seed) {
  const std::vector<float> dy = ref::random_uniform(y_size(shape), -1.0f, 1.0f, seed);
  const std::vector<float> w = ref::random_uniform(w_size(shape), -1.0f, 1.0f, seed + 1);
  DeviceBuffer<float> dy_device(dy), w_device(w), dx_device(x_size(shape));
  cuda::conv2d_backward_data(shape, dy_device.get(), w_device.get(), dx_device.get(), nullptr);
  const std::vector<float> got = dx_device.to_host();

  const ref::Vec expected = ref::conv2d_backward_data(shape, ref::to_double(dy), ref::to_double(w));
  const ref::Vec magnitude =
      ref::conv2d_backward_data(shape, absolute_double(dy), absolute_double(w));
  CHECK_ROUNDING_BOUND(got, expected, magnitude, double(shape.k * shape.r * shape.s));
}

TEST_CASE("cuda conv2d_backward_data small shapes") {
  std::uint32_t seed = 3000;
  for (const NamedShape& named : small_shapes()) {
    INFO(named.name);
    check_backward_data(named.shape, seed);
    seed += 10;
  }
}

// y (N, C_out, (H_in - 1) * f - 2 * pad + R, ...) = the transposed convolution of x by
// w (C_in, C_out, R, S), through conv2d_backward_data of transposed_conv_as_conv().
void check_transposed(const ref::TransposedConv& t, std::uint32_t seed) {
  const Conv2dShape shape = transposed_conv_as_conv(t.n, t.c_in, t.h_in, t.w_in, t.c_out, t.r, t.s,
                                                    t.stride_h, t.stride_w, t.pad_h, t.pad_w);
  const std::vector<float> x =
      ref::random_uniform(std::size_t(t.n * t.c_in * t.h_in * t.w_in), -1.0f, 1.0f, seed);
  const std::vector<float> w =
      ref::random_uniform(std::size_t(t.c_in * t.c_out * t.r * t.s), -1.0f, 1.0f, seed + 1);
  DeviceBuffer<float> x_device(x), w_device(w), y_device(x_size(shape));
  cuda::conv2d_backward_data(shape, x_device.get(), w_device.get(), y_device.get(), nullptr);
  const std::vector<float> got = y_device.to_host();

  const ref::Vec expected = ref::conv_transpose2d(t, ref::to_double(x), ref::to_double(w));
  const ref::Vec magnitude = ref::conv_transpose2d(t, absolute_double(x), absolute_double(w));
  CHECK_ROUNDING_BOUND(got, expected, magnitude, double(t.c_in * t.r * t.s));
}

TEST_CASE("cuda conv2d transposed bilinear upsampling shapes") {
  // Upsampling by f: filter 2f x 2f, stride f, no padding, for every factor up to 32.
  for (std::int64_t f = 2; f <= 32; ++f) {
    CAPTURE(f);
    ref::TransposedConv t;
    t.n = f % 2 == 0 ? 1 : 2;
    t.c_in = 2;
    t.h_in = 2;
    t.w_in = 3;
    t.c_out = 3;
    t.r = t.s = 2 * f;
    t.stride_h = t.stride_w = f;
    check_transposed(t, std::uint32_t(4000 + f));
  }
  // The same filter with padding 1, as the learned 2x upsampling of FCN-style heads crops it.
  ref::TransposedConv padded;
  padded.n = 3;
  padded.c_in = 5;
  padded.h_in = 5;
  padded.w_in = 4;
  padded.c_out = 4;
  padded.r = padded.s = 4;
  padded.stride_h = padded.stride_w = 2;
  padded.pad_h = padded.pad_w = 1;
  check_transposed(padded, 4100);
}

// --- Backward weight -------------------------------------------------------------------------

void check_backward_weight(const Conv2dShape& shape, bool with_bias, std::uint32_t seed) {
  const std::vector<float> x = ref::random_uniform(x_size(shape), -1.0f, 1.0f, seed);
  const std::vector<float> dy = ref::random_uniform(y_size(shape), -1.0f, 1.0f, seed + 1);
  DeviceBuffer<float> x_device(x), dy_device(dy), dw_device(w_size(shape));
  DeviceBuffer<float> dbias_device(std::size_t(shape.k));
  cuda::conv2d_backward_weight(shape, x_device.get(), dy_device.get(), dw_device.get(),
                               with_bias ? dbias_device.get() : nullptr, nullptr);
  const std::vector<float> got = dw_device.to_host();

  const std::int64_t plane = shape.out_h() * shape.out_w();
  const double terms = double(shape.n * plane);
  const ref::Vec expected =
      ref::conv2d_backward_weight(shape, ref::to_double(x), ref::to_double(dy));
  const ref::Vec magnitude =
      ref::conv2d_backward_weight(shape, absolute_double(x), absolute_double(dy));
  CHECK_ROUNDING_BOUND(got, expected, magnitude, terms);

  if (!with_bias) return;
  const std::vector<float> got_bias = dbias_device.to_host();
  ref::Vec expected_bias(std::size_t(shape.k), 0.0), magnitude_bias(std::size_t(shape.k), 0.0);
  for (std::int64_t n = 0; n < shape.n; ++n) {
    for (std::int64_t k = 0; k < shape.k; ++k) {
      for (std::int64_t i = 0; i < plane; ++i) {
        const double value = dy[std::size_t((n * shape.k + k) * plane + i)];
        expected_bias[std::size_t(k)] += value;
        magnitude_bias[std::size_t(k)] += std::abs(value);
      }
    }
  }
  CHECK_ROUNDING_BOUND(got_bias, expected_bias, magnitude_bias, terms);
}

TEST_CASE("cuda conv2d_backward_weight small shapes") {
  std::uint32_t seed = 5000;
  int variant = 0;
  for (const NamedShape& named : small_shapes()) {
    INFO(named.name);
    check_backward_weight(named.shape, variant++ % 2 == 0, seed);
    seed += 10;
  }
}

TEST_CASE("cuda conv2d_backward_weight split reduction") {
  // 3200 output pixels feed one 64 x 64 tile: the reduction is split into slices.
  const Conv2dShape shape = conv_shape(2, 3, 40, 40, 8, 3, 3, 1, 1);
  const cuda::TilePlan plan = cuda::plan_conv2d_backward_weight(shape);
  CHECK(plan.splits > 1);
  check_backward_weight(shape, true, 6000);
  // A short reduction is not split.
  CHECK(cuda::plan_conv2d_backward_weight(conv_shape(1, 3, 8, 8, 8, 3, 3, 1, 1)).splits == 1);
}

// --- Large tiles, against the CPU twin -------------------------------------------------------

TEST_CASE("cuda conv2d large tiles match CPU twin") {
  SUBCASE("forward") {
    // 36 x 8 tiles of 128 x 128.
    const Conv2dShape shape = conv_shape(2, 4, 48, 48, 1000, 3, 3, 1, 1);
    REQUIRE(cuda::plan_conv2d_forward(shape).tile_m == 128);
    const std::vector<float> x = ref::random_uniform(x_size(shape), -1.0f, 1.0f, 7000);
    const std::vector<float> w = ref::random_uniform(w_size(shape), -1.0f, 1.0f, 7001);
    const std::vector<float> bias = ref::random_uniform(std::size_t(shape.k), -1.0f, 1.0f, 7002);
    DeviceBuffer<float> x_device(x), w_device(w), bias_device(bias), y_device(y_size(shape));
    cuda::conv2d_forward(shape, x_device.get(), w_device.get(), bias_device.get(), y_device.get(),
                         true, nullptr);
    const std::vector<float> got = y_device.to_host();

    std::vector<float> expected(y_size(shape)), magnitude(y_size(shape));
    cpu::conv2d_forward(shape, x.data(), w.data(), bias.data(), expected.data(), true);
    const std::vector<float> x_abs = absolute(x), w_abs = absolute(w), bias_abs = absolute(bias);
    cpu::conv2d_forward(shape, x_abs.data(), w_abs.data(), bias_abs.data(), magnitude.data(),
                        false);
    CHECK_ROUNDING_BOUND(got, ref::to_double(expected), ref::to_double(magnitude),
                         double(shape.c * shape.r * shape.s + 1));
  }
  SUBCASE("backward data, stride 2") {
    // 4 phases of 36 x 3 tiles.
    const Conv2dShape shape = conv_shape(2, 300, 96, 96, 4, 3, 3, 2, 1);
    REQUIRE(cuda::plan_conv2d_backward_data(shape).tile_m == 128);
    const std::vector<float> dy = ref::random_uniform(y_size(shape), -1.0f, 1.0f, 7100);
    const std::vector<float> w = ref::random_uniform(w_size(shape), -1.0f, 1.0f, 7101);
    DeviceBuffer<float> dy_device(dy), w_device(w), dx_device(x_size(shape));
    cuda::conv2d_backward_data(shape, dy_device.get(), w_device.get(), dx_device.get(), nullptr);
    const std::vector<float> got = dx_device.to_host();

    std::vector<float> expected(x_size(shape)), magnitude(x_size(shape));
    cpu::conv2d_backward_data(shape, dy.data(), w.data(), expected.data());
    const std::vector<float> dy_abs = absolute(dy), w_abs = absolute(w);
    cpu::conv2d_backward_data(shape, dy_abs.data(), w_abs.data(), magnitude.data());
    CHECK_ROUNDING_BOUND(got, ref::to_double(expected), ref::to_double(magnitude),
                         double(shape.k * shape.r * shape.s));
  }
  SUBCASE("backward weight") {
    // 18 x 15 tiles of 128 x 128 over C * R * S = 2304 taps and K = 1920.
    const Conv2dShape shape = conv_shape(1, 256, 5, 5, 1920, 3, 3, 1, 1);
    const cuda::TilePlan plan = cuda::plan_conv2d_backward_weight(shape);
    REQUIRE(plan.tile_m == 128);
    CHECK(plan.splits == 1);
    const std::vector<float> x = ref::random_uniform(x_size(shape), -1.0f, 1.0f, 7200);
    const std::vector<float> dy = ref::random_uniform(y_size(shape), -1.0f, 1.0f, 7201);
    DeviceBuffer<float> x_device(x), dy_device(dy), dw_device(w_size(shape));
    cuda::conv2d_backward_weight(shape, x_device.get(), dy_device.get(), dw_device.get(), nullptr,
                                 nullptr);
    const std::vector<float> got = dw_device.to_host();

    std::vector<float> expected(w_size(shape)), magnitude(w_size(shape));
    cpu::conv2d_backward_weight(shape, x.data(), dy.data(), expected.data(), nullptr);
    const std::vector<float> x_abs = absolute(x), dy_abs = absolute(dy);
    cpu::conv2d_backward_weight(shape, x_abs.data(), dy_abs.data(), magnitude.data(), nullptr);
    CHECK_ROUNDING_BOUND(got, ref::to_double(expected), ref::to_double(magnitude),
                         double(shape.n * shape.out_h() * shape.out_w()));
  }
}

// --- Shape checks ----------------------------------------------------------------------------

TEST_CASE("cuda conv2d rejects unsupported shapes") {
  DeviceBuffer<float> buffer(16);
  float* p = buffer.get();
  // More stride phases than the grid's z dimension holds.
  const Conv2dShape strided = conv_shape(1, 1, 300, 300, 1, 1, 1, 256, 0);
  CHECK_THROWS_AS(cuda::conv2d_backward_data(strided, p, p, p, nullptr), Error);
  // One image of 2^32 elements exceeds the 32-bit indexing.
  const Conv2dShape huge = conv_shape(1, 65536, 256, 256, 1, 1, 1, 1, 0);
  CHECK_THROWS_AS(cuda::conv2d_forward(huge, p, p, nullptr, p, false, nullptr), Error);
  CHECK_THROWS_AS(cuda::conv2d_backward_weight(huge, p, p, p, nullptr, nullptr), Error);
  // Invalid shapes fail validate().
  const Conv2dShape empty = conv_shape(1, 0, 8, 8, 1, 3, 3, 1, 1);
  CHECK_THROWS_AS(cuda::conv2d_forward(empty, p, p, nullptr, p, false, nullptr), Error);
}

// --- Determinism -----------------------------------------------------------------------------

#if defined(DSN_DEVICE_EMULATION)
TEST_CASE("cuda conv2d identical across schedules") {
  // Stride 2 for the phases of backward data, and a reduction long enough to be split.
  const Conv2dShape shape = conv_shape(2, 3, 33, 31, 9, 3, 3, 2, 1);
  REQUIRE(cuda::plan_conv2d_backward_weight(shape).splits > 1);
  const std::vector<float> x = ref::random_uniform(x_size(shape), -1.0f, 1.0f, 8000);
  const std::vector<float> w = ref::random_uniform(w_size(shape), -1.0f, 1.0f, 8001);
  const std::vector<float> dy = ref::random_uniform(y_size(shape), -1.0f, 1.0f, 8002);
  DeviceBuffer<float> x_device(x), w_device(w), dy_device(dy);
  DeviceBuffer<float> y_device(y_size(shape)), dx_device(x_size(shape));
  DeviceBuffer<float> dw_device(w_size(shape)), dbias_device(std::size_t(shape.k));

  const emu::Schedule saved = emu::schedule();
  std::vector<std::vector<float>> results;
  for (const char* order : {"forward", "reverse", "random:7"}) {
    emu::set_schedule(emu::parse_schedule(order));
    cuda::conv2d_forward(shape, x_device.get(), w_device.get(), nullptr, y_device.get(), false,
                         nullptr);
    cuda::conv2d_backward_data(shape, dy_device.get(), w_device.get(), dx_device.get(), nullptr);
    cuda::conv2d_backward_weight(shape, x_device.get(), dy_device.get(), dw_device.get(),
                                 dbias_device.get(), nullptr);
    std::vector<float> all = y_device.to_host();
    for (const DeviceBuffer<float>* buffer : {&dx_device, &dw_device, &dbias_device}) {
      const std::vector<float> part = buffer->to_host();
      all.insert(all.end(), part.begin(), part.end());
    }
    results.push_back(std::move(all));
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
