// CPU batch normalisation against the double reference (outputs, saved statistics, running
// statistics) and central differences of that reference (training and inference backward).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/batch_norm.h"
#include "tests/cpu/tolerance.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::kForward;
using test::kGradient;

BatchNormShape make_shape(std::int64_t n, std::int64_t c, std::int64_t hw) {
  BatchNormShape shape;
  shape.n = n;
  shape.c = c;
  shape.hw = hw;
  return shape;
}

std::string describe(const BatchNormShape& s) {
  return fmt::format("x ({}, {}, H * W = {})", s.n, s.c, s.hw);
}

std::vector<BatchNormShape> shapes() {
  return {make_shape(3, 5, 7 * 5), make_shape(1, 17, 9 * 11), make_shape(2, 3, 1),
          make_shape(3, 1, 4 * 3)};
}

struct Inputs {
  std::vector<float> x, gamma, beta, g;
};

// x has a channel-independent offset of about 1 so that the mean matters.
Inputs random_inputs(const BatchNormShape& shape, std::uint32_t seed) {
  const std::int64_t count = shape.n * shape.c * shape.hw;
  return {ref::random_uniform(count, -1.0f, 3.0f, seed),
          ref::random_uniform(shape.c, 0.5f, 1.5f, seed + 1),
          ref::random_uniform(shape.c, -0.5f, 0.5f, seed + 2),
          ref::random_uniform(count, -1.0f, 1.0f, seed + 3)};
}

TEST_CASE("batch norm training forward matches reference") {
  std::uint32_t seed = 2000;
  for (BatchNormShape shape : shapes()) {
    shape.momentum = 0.25;
    CAPTURE(describe(shape));
    const Inputs in = random_inputs(shape, seed += 4);
    const std::vector<float> running_mean0 = ref::random_uniform(shape.c, -1.0f, 1.0f, seed + 7);
    const std::vector<float> running_var0 = ref::random_uniform(shape.c, 0.5f, 2.0f, seed + 8);

    std::vector<float> y(in.x.size()), mean(shape.c), inv_std(shape.c);
    std::vector<float> running_mean = running_mean0, running_var = running_var0;
    cpu::batch_norm_forward_train(shape, in.x.data(), in.gamma.data(), in.beta.data(), y.data(),
                                  mean.data(), inv_std.data(), running_mean.data(),
                                  running_var.data());

    const ref::BatchNormResult expected = ref::batch_norm_train(
        shape, ref::to_double(in.x), ref::to_double(in.gamma), ref::to_double(in.beta));
    const double count = static_cast<double>(shape.n * shape.hw);
    Vec expected_inv_std(shape.c), expected_running_mean(shape.c), expected_running_var(shape.c);
    for (std::int64_t c = 0; c < shape.c; ++c) {
      expected_inv_std[c] = 1.0 / std::sqrt(expected.variance[c] + shape.eps);
      expected_running_mean[c] = 0.75 * running_mean0[c] + 0.25 * expected.mean[c];
      // The running variance takes the unbiased batch variance.
      expected_running_var[c] =
          0.75 * running_var0[c] + 0.25 * expected.variance[c] * count / (count - 1.0);
    }
    DSN_CHECK_CLOSE(y, expected.y, kForward);
    DSN_CHECK_CLOSE(mean, expected.mean, kForward);
    DSN_CHECK_CLOSE(inv_std, expected_inv_std, kForward);
    DSN_CHECK_CLOSE(running_mean, expected_running_mean, kForward);
    DSN_CHECK_CLOSE(running_var, expected_running_var, kForward);
  }
}

TEST_CASE("batch norm training forward skips null running statistics") {
  const BatchNormShape shape = make_shape(3, 5, 7);
  const Inputs in = random_inputs(shape, 2100);
  std::vector<float> y(in.x.size()), mean(shape.c), inv_std(shape.c);
  cpu::batch_norm_forward_train(shape, in.x.data(), in.gamma.data(), in.beta.data(), y.data(),
                                mean.data(), inv_std.data(), nullptr, nullptr);
  const ref::BatchNormResult expected = ref::batch_norm_train(
      shape, ref::to_double(in.x), ref::to_double(in.gamma), ref::to_double(in.beta));
  DSN_CHECK_CLOSE(y, expected.y, kForward);
}

TEST_CASE("batch norm training backward matches finite differences") {
  std::uint32_t seed = 2200;
  for (const BatchNormShape& shape : shapes()) {
    CAPTURE(describe(shape));
    const Inputs in = random_inputs(shape, seed += 4);
    std::vector<float> y(in.x.size()), mean(shape.c), inv_std(shape.c);
    cpu::batch_norm_forward_train(shape, in.x.data(), in.gamma.data(), in.beta.data(), y.data(),
                                  mean.data(), inv_std.data(), nullptr, nullptr);
    std::vector<float> dx(in.x.size(), 5.0f), dgamma(shape.c, 5.0f), dbeta(shape.c, 5.0f);
    cpu::batch_norm_backward_train(shape, in.x.data(), in.g.data(), in.gamma.data(), mean.data(),
                                   inv_std.data(), dx.data(), dgamma.data(), dbeta.data());

    const Vec x = ref::to_double(in.x), gamma = ref::to_double(in.gamma);
    const Vec beta = ref::to_double(in.beta), g = ref::to_double(in.g);
    const auto loss = [&](const Vec& xv, const Vec& gv, const Vec& bv) {
      return ref::dot(g, ref::batch_norm_train(shape, xv, gv, bv).y);
    };
    DSN_CHECK_CLOSE(dx,
                    ref::numeric_gradient([&](const Vec& v) { return loss(v, gamma, beta); }, x),
                    kGradient);
    DSN_CHECK_CLOSE(dgamma,
                    ref::numeric_gradient([&](const Vec& v) { return loss(x, v, beta); }, gamma),
                    kGradient);
    DSN_CHECK_CLOSE(dbeta,
                    ref::numeric_gradient([&](const Vec& v) { return loss(x, gamma, v); }, beta),
                    kGradient);

    // Null parameter gradients are allowed and leave dx unchanged.
    std::vector<float> dx_only(in.x.size());
    cpu::batch_norm_backward_train(shape, in.x.data(), in.g.data(), in.gamma.data(), mean.data(),
                                   inv_std.data(), dx_only.data(), nullptr, nullptr);
    CHECK(dx_only == dx);
  }
}

TEST_CASE("batch norm inference forward and backward") {
  std::uint32_t seed = 2300;
  for (const BatchNormShape& shape : shapes()) {
    CAPTURE(describe(shape));
    const Inputs in = random_inputs(shape, seed += 6);
    const std::vector<float> running_mean = ref::random_uniform(shape.c, -1.0f, 1.0f, seed + 4);
    const std::vector<float> running_var = ref::random_uniform(shape.c, 0.5f, 2.0f, seed + 5);
    const Vec x = ref::to_double(in.x), gamma = ref::to_double(in.gamma);
    const Vec beta = ref::to_double(in.beta), g = ref::to_double(in.g);
    const Vec rm = ref::to_double(running_mean), rv = ref::to_double(running_var);

    std::vector<float> y(in.x.size());
    cpu::batch_norm_forward_inference(shape, in.x.data(), in.gamma.data(), in.beta.data(),
                                      running_mean.data(), running_var.data(), y.data());
    DSN_CHECK_CLOSE(y, ref::batch_norm_inference(shape, x, gamma, beta, rm, rv), kForward);

    std::vector<float> dx(in.x.size(), 5.0f), dgamma(shape.c, 5.0f), dbeta(shape.c, 5.0f);
    cpu::batch_norm_backward_inference(shape, in.x.data(), in.g.data(), in.gamma.data(),
                                       running_mean.data(), running_var.data(), dx.data(),
                                       dgamma.data(), dbeta.data());
    const auto loss = [&](const Vec& xv, const Vec& gv, const Vec& bv) {
      return ref::dot(g, ref::batch_norm_inference(shape, xv, gv, bv, rm, rv));
    };
    DSN_CHECK_CLOSE(dx,
                    ref::numeric_gradient([&](const Vec& v) { return loss(v, gamma, beta); }, x),
                    kGradient);
    DSN_CHECK_CLOSE(dgamma,
                    ref::numeric_gradient([&](const Vec& v) { return loss(x, v, beta); }, gamma),
                    kGradient);
    DSN_CHECK_CLOSE(dbeta,
                    ref::numeric_gradient([&](const Vec& v) { return loss(x, gamma, v); }, beta),
                    kGradient);
  }
}

TEST_CASE("batch norm training rejects one value per channel") {
  const BatchNormShape shape = make_shape(1, 2, 1);
  const std::vector<float> x = {1, 2}, gamma = {1, 1}, beta = {0, 0};
  std::vector<float> y(2), mean(2), inv_std(2);
  CHECK_THROWS_WITH_AS(
      cpu::batch_norm_forward_train(shape, x.data(), gamma.data(), beta.data(), y.data(),
                                    mean.data(), inv_std.data(), nullptr, nullptr),
      doctest::Contains("more than one value per channel"), Error);
}

}  // namespace
}  // namespace dsn
