// CPU crop and channel concatenation against the double reference and central differences of
// it.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "engine/error.h"
#include "kernels/layout.h"
#include "tests/cpu/tolerance.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::kExact;
using test::kGradient;

CropShape make_crop(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                    std::int64_t offset_h, std::int64_t offset_w, std::int64_t out_h,
                    std::int64_t out_w) {
  CropShape shape;
  shape.n = n;
  shape.c = c;
  shape.h = h;
  shape.w = w;
  shape.offset_h = offset_h;
  shape.offset_w = offset_w;
  shape.out_h = out_h;
  shape.out_w = out_w;
  return shape;
}

TEST_CASE("crop forward and backward") {
  const CropShape shapes[] = {make_crop(3, 5, 9, 11, 2, 3, 5, 7), make_crop(1, 1, 7, 5, 0, 0, 7, 5),
                              make_crop(2, 3, 8, 8, 7, 0, 1, 8),
                              make_crop(1, 17, 6, 9, 1, 8, 4, 1)};
  std::uint32_t seed = 5000;
  for (const CropShape& shape : shapes) {
    CAPTURE(shape.offset_h);
    CAPTURE(shape.offset_w);
    const std::vector<float> x =
        ref::random_uniform(shape.n * shape.c * shape.h * shape.w, -1.0f, 1.0f, ++seed);
    const std::vector<float> g =
        ref::random_uniform(shape.n * shape.c * shape.out_h * shape.out_w, -1.0f, 1.0f, seed + 50);
    std::vector<float> y(g.size()), dx(x.size(), 6.0f);
    cpu::crop_forward(shape, x.data(), y.data());
    DSN_CHECK_CLOSE(y, ref::crop(shape, ref::to_double(x)), kExact);

    cpu::crop_backward(shape, g.data(), dx.data());
    const Vec g_d = ref::to_double(g);
    const Vec numeric = ref::numeric_gradient(
        [&](const Vec& v) { return ref::dot(g_d, ref::crop(shape, v)); }, ref::to_double(x));
    DSN_CHECK_CLOSE(dx, numeric, kGradient);
  }
}

TEST_CASE("crop validate rejects windows outside the input") {
  CHECK_NOTHROW(validate(make_crop(1, 1, 7, 5, 2, 1, 5, 4)));
  CHECK_THROWS_WITH_AS(validate(make_crop(1, 1, 7, 5, 3, 1, 5, 4)),
                       doctest::Contains("does not fit"), Error);
  CHECK_THROWS_AS(validate(make_crop(1, 1, 7, 5, -1, 0, 5, 4)), Error);
  CHECK_THROWS_AS(validate(make_crop(1, 1, 7, 5, 0, 0, 0, 4)), Error);
}

// Concatenation of three inputs with 1, 5 and 3 channels (one channel_insert each), and its
// backward (one channel_slice per input) against central differences of the reference concat.
TEST_CASE("concat through channel insert and slice") {
  const std::int64_t n = 3, hw = 7 * 5;
  const std::vector<std::int64_t> channels = {1, 5, 3};
  const std::int64_t total = 9;
  std::vector<std::vector<float>> inputs;
  std::vector<Vec> inputs_d;
  for (std::size_t t = 0; t < channels.size(); ++t) {
    inputs.push_back(ref::random_uniform(n * channels[t] * hw, -1.0f, 1.0f, 5100 + t));
    inputs_d.push_back(ref::to_double(inputs.back()));
  }

  std::vector<float> y(n * total * hw, 8.0f);
  std::int64_t offset = 0;
  for (std::size_t t = 0; t < channels.size(); ++t) {
    cpu::channel_insert(n, channels[t], total, hw, offset, inputs[t].data(), y.data());
    offset += channels[t];
  }
  DSN_CHECK_CLOSE(y, ref::concat(n, channels, hw, inputs_d), kExact);

  const std::vector<float> g = ref::random_uniform(y.size(), -1.0f, 1.0f, 5200);
  const Vec g_d = ref::to_double(g);
  offset = 0;
  for (std::size_t t = 0; t < channels.size(); ++t) {
    CAPTURE(t);
    std::vector<float> dx(inputs[t].size(), 6.0f);
    cpu::channel_slice(n, total, channels[t], hw, offset, g.data(), dx.data());
    offset += channels[t];
    const Vec numeric = ref::numeric_gradient(
        [&](const Vec& v) {
          std::vector<Vec> perturbed = inputs_d;
          perturbed[t] = v;
          return ref::dot(g_d, ref::concat(n, channels, hw, perturbed));
        },
        inputs_d[t]);
    DSN_CHECK_CLOSE(dx, numeric, kGradient);
  }
}

TEST_CASE("channel copies reject ranges outside the tensor") {
  std::vector<float> src(2 * 3 * 4), dst(2 * 5 * 4);
  CHECK_THROWS_AS(cpu::channel_insert(2, 3, 5, 4, 3, src.data(), dst.data()), Error);
  CHECK_THROWS_AS(cpu::channel_slice(2, 5, 3, 4, -1, dst.data(), src.data()), Error);
  CHECK_NOTHROW(cpu::channel_insert(2, 3, 5, 4, 2, src.data(), dst.data()));
}

}  // namespace
}  // namespace dsn
