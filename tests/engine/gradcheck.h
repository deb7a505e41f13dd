// The engine-level gradient check: runs an op through the engine's autograd and compares its
// output with a double-precision reference (tests/support/reference.h), then every input
// gradient with central differences of that reference.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "tests/support/reference.h"

namespace dsn::engine_test {

using ref::Vec;

// Float32 forward results against double references. The engine's float32 sums of at most a few
// hundred O(1) terms are off by about 1e-7, while an indexing or formula bug is off by O(0.1).
inline constexpr ref::Tolerance kForwardTolerance{1e-4, 1e-5};  // rel, abs
// Float32 gradients against double central differences (step 1e-6, so the quotient itself is
// good to about 1e-9). Every gradient in this suite passes at a tenth of these bounds, which
// leaves room for other BLAS builds. A wiring bug (a lost branch, a wrong factor, a transposed
// index) moves gradients by a sizeable fraction of their O(1) magnitude.
inline constexpr ref::Tolerance kGradientTolerance{1e-4, 1e-5};  // rel, abs

double min_abs(const Vec& values);

// One input of a gradient check.
struct GradInput {
  std::string name;
  Shape shape;
  std::vector<float> values;
  bool requires_grad = true;
};

using EngineForward = std::function<Tensor(const std::vector<Tensor>& inputs)>;
using ReferenceForward = std::function<Vec(const std::vector<Vec>& inputs)>;

// Runs `engine` on float32 tensors holding `inputs` and checks the output shape against
// `expected_shape` and the values against `reference`. Then builds the loss
// L = sum(linear(reshape(y, (1, M)), g (1, M))) = sum(g * y) with ops, g a fixed random vector,
// calls autograd::backward(L), and compares the gradient of every input that requires one with
// the central difference of sum(g * reference(inputs)) in double.
void check_gradients(const std::vector<GradInput>& inputs, const Shape& expected_shape,
                     const EngineForward& engine, const ReferenceForward& reference,
                     std::uint32_t seed = 99);

}  // namespace dsn::engine_test
