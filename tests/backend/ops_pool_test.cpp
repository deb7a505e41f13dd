// Pooling ops on the CPU and the CUDA backend, forward and backward through autograd. Max and
// average pooling perform the same float operations in the same order on both backends: window
// cells in row-major order forward, and each input cell's window contributions in window order
// backward. They must therefore match bit for bit, and the max pooling output must also equal
// the window-enumerating reference exactly. Global average pooling accumulates in double on
// both backends and is compared with a double reference: one float rounding, doubled as margin,
// plus twice the worst-case double summation error, 2^-23 |mean| + 4 K 2^-53 mean |x| for
// K = H * W terms. Its backward is a broadcast and must match bit for bit.
#include <cmath>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include "engine/ops.h"
#include "tests/backend/support.h"
#include "tests/support/reference.h"

namespace dsn::backend_test {
namespace {

struct PoolCase {
  Shape input;
  ops::Pool2dParams params;
};

ops::Pool2dParams pool_params(std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                              bool ceil_mode) {
  ops::Pool2dParams params;
  params.kernel_h = params.kernel_w = kernel;
  params.stride_h = params.stride_w = stride;
  params.pad_h = params.pad_w = pad;
  params.ceil_mode = ceil_mode;
  return params;
}

// Overlapping windows with padding and a ceil-mode partial window, the VGG 2x2 stride 2 on odd
// sizes (a partial last window), floor mode, and stride 1.
std::vector<PoolCase> pool_cases() {
  return {
      {{2, 3, 7, 9}, pool_params(3, 2, 1, true)},
      {{1, 2, 7, 5}, pool_params(2, 2, 0, true)},
      {{3, 1, 6, 5}, pool_params(2, 2, 0, false)},
      {{2, 2, 5, 6}, pool_params(3, 1, 1, true)},
  };
}

Pool2dShape kernel_shape(const PoolCase& c) {
  Pool2dShape shape;
  shape.n = c.input[0];
  shape.c = c.input[1];
  shape.h = c.input[2];
  shape.w = c.input[3];
  shape.kernel_h = c.params.kernel_h;
  shape.kernel_w = c.params.kernel_w;
  shape.stride_h = c.params.stride_h;
  shape.stride_w = c.params.stride_w;
  shape.pad_h = c.params.pad_h;
  shape.pad_w = c.params.pad_w;
  shape.ceil_mode = c.params.ceil_mode;
  return shape;
}

std::size_t output_count(const Pool2dShape& s) {
  return std::size_t(s.n * s.c *
                     ref::pool_out_size(s.h, s.kernel_h, s.stride_h, s.pad_h, s.ceil_mode) *
                     ref::pool_out_size(s.w, s.kernel_w, s.stride_w, s.pad_w, s.ceil_mode));
}

void check_all_same_bits(const BothResults& results) {
  check_same_bits("output", results.cpu.output, results.cuda.output);
  check_same_bits("dx", results.cpu.grads[0], results.cuda.grads[0]);
}

TEST_CASE("ops max_pool2d matches cpu bitwise") {
  std::uint32_t seed = 5000;
  for (const PoolCase& c : pool_cases()) {
    const Pool2dShape shape = kernel_shape(c);
    CAPTURE(to_string(c.input));
    CAPTURE(c.params.kernel_h);
    CAPTURE(c.params.stride_h);
    CAPTURE(c.params.pad_h);
    CAPTURE(c.params.ceil_mode);
    const std::size_t count = std::size_t(numel(c.input));
    const std::vector<float> dy = ref::random_uniform(output_count(shape), -1.0f, 1.0f, seed++);
    const ops::Pool2dParams params = c.params;
    const auto op = [params](const std::vector<Tensor>& t) {
      return ops::max_pool2d(t[0], params);
    };

    {
      INFO("distinct values");
      const std::vector<float> x = ref::random_uniform(count, -1.0f, 1.0f, seed++);
      const BothResults results = run_on_both({{c.input, x}}, op, dy);
      check_all_same_bits(results);
      check_same_bits("output against the reference",
                      to_float(ref::max_pool2d(shape, to_double(x)).y), results.cuda.output);
    }
    {
      // Values from {0, 1, 2}: most windows hold several equal maxima, and both backends must
      // pick the first one.
      INFO("ties");
      std::vector<float> x = ref::random_uniform(count, 0.0f, 3.0f, seed++);
      for (float& value : x) value = std::floor(value);
      check_all_same_bits(run_on_both({{c.input, x}}, op, dy));
    }
  }
}

TEST_CASE("ops avg_pool2d matches cpu bitwise") {
  std::uint32_t seed = 5100;
  for (const PoolCase& c : pool_cases()) {
    const Pool2dShape shape = kernel_shape(c);
    CAPTURE(to_string(c.input));
    CAPTURE(c.params.kernel_h);
    CAPTURE(c.params.stride_h);
    CAPTURE(c.params.pad_h);
    CAPTURE(c.params.ceil_mode);
    const std::vector<float> x =
        ref::random_uniform(std::size_t(numel(c.input)), -1.0f, 1.0f, seed++);
    const std::vector<float> dy = ref::random_uniform(output_count(shape), -1.0f, 1.0f, seed++);
    const ops::Pool2dParams params = c.params;
    const BothResults results = run_on_both(
        {{c.input, x}},
        [params](const std::vector<Tensor>& t) { return ops::avg_pool2d(t[0], params); }, dy);
    check_all_same_bits(results);

    // Independent of the CPU twin: a window sum of K cells and a division, at most
    // 2 (K + 1) 2^-24 times the window's mean of |x| away from the double average.
    check_both_within("avg_pool2d output against the reference", results.cpu.output,
                      results.cuda.output, ref::avg_pool2d(shape, to_double(x)),
                      sum_bound(ref::avg_pool2d(shape, absolute(x)),
                                double(c.params.kernel_h * c.params.kernel_w + 1)));
  }
}

TEST_CASE("ops global_avg_pool2d matches reference") {
  const std::vector<Shape> shapes = {{1, 1, 1, 1}, {3, 5, 3, 7}, {2, 17, 7, 7}, {1, 2, 40, 45}};
  std::uint32_t seed = 5200;
  for (const Shape& shape : shapes) {
    CAPTURE(to_string(shape));
    const std::int64_t n = shape[0], c = shape[1], hw = shape[2] * shape[3];
    // A positive offset, so the mean is not small against the values it averages.
    const std::vector<float> x =
        ref::random_uniform(std::size_t(numel(shape)), -1.0f, 2.0f, seed++);
    const std::vector<float> dy = ref::random_uniform(std::size_t(n * c), -1.0f, 1.0f, seed++);
    const BothResults results = run_on_both(
        {{shape, x}}, [](const std::vector<Tensor>& t) { return ops::global_avg_pool2d(t[0]); },
        dy);

    const Vec expected = ref::global_avg_pool(n, c, hw, to_double(x));
    Vec bound = ref::global_avg_pool(n, c, hw, absolute(x));
    for (std::size_t i = 0; i < bound.size(); ++i) {
      bound[i] =
          std::ldexp(std::abs(expected[i]), -23) + 4.0 * double(hw) * std::ldexp(bound[i], -53);
    }
    check_both_within("global_avg_pool2d output", results.cpu.output, results.cuda.output, expected,
                      bound);
    check_same_bits("global_avg_pool2d dx", results.cpu.grads[0], results.cuda.grads[0]);
  }
}

}  // namespace
}  // namespace dsn::backend_test
