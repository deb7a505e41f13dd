#include "tests/engine/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops.h"

namespace dsn::engine_test {

double min_abs(const Vec& values) {
  double smallest = std::numeric_limits<double>::infinity();
  for (double value : values) smallest = std::min(smallest, std::abs(value));
  return smallest;
}

void check_gradients(const std::vector<GradInput>& inputs, const Shape& expected_shape,
                     const EngineForward& engine, const ReferenceForward& reference,
                     std::uint32_t seed) {
  std::vector<Tensor> tensors;
  std::vector<Vec> values;
  for (const GradInput& input : inputs) {
    Tensor tensor = Tensor::from_vector(input.shape, input.values);
    tensor.set_requires_grad(input.requires_grad);
    tensors.push_back(tensor);
    values.push_back(ref::to_double(input.values));
  }

  // Forward values.
  const Tensor y = engine(tensors);
  REQUIRE(y.defined());
  REQUIRE_MESSAGE(y.shape() == expected_shape, "output shape ", to_string(y.shape()), ", expected ",
                  to_string(expected_shape));
  const ref::Comparison forward = ref::compare(y.to_vector(), reference(values), kForwardTolerance);
  CHECK_MESSAGE(forward.ok, "forward: ", forward.message);

  // Backward through ops: L = sum(g * y) as a (1, M) x (M, 1) product.
  const std::int64_t m = y.numel();
  const std::vector<float> g = ref::random_uniform(static_cast<std::size_t>(m), -1, 1, seed);
  const Tensor weight = Tensor::from_vector({1, m}, g);
  const Tensor loss = ops::sum(ops::linear(ops::reshape(y, {1, m}), weight, Tensor()));
  autograd::backward(loss);

  const Vec g_double = ref::to_double(g);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad) continue;
    INFO("gradient of ", inputs[i].name, " ", to_string(inputs[i].shape));
    const Tensor grad = tensors[i].grad();
    REQUIRE_MESSAGE(grad.defined(), "no gradient reached ", inputs[i].name);
    REQUIRE(grad.shape() == inputs[i].shape);

    std::vector<Vec> probe = values;
    const auto loss_of_input = [&](const Vec& x) {
      probe[i] = x;
      return ref::dot(g_double, reference(probe));
    };
    const Vec numeric = ref::numeric_gradient(loss_of_input, values[i]);
    const ref::Comparison backward = ref::compare(grad.to_vector(), numeric, kGradientTolerance);
    CHECK_MESSAGE(backward.ok, "backward: ", backward.message);
  }
}

}  // namespace dsn::engine_test
