// Forward values and gradients of every op in engine/ops.h against the double-precision
// references of tests/support/reference.h and their central differences. The shapes are small
// and awkward: odd sizes, strides, padding, and channel counts that are not multiples of
// anything.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "kernels/philox.h"
#include "tests/engine/gradcheck.h"
#include "tests/support/reference.h"

namespace dsn::engine_test {
namespace {

std::size_t count(const Shape& shape) {
  return static_cast<std::size_t>(numel(shape));
}

std::vector<float> uniform(const Shape& shape, float low, float high, std::uint32_t seed) {
  return ref::random_uniform(count(shape), low, high, seed);
}

Conv2dShape conv_shape(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                       std::int64_t k, std::int64_t r, std::int64_t s, std::int64_t stride_h,
                       std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  Conv2dShape shape;
  shape.n = n;
  shape.c = c;
  shape.h = h;
  shape.w = w;
  shape.k = k;
  shape.r = r;
  shape.s = s;
  shape.stride_h = stride_h;
  shape.stride_w = stride_w;
  shape.pad_h = pad_h;
  shape.pad_w = pad_w;
  return shape;
}

// Adds bias (C) to every plane of y (N, C, HW).
Vec add_bias(Vec y, const Vec& bias, std::int64_t hw) {
  for (std::size_t i = 0; i < y.size(); ++i) {
    y[i] += bias[(i / static_cast<std::size_t>(hw)) % bias.size()];
  }
  return y;
}

}  // namespace

TEST_CASE("conv2d gradients") {
  struct Case {
    Conv2dShape shape;
    bool bias;
    bool relu;
  };
  const std::vector<Case> cases = {
      {conv_shape(2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1), true, false},
      {conv_shape(2, 3, 7, 6, 4, 3, 3, 2, 2, 1, 1), false, false},
      {conv_shape(1, 5, 5, 4, 3, 1, 1, 1, 1, 0, 0), true, false},  // 1x1: the pointwise path
      {conv_shape(2, 2, 6, 7, 3, 3, 2, 2, 1, 0, 1), true, true},   // non-square filter, ReLU
      {conv_shape(1, 3, 5, 5, 2, 3, 3, 1, 1, 1, 1), false, true},  // ReLU without bias
  };
  std::uint32_t seed = 1;
  for (const Case& c : cases) {
    const Conv2dShape g = c.shape;
    CAPTURE(
        fmt::format("x ({}, {}, {}, {}) w ({}, {}, {}, {}) stride {}x{} pad {}x{} bias {} "
                    "relu {}",
                    g.n, g.c, g.h, g.w, g.k, g.c, g.r, g.s, g.stride_h, g.stride_w, g.pad_h,
                    g.pad_w, c.bias, c.relu));
    const Shape x_shape{g.n, g.c, g.h, g.w}, w_shape{g.k, g.c, g.r, g.s};
    std::vector<GradInput> inputs = {
        {"x", x_shape, uniform(x_shape, -1, 1, seed++)},
        {"weight", w_shape, uniform(w_shape, -0.5f, 0.5f, seed++)},
    };
    if (c.bias) inputs.push_back({"bias", {g.k}, uniform({g.k}, -0.5f, 0.5f, seed++)});
    if (c.relu) {
      // Central differences are meaningless at ReLU's kink: keep pre-activations away from 0.
      const Vec z =
          ref::conv2d_forward(g, ref::to_double(inputs[0].values), ref::to_double(inputs[1].values),
                              c.bias ? ref::to_double(inputs[2].values) : Vec(), false);
      REQUIRE(min_abs(z) > 1e-3);
    }
    const ops::Conv2dParams params{g.stride_h, g.stride_w, g.pad_h, g.pad_w};
    check_gradients(
        inputs, {g.n, g.k, g.out_h(), g.out_w()},
        [&](const std::vector<Tensor>& t) {
          return ops::conv2d(t[0], t[1], c.bias ? t[2] : Tensor(), params, c.relu);
        },
        [&](const std::vector<Vec>& v) {
          return ref::conv2d_forward(g, v[0], v[1], c.bias ? v[2] : Vec(), c.relu);
        });
  }
}

TEST_CASE("conv_transpose2d gradients") {
  struct Case {
    ref::TransposedConv shape;
    bool bias;
  };
  const std::vector<Case> cases = {
      {{2, 3, 4, 3, 2, 4, 4, 2, 2, 1, 1}, true},   // stride 2 kernel 4: 2x upsampling
      {{1, 2, 3, 4, 2, 4, 4, 2, 2, 0, 0}, false},  // the BilinearUpsample geometry
      {{1, 2, 3, 5, 3, 3, 2, 1, 1, 0, 0}, false},  // stride 1, non-square filter
      {{2, 3, 3, 3, 1, 3, 3, 2, 1, 1, 0}, true},   // unequal strides and pads
  };
  std::uint32_t seed = 11;
  for (const Case& c : cases) {
    const ref::TransposedConv g = c.shape;
    CAPTURE(fmt::format("x ({}, {}, {}, {}) w ({}, {}, {}, {}) stride {}x{} pad {}x{} bias {}", g.n,
                        g.c_in, g.h_in, g.w_in, g.c_in, g.c_out, g.r, g.s, g.stride_h, g.stride_w,
                        g.pad_h, g.pad_w, c.bias));
    const Shape x_shape{g.n, g.c_in, g.h_in, g.w_in}, w_shape{g.c_in, g.c_out, g.r, g.s};
    std::vector<GradInput> inputs = {
        {"x", x_shape, uniform(x_shape, -1, 1, seed++)},
        {"weight", w_shape, uniform(w_shape, -0.5f, 0.5f, seed++)},
    };
    if (c.bias) inputs.push_back({"bias", {g.c_out}, uniform({g.c_out}, -1, 1, seed++)});
    const ops::Conv2dParams params{g.stride_h, g.stride_w, g.pad_h, g.pad_w};
    check_gradients(
        inputs, {g.n, g.c_out, g.h_out(), g.w_out()},
        [&](const std::vector<Tensor>& t) {
          return ops::conv_transpose2d(t[0], t[1], c.bias ? t[2] : Tensor(), params);
        },
        [&](const std::vector<Vec>& v) {
          const Vec y = ref::conv_transpose2d(g, v[0], v[1]);
          return c.bias ? add_bias(y, v[2], g.h_out() * g.w_out()) : y;
        });
  }
}

namespace {

struct PoolCase {
  std::int64_t kernel, stride, pad;
};

// Caffe's pooling settings in the three networks, plus 2x2 stride 2 with padding, where the
// last window would start in the padding and is dropped.
const std::vector<PoolCase> kPoolCases = {{2, 2, 0}, {3, 2, 1}, {3, 1, 1}, {2, 2, 1}};
const std::vector<Shape> kPoolInputs = {{2, 3, 7, 6}, {1, 2, 5, 5}};

ops::Pool2dParams pool_params(const PoolCase& c) {
  ops::Pool2dParams params;
  params.kernel_h = params.kernel_w = c.kernel;
  params.stride_h = params.stride_w = c.stride;
  params.pad_h = params.pad_w = c.pad;
  return params;
}

Pool2dShape pool_shape(const Shape& x, const PoolCase& c) {
  Pool2dShape shape;
  shape.n = x[0];
  shape.c = x[1];
  shape.h = x[2];
  shape.w = x[3];
  shape.kernel_h = shape.kernel_w = c.kernel;
  shape.stride_h = shape.stride_w = c.stride;
  shape.pad_h = shape.pad_w = c.pad;
  return shape;
}

Shape pooled(const Shape& x, const PoolCase& c) {
  return {x[0], x[1], ref::pool_out_size(x[2], c.kernel, c.stride, c.pad, true),
          ref::pool_out_size(x[3], c.kernel, c.stride, c.pad, true)};
}

}  // namespace

TEST_CASE("pooling output sizes follow Caffe") {
  // Worked by hand from ceil((H + 2 pad - k) / s) + 1, then minus one when pad > 0 and the last
  // window starts at or past H + pad.
  struct Case {
    std::int64_t h, kernel, stride, pad, expected;
  };
  const std::vector<Case> cases = {
      {7, 2, 2, 0, 4},  // ceil(5 / 2) + 1: the last window covers one row
      {6, 2, 2, 0, 3},    {7, 3, 2, 1, 4},  {6, 3, 2, 1, 4},
      {7, 3, 1, 1, 7},    {5, 2, 2, 1, 3},  // ceil(5 / 2) + 1 = 4, but window 3 starts at 6 >= 5 +
                                            // 1: dropped
      {112, 2, 2, 0, 56}, {14, 3, 2, 1, 8}, {13, 3, 2, 0, 6},
  };
  for (const Case& c : cases) {
    CAPTURE(fmt::format("H {} kernel {} stride {} pad {}", c.h, c.kernel, c.stride, c.pad));
    const PoolCase pool{c.kernel, c.stride, c.pad};
    const Tensor x = Tensor::zeros({1, 1, c.h, c.h});
    CHECK(ops::max_pool2d(x, pool_params(pool)).shape() == Shape{1, 1, c.expected, c.expected});
    CHECK(ops::avg_pool2d(x, pool_params(pool)).shape() == Shape{1, 1, c.expected, c.expected});
  }
}

TEST_CASE("max_pool2d gradients") {
  std::uint32_t seed = 21;
  for (const Shape& x_shape : kPoolInputs) {
    for (const PoolCase& c : kPoolCases) {
      CAPTURE(fmt::format("x {} kernel {} stride {} pad {}", to_string(x_shape), c.kernel, c.stride,
                          c.pad));
      // Distinct values 0.01 apart: each window's maximum is unique and stays the maximum
      // under the finite-difference step.
      check_gradients(
          {{"x", x_shape, ref::random_distinct(count(x_shape), 0.01f, seed++)}}, pooled(x_shape, c),
          [&](const std::vector<Tensor>& t) { return ops::max_pool2d(t[0], pool_params(c)); },
          [&](const std::vector<Vec>& v) {
            return ref::max_pool2d(pool_shape(x_shape, c), v[0]).y;
          });
    }
  }
}

TEST_CASE("avg_pool2d gradients") {
  std::uint32_t seed = 31;
  for (const Shape& x_shape : kPoolInputs) {
    for (const PoolCase& c : kPoolCases) {
      CAPTURE(fmt::format("x {} kernel {} stride {} pad {}", to_string(x_shape), c.kernel, c.stride,
                          c.pad));
      check_gradients(
          {{"x", x_shape, uniform(x_shape, -1, 1, seed++)}}, pooled(x_shape, c),
          [&](const std::vector<Tensor>& t) { return ops::avg_pool2d(t[0], pool_params(c)); },
          [&](const std::vector<Vec>& v) { return ref::avg_pool2d(pool_shape(x_shape, c), v[0]); });
    }
  }
}

TEST_CASE("global_avg_pool2d gradients") {
  const Shape x_shape{2, 3, 5, 4};
  check_gradients(
      {{"x", x_shape, uniform(x_shape, -1, 1, 41)}}, {2, 3},
      [](const std::vector<Tensor>& t) { return ops::global_avg_pool2d(t[0]); },
      [](const std::vector<Vec>& v) { return ref::global_avg_pool(2, 3, 20, v[0]); });
}

TEST_CASE("batch_norm train gradients") {
  BatchNormShape shape;
  shape.n = 3;
  shape.c = 4;
  shape.hw = 6;
  const Shape x_shape{3, 4, 2, 3};
  check_gradients(
      {{"x", x_shape, uniform(x_shape, -2, 2, 51)},
       {"gamma", {4}, uniform({4}, 0.5f, 1.5f, 52)},
       {"beta", {4}, uniform({4}, -1, 1, 53)}},
      x_shape,
      [&](const std::vector<Tensor>& t) {
        // Fresh running statistics per call: training mode updates them in place.
        Tensor running_mean = Tensor::zeros({4});
        Tensor running_var = Tensor::full({4}, 1.0f);
        return ops::batch_norm(t[0], t[1], t[2], running_mean, running_var,
                               ops::BatchNormMode::Train, 0.1, shape.eps);
      },
      [&](const std::vector<Vec>& v) { return ref::batch_norm_train(shape, v[0], v[1], v[2]).y; });
}

TEST_CASE("batch_norm train updates running statistics") {
  BatchNormShape shape;
  shape.n = 2;
  shape.c = 3;
  shape.hw = 5;
  const std::vector<float> x = ref::random_uniform(30, -2, 3, 54);
  const std::vector<float> mean0 = ref::random_uniform(3, -1, 1, 55);
  const std::vector<float> var0 = ref::random_uniform(3, 0.5f, 2, 56);
  Tensor running_mean = Tensor::from_vector({3}, mean0);
  Tensor running_var = Tensor::from_vector({3}, var0);
  const double momentum = 0.25;
  ops::batch_norm(Tensor::from_vector({2, 3, 1, 5}, x), Tensor::full({3}, 1.0f), Tensor::zeros({3}),
                  running_mean, running_var, ops::BatchNormMode::Train, momentum, shape.eps);

  // running = (1 - momentum) running + momentum batch, with the unbiased batch variance
  // (the biased one times m / (m - 1), m = N * H * W = 10).
  const ref::BatchNormResult batch =
      ref::batch_norm_train(shape, ref::to_double(x), Vec(3, 1.0), Vec(3, 0.0));
  Vec expected_mean(3), expected_var(3);
  for (std::size_t i = 0; i < 3; ++i) {
    expected_mean[i] = (1 - momentum) * mean0[i] + momentum * batch.mean[i];
    expected_var[i] = (1 - momentum) * var0[i] + momentum * batch.variance[i] * 10.0 / 9.0;
  }
  DSN_CHECK_CLOSE(running_mean.to_vector(), expected_mean, kForwardTolerance);
  DSN_CHECK_CLOSE(running_var.to_vector(), expected_var, kForwardTolerance);
}

TEST_CASE("batch_norm inference gradients") {
  BatchNormShape shape;
  shape.n = 2;
  shape.c = 3;
  shape.hw = 6;
  shape.eps = 1e-3;
  const Shape x_shape{2, 3, 3, 2};
  const std::vector<float> mean = ref::random_uniform(3, -0.5f, 0.5f, 57);
  const std::vector<float> var = ref::random_uniform(3, 0.5f, 2, 58);
  Tensor running_mean = Tensor::from_vector({3}, mean);
  Tensor running_var = Tensor::from_vector({3}, var);
  check_gradients(
      {{"x", x_shape, uniform(x_shape, -2, 2, 59)},
       {"gamma", {3}, uniform({3}, 0.5f, 1.5f, 60)},
       {"beta", {3}, uniform({3}, -1, 1, 61)}},
      x_shape,
      [&](const std::vector<Tensor>& t) {
        return ops::batch_norm(t[0], t[1], t[2], running_mean, running_var,
                               ops::BatchNormMode::Inference, 0.1, shape.eps);
      },
      [&](const std::vector<Vec>& v) {
        return ref::batch_norm_inference(shape, v[0], v[1], v[2], ref::to_double(mean),
                                         ref::to_double(var));
      });
  // Inference mode reads the running statistics and never writes them.
  CHECK(running_mean.to_vector() == mean);
  CHECK(running_var.to_vector() == var);
}

TEST_CASE("relu gradients") {
  const Shape x_shape{2, 3, 4, 5};
  check_gradients(
      {{"x", x_shape, ref::random_away_from_zero(count(x_shape), 1, 0.05f, 62)}}, x_shape,
      [](const std::vector<Tensor>& t) { return ops::relu(t[0]); },
      [](const std::vector<Vec>& v) { return ref::relu(v[0]); });
}

namespace {

// The documented dropout rule: keep element i when philox_uniform(seed, offset, i) >= p, and
// scale kept elements by 1 / (1 - p).
Vec dropout_reference(const Vec& x, float p, std::uint64_t seed, std::uint64_t offset) {
  Vec y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const bool keep = philox_uniform(seed, offset, i) >= p;
    y[i] = keep ? x[i] / (1.0 - static_cast<double>(p)) : 0.0;
  }
  return y;
}

}  // namespace

TEST_CASE("dropout gradients reuse the mask") {
  const Shape x_shape{2, 3, 5, 7};
  const float p = 0.3f;
  const std::uint64_t seed = 1234, offset = 17;
  const std::vector<float> x = ref::random_away_from_zero(count(x_shape), 1, 0.05f, 71);
  check_gradients(
      {{"x", x_shape, x}}, x_shape,
      [&](const std::vector<Tensor>& t) { return ops::dropout(t[0], p, true, seed, offset); },
      [&](const std::vector<Vec>& v) { return dropout_reference(v[0], p, seed, offset); });

  // The backward pass passes the gradient exactly where the forward kept the input, scaled by
  // 1 / (1 - p), and nowhere else.
  Tensor input = Tensor::from_vector(x_shape, x);
  input.set_requires_grad(true);
  const Tensor y = ops::dropout(input, p, true, seed, offset);
  autograd::backward(ops::sum(y));
  const std::vector<float> forward = y.to_vector();
  const std::vector<float> grad = input.grad().to_vector();
  std::size_t kept_count = 0, mismatched = 0;
  for (std::size_t i = 0; i < forward.size(); ++i) {
    const float expected = forward[i] != 0.0f ? 1.0f / (1.0f - p) : 0.0f;
    if (std::abs(grad[i] - expected) > 1e-6f) ++mismatched;
    if (forward[i] != 0.0f) ++kept_count;
  }
  CHECK(mismatched == 0);
  // 210 draws with keep probability 0.7: the kept count has standard deviation 6.6.
  CHECK(kept_count > 147 - 40);
  CHECK(kept_count < 147 + 40);
}

TEST_CASE("dropout outside training is the identity") {
  const Tensor x = Tensor::from_vector({2, 2}, std::vector<float>{1, -2, 3, -4});
  const Tensor y = ops::dropout(x, 0.5f, false, 1, 0);
  CHECK(y.to_vector() == x.to_vector());
  const Tensor y0 = ops::dropout(x, 0.0f, true, 1, 0);
  CHECK(y0.to_vector() == x.to_vector());
  CHECK_THROWS_WITH_AS(ops::dropout(x, 1.0f, true, 1, 0),
                       doctest::Contains("dropout: probability must be in [0, 1)"), Error);
}

TEST_CASE("linear gradients") {
  for (const bool with_bias : {true, false}) {
    CAPTURE(with_bias);
    const std::int64_t batch = 3, in = 5, out = 4;
    std::vector<GradInput> inputs = {
        {"x", {batch, in}, uniform({batch, in}, -1, 1, 81)},
        {"weight", {out, in}, uniform({out, in}, -1, 1, 82)},
    };
    if (with_bias) inputs.push_back({"bias", {out}, uniform({out}, -1, 1, 83)});
    check_gradients(
        inputs, {batch, out},
        [&](const std::vector<Tensor>& t) {
          return ops::linear(t[0], t[1], with_bias ? t[2] : Tensor());
        },
        [&](const std::vector<Vec>& v) {
          GemmShape gemm;  // y (batch, out) = x (batch, in) w^T (in, out)
          gemm.trans_b = true;
          gemm.m = batch;
          gemm.n = out;
          gemm.k = in;
          const Vec y = ref::gemm(gemm, v[0], v[1], Vec(batch * out, 0.0));
          return with_bias ? add_bias(y, v[2], 1) : y;
        });
  }
}

TEST_CASE("add and scale gradients") {
  const Shape shape{2, 3, 4};
  check_gradients(
      {{"a", shape, uniform(shape, -1, 1, 91)}, {"b", shape, uniform(shape, -1, 1, 92)}}, shape,
      [](const std::vector<Tensor>& t) { return ops::add(t[0], t[1]); },
      [](const std::vector<Vec>& v) {
        Vec y(v[0].size());
        for (std::size_t i = 0; i < y.size(); ++i) y[i] = v[0][i] + v[1][i];
        return y;
      });
  check_gradients(
      {{"x", shape, uniform(shape, -1, 1, 93)}}, shape,
      [](const std::vector<Tensor>& t) { return ops::scale(t[0], -1.75f); },
      [](const std::vector<Vec>& v) {
        Vec y(v[0].size());
        for (std::size_t i = 0; i < y.size(); ++i) y[i] = -1.75 * v[0][i];
        return y;
      });
}

TEST_CASE("concat_channels gradients") {
  const std::int64_t n = 2, h = 3, w = 4;
  const std::vector<std::int64_t> widths = {1, 3, 2};
  std::vector<GradInput> inputs;
  for (std::size_t i = 0; i < widths.size(); ++i) {
    const Shape shape{n, widths[i], h, w};
    inputs.push_back({fmt::format("input {}", i), shape,
                      uniform(shape, -1, 1, 101 + static_cast<std::uint32_t>(i))});
  }
  // The middle input does not require a gradient: the others must still get theirs.
  inputs[1].requires_grad = false;
  check_gradients(
      inputs, {n, 6, h, w}, [](const std::vector<Tensor>& t) { return ops::concat_channels(t); },
      [&](const std::vector<Vec>& v) { return ref::concat(n, widths, h * w, v); });
}

TEST_CASE("crop gradients") {
  const Shape x_shape{2, 3, 7, 6};
  CropShape shape;
  shape.n = 2;
  shape.c = 3;
  shape.h = 7;
  shape.w = 6;
  shape.offset_h = 1;
  shape.offset_w = 2;
  shape.out_h = 4;
  shape.out_w = 3;
  check_gradients(
      {{"x", x_shape, uniform(x_shape, -1, 1, 111)}}, {2, 3, 4, 3},
      [](const std::vector<Tensor>& t) { return ops::crop(t[0], 1, 2, 4, 3); },
      [&](const std::vector<Vec>& v) { return ref::crop(shape, v[0]); });
}

TEST_CASE("reshape and flatten gradients") {
  const std::vector<float> x = ref::random_uniform(24, -1, 1, 121);
  const auto identity = [](const std::vector<Vec>& v) { return v[0]; };
  check_gradients(
      {{"x", {2, 3, 4}, x}}, {4, 6},
      [](const std::vector<Tensor>& t) {
        return ops::reshape(t[0], {4, 6});
      },
      identity);
  check_gradients(
      {{"x", {2, 3, 2, 2}, x}}, {2, 12},
      [](const std::vector<Tensor>& t) { return ops::flatten(t[0]); }, identity);
  // A reshaped tensor feeding a shape-sensitive op: the gradient must come back in x's shape.
  check_gradients(
      {{"x", {2, 12}, x}}, {2, 3},
      [](const std::vector<Tensor>& t) {
        return ops::global_avg_pool2d(ops::reshape(t[0], {2, 3, 2, 2}));
      },
      [](const std::vector<Vec>& v) { return ref::global_avg_pool(2, 3, 4, v[0]); });
}

TEST_CASE("softmax gradients") {
  check_gradients(
      {{"x", {3, 5}, ref::random_uniform(15, -2, 2, 131)}}, {3, 5},
      [](const std::vector<Tensor>& t) { return ops::softmax(t[0]); },
      [](const std::vector<Vec>& v) { return ref::softmax(3, 5, v[0]); });
}

TEST_CASE("softmax_cross_entropy gradients") {
  const std::vector<std::int32_t> labels = {0, 4, 2, 2};
  const Tensor label_tensor = Tensor::from_vector({4}, labels);
  check_gradients(
      {{"logits", {4, 5}, ref::random_uniform(20, -3, 3, 141)}}, {},
      [&](const std::vector<Tensor>& t) { return ops::softmax_cross_entropy(t[0], label_tensor); },
      [&](const std::vector<Vec>& v) {
        const Vec rows = ref::cross_entropy(4, 5, v[0], labels);
        return Vec{(rows[0] + rows[1] + rows[2] + rows[3]) / 4.0};
      });
}

TEST_CASE("softmax_cross_entropy rejects bad labels") {
  const Tensor logits = Tensor::zeros({2, 3});
  const Tensor float_labels = Tensor::from_vector({2}, std::vector<float>{0, 1});
  CHECK_THROWS_WITH_AS(ops::softmax_cross_entropy(logits, float_labels),
                       doctest::Contains("labels must be an int32 tensor"), Error);
  const Tensor three_labels = Tensor::from_vector({3}, std::vector<std::int32_t>{0, 1, 2});
  CHECK_THROWS_WITH_AS(
      ops::softmax_cross_entropy(logits, three_labels),
      doctest::Contains("softmax_cross_entropy labels has shape (3), expected (2)"), Error);
  const Tensor out_of_range = Tensor::from_vector({2}, std::vector<std::int32_t>{0, 3});
  CHECK_THROWS_AS(ops::softmax_cross_entropy(logits, out_of_range), Error);
}

TEST_CASE("sum and mean gradients") {
  const Shape shape{3, 4, 5};
  const std::vector<float> x = ref::random_uniform(60, -1, 1, 151);
  const auto total = [](const Vec& values) {
    double sum = 0.0;
    for (double value : values) sum += value;
    return sum;
  };
  check_gradients(
      {{"x", shape, x}}, {}, [](const std::vector<Tensor>& t) { return ops::sum(t[0]); },
      [&](const std::vector<Vec>& v) { return Vec{total(v[0])}; });
  check_gradients(
      {{"x", shape, x}}, {}, [](const std::vector<Tensor>& t) { return ops::mean(t[0]); },
      [&](const std::vector<Vec>& v) { return Vec{total(v[0]) / 60.0}; });
}

TEST_CASE("ops reject mismatched shapes") {
  const Tensor x = Tensor::zeros({1, 3, 5, 5});
  CHECK_THROWS_WITH_AS(ops::conv2d(x, Tensor::zeros({4, 2, 3, 3}), Tensor(), {}),
                       doctest::Contains("expects 2 input channels, input (1, 3, 5, 5) has 3"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({3}), {}),
                       doctest::Contains("conv2d bias has shape (3), expected (4)"), Error);
  CHECK_THROWS_WITH_AS(
      ops::conv2d(Tensor::zeros({3, 5, 5}), Tensor::zeros({4, 3, 3, 3}), Tensor(), {}),
      doctest::Contains("conv2d input must have 4 dimensions, got shape (3, 5, 5)"), Error);
  CHECK_THROWS_WITH_AS(ops::linear(Tensor::zeros({2, 5}), Tensor::zeros({4, 6}), Tensor()),
                       doctest::Contains("linear: weight (4, 6) expects 6 inputs"), Error);
  CHECK_THROWS_WITH_AS(ops::add(Tensor::zeros({2, 3}), Tensor::zeros({3, 2})),
                       doctest::Contains("add: shapes (2, 3) and (3, 2) differ"), Error);
  CHECK_THROWS_WITH_AS(ops::concat_channels({x, Tensor::zeros({1, 2, 5, 4})}),
                       doctest::Contains("input 1 has shape (1, 2, 5, 4)"), Error);
  CHECK_THROWS_AS(ops::crop(x, 2, 0, 4, 5), Error);
  CHECK_THROWS_WITH_AS(ops::reshape(x, {7, 11}),
                       doctest::Contains("cannot view shape (1, 3, 5, 5) as (7, 11)"), Error);
  Tensor running_mean = Tensor::zeros({3});
  Tensor running_var = Tensor::zeros({2});
  CHECK_THROWS_WITH_AS(ops::batch_norm(x, Tensor::zeros({3}), Tensor::zeros({3}), running_mean,
                                       running_var, ops::BatchNormMode::Train),
                       doctest::Contains("batch_norm running_var has shape (2), expected (3)"),
                       Error);
}

}  // namespace dsn::engine_test
