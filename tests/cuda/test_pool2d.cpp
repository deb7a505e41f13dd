// cuda pooling against the dsn::cpu twins and the window-enumerating references of
// tests/support/reference.h. Max pooling (values and argmax, ties included), both backward
// passes, average pooling forward and global average pooling backward must match the CPU twins
// bit for bit: the GPU kernels perform the same float operations in the same order. Average
// pooling is also checked against the double reference with the worst-case rounding bound
// |got - expected| <= 2 K 2^-24 sum|terms| (K = window cells + 1 for the division); global
// average pooling forward, which accumulates in double, against its double reference with
// one float rounding and bit-identical results across thread schedules.
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
#include "kernels/cuda/pool2d.h"
#include "kernels/pool2d.h"
#include "tests/cuda/device_buffer.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::DeviceBuffer;

// Returns an empty string when both spans hold the same bits, else the first difference.
template <typename T>
std::string bitwise_mismatch(std::span<const T> got, std::span<const T> expected) {
  if (got.size() != expected.size()) {
    return fmt::format("size mismatch: got {}, expected {}", got.size(), expected.size());
  }
  std::size_t differences = 0, first = 0;
  for (std::size_t i = got.size(); i-- > 0;) {
    if (std::memcmp(&got[i], &expected[i], sizeof(T)) != 0) {
      ++differences;
      first = i;
    }
  }
  if (differences == 0) return {};
  return fmt::format("{} of {} elements differ; first at index {}: got {}, expected {}",
                     differences, got.size(), first, got[first], expected[first]);
}

// Checks |got_i - expected_i| <= bound_i and reports the worst element.
std::string bound_violation(std::span<const float> got, std::span<const double> expected,
                            std::span<const double> bound) {
  if (got.size() != expected.size() || got.size() != bound.size()) {
    return fmt::format("size mismatch: got {}, expected {}, bounds {}", got.size(), expected.size(),
                       bound.size());
  }
  std::size_t failures = 0, worst = 0;
  double worst_ratio = -1.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double error = std::abs(double(got[i]) - expected[i]);
    const bool pass = error <= bound[i];  // false for NaN
    double ratio = std::numeric_limits<double>::infinity();
    if (pass) ratio = bound[i] > 0.0 ? error / bound[i] : 0.0;
    if (!pass) ++failures;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (failures == 0) return {};
  return fmt::format(
      "{} of {} elements exceed the bound; worst at index {}: got {:.9g}, "
      "expected {:.9g}, error {:.3g}, bound {:.3g}",
      failures, got.size(), worst, got[worst], expected[worst],
      std::abs(double(got[worst]) - expected[worst]), bound[worst]);
}

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

// Pools of 2x2 stride 2 with partial last windows (odd sizes, ceil mode), 3x3 stride 2 pad 1
// and 3x3 stride 1 pad 1. Also a window that would start in the padding, floor mode, a
// rectangular kernel with unequal strides, a 1x1 input, and a long row that the launch splits
// into column blocks. Channels 1, 3, 5 and 17, batch 1 and 3.
std::vector<Pool2dShape> awkward_shapes() {
  std::vector<Pool2dShape> shapes = {
      make_shape(1, 1, 7, 5, 2, 2, 0),         make_shape(3, 3, 8, 6, 2, 2, 0),
      make_shape(1, 5, 9, 11, 3, 2, 1),        make_shape(3, 3, 7, 5, 3, 2, 1),
      make_shape(1, 17, 8, 8, 3, 2, 1),        make_shape(3, 5, 7, 5, 3, 1, 1),
      make_shape(1, 3, 5, 5, 2, 2, 1),         make_shape(3, 1, 7, 5, 2, 2, 0, false),
      make_shape(1, 3, 9, 11, 3, 2, 1, false), make_shape(1, 3, 14, 13, 3, 2, 0),
      make_shape(1, 1, 1, 1, 1, 1, 0),         make_shape(1, 1, 3, 601, 2, 2, 0),
  };
  Pool2dShape rectangular = make_shape(3, 3, 9, 10, 3, 1, 1);
  rectangular.kernel_w = 2;
  rectangular.stride_w = 3;
  rectangular.pad_w = 0;
  shapes.push_back(rectangular);
  return shapes;
}

std::size_t input_size(const Pool2dShape& s) {
  return std::size_t(s.n * s.c * s.h * s.w);
}
std::size_t output_size(const Pool2dShape& s) {
  return std::size_t(s.n * s.c * s.out_h() * s.out_w());
}

std::vector<float> absolute(const std::vector<float>& values) {
  std::vector<float> result(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) result[i] = std::abs(values[i]);
  return result;
}

// Runs max pooling forward on the device and with the CPU twin, and checks values and argmax
// bit for bit and against the double reference. Then checks the backward pass bit for bit.
void check_max_pool(const Pool2dShape& shape, const std::vector<float>& x) {
  CAPTURE(describe(shape));
  std::vector<float> y(output_size(shape));
  std::vector<std::int32_t> argmax(output_size(shape));
  cpu::max_pool2d_forward(shape, x.data(), y.data(), argmax.data());

  DeviceBuffer<float> x_device(x), y_device(y.size());
  DeviceBuffer<std::int32_t> argmax_device(argmax.size());
  cuda::max_pool2d_forward(shape, x_device.get(), y_device.get(), argmax_device.get(), nullptr);
  const std::vector<float> got_y = y_device.to_host();
  const std::vector<std::int32_t> got_argmax = argmax_device.to_host();
  const std::string y_mismatch = bitwise_mismatch<float>(got_y, y);
  CHECK_MESSAGE(y_mismatch.empty(), y_mismatch);
  const std::string argmax_mismatch = bitwise_mismatch<std::int32_t>(got_argmax, argmax);
  CHECK_MESSAGE(argmax_mismatch.empty(), argmax_mismatch);

  const ref::MaxPoolResult reference = ref::max_pool2d(shape, ref::to_double(x));
  const std::string ref_argmax_mismatch =
      bitwise_mismatch<std::int32_t>(got_argmax, reference.argmax);
  CHECK_MESSAGE(ref_argmax_mismatch.empty(), ref_argmax_mismatch);
  const std::vector<float> reference_y(reference.y.begin(), reference.y.end());
  const std::string ref_y_mismatch = bitwise_mismatch<float>(got_y, reference_y);
  CHECK_MESSAGE(ref_y_mismatch.empty(), ref_y_mismatch);

  const std::vector<float> dy = ref::random_uniform(y.size(), -1.0f, 1.0f, 17);
  std::vector<float> dx(input_size(shape));
  cpu::max_pool2d_backward(shape, dy.data(), argmax.data(), dx.data());
  DeviceBuffer<float> dy_device(dy);
  // NaN-filled by the allocator: every element must be written.
  DeviceBuffer<float> dx_device(dx.size());
  cuda::max_pool2d_backward(shape, dy_device.get(), argmax_device.get(), dx_device.get(), nullptr);
  const std::string dx_mismatch = bitwise_mismatch<float>(dx_device.to_host(), dx);
  CHECK_MESSAGE(dx_mismatch.empty(), dx_mismatch);
}

TEST_CASE("cuda pool2d max forward and backward match cpu") {
  std::uint32_t seed = 1;
  for (const Pool2dShape& shape : awkward_shapes()) {
    check_max_pool(shape, ref::random_uniform(input_size(shape), -1.0f, 1.0f, seed++));
  }
}

TEST_CASE("cuda pool2d max ties pick the first maximum") {
  // Values from {0, 1, 2}: most windows hold several equal maxima.
  std::uint32_t seed = 50;
  for (const Pool2dShape& shape : awkward_shapes()) {
    std::vector<float> x = ref::random_uniform(input_size(shape), 0.0f, 3.0f, seed++);
    for (float& value : x) value = std::floor(value);
    check_max_pool(shape, x);
  }
}

TEST_CASE("cuda pool2d avg forward matches cpu and reference") {
  std::uint32_t seed = 100;
  for (const Pool2dShape& shape : awkward_shapes()) {
    CAPTURE(describe(shape));
    const std::vector<float> x = ref::random_uniform(input_size(shape), -1.0f, 1.0f, seed++);
    std::vector<float> expected(output_size(shape));
    cpu::avg_pool2d_forward(shape, x.data(), expected.data());
    DeviceBuffer<float> x_device(x), y_device(expected.size());
    cuda::avg_pool2d_forward(shape, x_device.get(), y_device.get(), nullptr);
    const std::vector<float> got = y_device.to_host();
    const std::string mismatch = bitwise_mismatch<float>(got, expected);
    CHECK_MESSAGE(mismatch.empty(), mismatch);

    // Window sums of |x| over the divisor give sum|terms| per output.
    const Vec reference = ref::avg_pool2d(shape, ref::to_double(x));
    Vec bound = ref::avg_pool2d(shape, ref::to_double(absolute(x)));
    const double terms = double(shape.kernel_h * shape.kernel_w + 1);
    for (double& b : bound) b *= 2.0 * terms * std::ldexp(1.0, -24);
    const std::string violation = bound_violation(got, reference, bound);
    CHECK_MESSAGE(violation.empty(), violation);
  }
}

// Returns dx of average pooling in double by its scatter definition, written independently of
// the kernels. Every window sends dy / divisor to each of its cells inside the image, and the
// divisor counts the window cells inside the padded input.
Vec avg_pool2d_backward_reference(const Pool2dShape& sh, const Vec& dy) {
  const std::int64_t out_h =
      ref::pool_out_size(sh.h, sh.kernel_h, sh.stride_h, sh.pad_h, sh.ceil_mode);
  const std::int64_t out_w =
      ref::pool_out_size(sh.w, sh.kernel_w, sh.stride_w, sh.pad_w, sh.ceil_mode);
  Vec dx(std::size_t(sh.n * sh.c * sh.h * sh.w), 0.0);
  for (std::int64_t plane = 0; plane < sh.n * sh.c; ++plane)
    for (std::int64_t p = 0; p < out_h; ++p)
      for (std::int64_t q = 0; q < out_w; ++q) {
        std::int64_t cells = 0;
        for (std::int64_t a = 0; a < sh.kernel_h; ++a)
          for (std::int64_t b = 0; b < sh.kernel_w; ++b) {
            if (p * sh.stride_h + a < sh.h + 2 * sh.pad_h &&
                q * sh.stride_w + b < sh.w + 2 * sh.pad_w) {
              ++cells;
            }
          }
        const double share = dy[std::size_t((plane * out_h + p) * out_w + q)] / double(cells);
        for (std::int64_t a = 0; a < sh.kernel_h; ++a)
          for (std::int64_t b = 0; b < sh.kernel_w; ++b) {
            const std::int64_t ih = p * sh.stride_h + a - sh.pad_h;
            const std::int64_t iw = q * sh.stride_w + b - sh.pad_w;
            if (ih < 0 || ih >= sh.h || iw < 0 || iw >= sh.w) continue;
            dx[std::size_t((plane * sh.h + ih) * sh.w + iw)] += share;
          }
      }
  return dx;
}

TEST_CASE("cuda pool2d avg backward matches cpu and reference") {
  std::uint32_t seed = 200;
  for (const Pool2dShape& shape : awkward_shapes()) {
    CAPTURE(describe(shape));
    const std::vector<float> dy = ref::random_uniform(output_size(shape), -1.0f, 1.0f, seed++);
    std::vector<float> expected(input_size(shape));
    cpu::avg_pool2d_backward(shape, dy.data(), expected.data());
    DeviceBuffer<float> dy_device(dy);
    DeviceBuffer<float> dx_device(expected.size());  // NaN-filled: every element must be written
    cuda::avg_pool2d_backward(shape, dy_device.get(), dx_device.get(), nullptr);
    const std::vector<float> got = dx_device.to_host();
    const std::string mismatch = bitwise_mismatch<float>(got, expected);
    CHECK_MESSAGE(mismatch.empty(), mismatch);

    // K = windows per cell (at most kernel_h * kernel_w) + 1 for the division.
    const Vec reference = avg_pool2d_backward_reference(shape, ref::to_double(dy));
    Vec bound = avg_pool2d_backward_reference(shape, ref::to_double(absolute(dy)));
    const double terms = double(shape.kernel_h * shape.kernel_w + 1);
    for (double& b : bound) b *= 2.0 * terms * std::ldexp(1.0, -24);
    const std::string violation = bound_violation(got, reference, bound);
    CHECK_MESSAGE(violation.empty(), violation);
  }
}

struct GlobalShape {
  std::int64_t n, c, hw;
};

// 1x1 planes, 7x7 (ResNet-50 and DenseNet-121 heads), 14x14, and planes longer than a warp's
// stride many times over.
constexpr GlobalShape kGlobalShapes[] = {
    {1, 1, 1}, {3, 17, 49}, {2, 3, 196}, {1, 5, 3001}, {3, 1, 2},
};

TEST_CASE("cuda pool2d global avg forward matches reference") {
  std::uint32_t seed = 300;
  for (const GlobalShape& s : kGlobalShapes) {
    CAPTURE(s.n);
    CAPTURE(s.c);
    CAPTURE(s.hw);
    const std::vector<float> x =
        ref::random_uniform(std::size_t(s.n * s.c * s.hw), -1.0f, 2.0f, seed++);
    DeviceBuffer<float> x_device(x), y_device(std::size_t(s.n * s.c));
    cuda::global_avg_pool_forward(s.n, s.c, s.hw, x_device.get(), y_device.get(), nullptr);

    // Accumulated in double, so the error is one float rounding (2^-24 relative, doubled as
    // margin) plus the double sum's worst case 2 K 2^-53 mean|x| (doubled likewise).
    const Vec reference = ref::global_avg_pool(s.n, s.c, s.hw, ref::to_double(x));
    Vec bound = ref::global_avg_pool(s.n, s.c, s.hw, ref::to_double(absolute(x)));
    for (std::size_t i = 0; i < bound.size(); ++i) {
      bound[i] =
          std::ldexp(std::abs(reference[i]), -23) + 4.0 * double(s.hw) * std::ldexp(bound[i], -53);
    }
    const std::string violation = bound_violation(y_device.to_host(), reference, bound);
    CHECK_MESSAGE(violation.empty(), violation);
  }
}

TEST_CASE("cuda pool2d global avg backward matches cpu") {
  std::uint32_t seed = 400;
  for (const GlobalShape& s : kGlobalShapes) {
    CAPTURE(s.n);
    CAPTURE(s.c);
    CAPTURE(s.hw);
    const std::vector<float> dy = ref::random_uniform(std::size_t(s.n * s.c), -1.0f, 1.0f, seed++);
    std::vector<float> expected(std::size_t(s.n * s.c * s.hw));
    cpu::global_avg_pool_backward(s.n, s.c, s.hw, dy.data(), expected.data());
    DeviceBuffer<float> dy_device(dy), dx_device(expected.size());
    cuda::global_avg_pool_backward(s.n, s.c, s.hw, dy_device.get(), dx_device.get(), nullptr);
    const std::string mismatch = bitwise_mismatch<float>(dx_device.to_host(), expected);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
  }
}

TEST_CASE("cuda pool2d rejects invalid shapes") {
  DeviceBuffer<float> buffer(64);
  DeviceBuffer<std::int32_t> indices(64);
  Pool2dShape pad_too_large = make_shape(1, 1, 4, 4, 2, 2, 2);
  CHECK_THROWS_AS(
      cuda::max_pool2d_forward(pad_too_large, buffer.get(), buffer.get(), indices.get(), nullptr),
      Error);
  CHECK_THROWS_AS(cuda::avg_pool2d_backward(make_shape(1, 1, 2, 2, 3, 1, 0), buffer.get(),
                                            buffer.get(), nullptr),
                  Error);
  CHECK_THROWS_AS(cuda::global_avg_pool_forward(1, 0, 4, buffer.get(), buffer.get(), nullptr),
                  Error);
}

#if defined(DSN_DEVICE_EMULATION)
TEST_CASE("cuda pool2d global avg identical across schedules") {
  const GlobalShape s{3, 17, 49};
  const std::vector<float> x = ref::random_uniform(std::size_t(s.n * s.c * s.hw), -1.0f, 1.0f, 8);
  DeviceBuffer<float> x_device(x), y_device(std::size_t(s.n * s.c));
  const emu::Schedule saved = emu::schedule();
  std::vector<std::vector<float>> results;
  for (const char* order : {"forward", "reverse", "random:3"}) {
    emu::set_schedule(emu::parse_schedule(order));
    cuda::global_avg_pool_forward(s.n, s.c, s.hw, x_device.get(), y_device.get(), nullptr);
    results.push_back(y_device.to_host());
  }
  emu::set_schedule(saved);
  for (std::size_t run = 1; run < results.size(); ++run) {
    CAPTURE(run);
    const std::string mismatch = bitwise_mismatch<float>(results[run], results[0]);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
  }
}
#endif

}  // namespace
}  // namespace dsn
