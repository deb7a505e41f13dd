// CPU SGD with momentum and weight decay against values worked out by hand, Caffe's update rule
// evaluated in double over several tensors and steps, the float operations that kernels/sgd.h
// documents (which the CUDA twin must reproduce), and input validation.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "engine/error.h"
#include "kernels/sgd.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

// Host storage of one parameter tensor.
struct Parameter {
  std::vector<float> w, g, v;
  float lr_mult = 1.0f, decay_mult = 1.0f;

  SgdTensor tensor() {
    return {w.data(), g.data(), v.data(), static_cast<std::int64_t>(w.size()), lr_mult, decay_mult};
  }
};

Parameter random_parameter(std::size_t count, float lr_mult, float decay_mult, std::uint32_t seed) {
  return {ref::random_uniform(count, -1.0f, 1.0f, seed),
          ref::random_uniform(count, -1.0f, 1.0f, seed + 1),
          ref::random_uniform(count, -0.5f, 0.5f, seed + 2), lr_mult, decay_mult};
}

TEST_CASE("sgd update matches hand-computed values") {
  // Dyadic values keep every step exact: decay = 0.25 * 2 = 0.5, decayed g = 0.5 * 1 + 0.5 = 1,
  // rate = 0.5 * 2 = 1, v = 0.5 * 0.25 + 1 * 1 = 1.125, w = 1 - 1.125 = -0.125.
  Parameter p{{1.0f}, {0.5f}, {0.25f}, 2.0f, 2.0f};
  const SgdTensor tensors[] = {p.tensor()};
  const SgdStep step{0.5f, 0.5f, 0.25f};
  cpu::sgd_update(tensors, step);
  CHECK(p.v[0] == 1.125f);
  CHECK(p.w[0] == -0.125f);
  // Second step with g = 0: decayed g = 0.5 * -0.125 = -0.0625, v = 0.5625 - 0.0625 = 0.5,
  // w = -0.125 - 0.5 = -0.625.
  p.g[0] = 0.0f;
  cpu::sgd_update(tensors, step);
  CHECK(p.v[0] == 0.5f);
  CHECK(p.w[0] == -0.625f);
}

TEST_CASE("sgd update follows Caffe's rule") {
  // Multipliers of DSN's layers: weights 1 / 1, biases 2 / 0, score convs 0.1 / 1, frozen
  // upsampling 0 / 0. Sizes range from a single element to a few thousand.
  std::vector<Parameter> parameters = {
      random_parameter(1000, 1.0f, 1.0f, 10), random_parameter(7, 2.0f, 0.0f, 20),
      random_parameter(1, 0.1f, 1.0f, 30),    random_parameter(64, 0.0f, 0.0f, 40),
      random_parameter(0, 1.0f, 1.0f, 50),    random_parameter(4099, 1.0f, 1.0f, 60)};
  // Large hyperparameters make every term of the rule visible in the result.
  const SgdStep steps[] = {{0.5f, 0.9f, 0.25f}, {0.25f, 0.9f, 0.25f}, {0.125f, 0.5f, 0.0f}};

  std::vector<ref::Vec> w, v;
  for (const Parameter& p : parameters) {
    w.push_back(ref::to_double(p.w));
    v.push_back(ref::to_double(p.v));
  }
  std::vector<SgdTensor> tensors;
  for (Parameter& p : parameters) tensors.push_back(p.tensor());

  for (const SgdStep& step : steps) {
    for (std::size_t t = 0; t < parameters.size(); ++t) {
      const Parameter& p = parameters[t];
      for (std::size_t i = 0; i < p.w.size(); ++i) {
        const double gradient = p.g[i] + double(step.weight_decay) * p.decay_mult * w[t][i];
        v[t][i] = double(step.momentum) * v[t][i] + double(step.lr) * p.lr_mult * gradient;
        w[t][i] -= v[t][i];
      }
    }
    cpu::sgd_update(tensors, step);
  }
  // Three steps of a few float roundings each on O(1) values.
  const ref::Tolerance tolerance{1e-5, 1e-6};
  for (std::size_t t = 0; t < parameters.size(); ++t) {
    CAPTURE(t);
    DSN_CHECK_CLOSE(parameters[t].w, w[t], tolerance);
    DSN_CHECK_CLOSE(parameters[t].v, v[t], tolerance);
  }
}

TEST_CASE("sgd update float operations") {
  Parameter p = random_parameter(5000, 0.1f, 2.0f, 70);
  const Parameter before = p;
  const SgdStep step{0.01f, 0.9f, 5e-4f};
  const SgdTensor tensors[] = {p.tensor()};
  cpu::sgd_update(tensors, step);
  const float rate = step.lr * p.lr_mult, decay = step.weight_decay * p.decay_mult;
  for (std::size_t i = 0; i < p.w.size(); ++i) {
    CAPTURE(i);
    const float v =
        std::fma(step.momentum, before.v[i], rate * std::fma(decay, before.w[i], before.g[i]));
    REQUIRE(p.v[i] == v);
    REQUIRE(p.w[i] == before.w[i] - v);
  }
}

TEST_CASE("sgd update leaves frozen tensors unchanged") {
  Parameter frozen = random_parameter(33, 0.0f, 0.0f, 80);
  frozen.v.assign(frozen.v.size(), 0.0f);
  const std::vector<float> w = frozen.w;
  const SgdTensor tensors[] = {frozen.tensor()};
  cpu::sgd_update(tensors, {0.5f, 0.9f, 0.25f});
  CHECK(frozen.w == w);
  CHECK(frozen.v == std::vector<float>(33, 0.0f));
  CHECK_NOTHROW(cpu::sgd_update({}, {0.5f, 0.9f, 0.25f}));
}

TEST_CASE("sgd validate rejects invalid steps and tensors") {
  std::vector<float> buffer(30, 0.0f);
  const SgdTensor first{buffer.data(), buffer.data() + 10, buffer.data() + 20, 10, 1.0f, 1.0f};
  const SgdStep good{0.01f, 0.9f, 5e-4f};
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  CHECK_NOTHROW(validate({&first, 1}, good));

  CHECK_THROWS_AS(validate({}, SgdStep{-0.1f, 0.9f, 0.0f}), Error);
  CHECK_THROWS_AS(validate({}, SgdStep{inf, 0.9f, 0.0f}), Error);
  CHECK_THROWS_AS(validate({}, SgdStep{0.1f, nan, 0.0f}), Error);
  CHECK_THROWS_AS(validate({}, SgdStep{0.1f, 0.9f, -1.0f}), Error);

  SgdTensor bad = first;
  bad.count = -1;
  CHECK_THROWS_AS(validate({&bad, 1}, good), Error);
  bad = first;
  bad.grad = nullptr;
  CHECK_THROWS_AS(validate({&bad, 1}, good), Error);
  bad = first;
  bad.lr_mult = nan;
  CHECK_THROWS_AS(validate({&bad, 1}, good), Error);
  bad = first;
  bad.momentum_buffer = buffer.data() + 5;  // overlaps the tensor's own param
  CHECK_THROWS_AS(validate({&bad, 1}, good), Error);

  // A second tensor whose param overlaps the first tensor's momentum buffer.
  std::vector<float> other(20, 0.0f);
  const SgdTensor pair[] = {first, {buffer.data() + 29, other.data(), other.data() + 10, 1}};
  CHECK_THROWS_AS(validate(pair, good), Error);
  CHECK_THROWS_AS(cpu::sgd_update(pair, good), Error);
  // Empty tensors may carry null pointers.
  const SgdTensor empty{nullptr, nullptr, nullptr, 0};
  CHECK_NOTHROW(validate({&empty, 1}, good));
}

}  // namespace
}  // namespace dsn
