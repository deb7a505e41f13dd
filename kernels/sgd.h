// Stochastic gradient descent with momentum and weight decay over a list of parameter tensors,
// Caffe's update rule (SGDSolver) with per-tensor learning-rate and decay multipliers:
//   rate  = lr * lr_mult                       (float)
//   decay = weight_decay * decay_mult          (float)
//   v     = fma(momentum, v, rate * fma(decay, w, g))
//   w     = w - v
// i.e. v = momentum v + lr lr_mult (g + weight_decay decay_mult w). The two fused multiply-adds
// are explicit (std::fma here, __fmaf_rn in the CUDA twin) and every other operation is a single
// rounded float operation, so both twins give identical bits whatever a compiler's contraction
// setting is.
#pragma once

#include <cstdint>
#include <span>

namespace dsn {

// One parameter tensor of the update. The three arrays of every tensor of a call must not
// overlap each other or those of another tensor.
struct SgdTensor {
  float* param = nullptr;            // (count) w, updated in place
  const float* grad = nullptr;       // (count) g
  float* momentum_buffer = nullptr;  // (count) v, Caffe's history; zeros before the first step
  std::int64_t count = 0;
  float lr_mult = 1.0f;
  float decay_mult = 1.0f;
};

// The scalars of one step.
struct SgdStep {
  float lr = 0.0f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
};

// Checks that the step's scalars are finite, with lr and weight_decay not negative, and that
// every tensor has a count that is not negative, non-null arrays when count > 0, finite
// multipliers and no overlapping arrays. Throws dsn::Error naming the tensor index.
void validate(std::span<const SgdTensor> tensors, const SgdStep& step);

namespace cpu {

// Applies one step of the update above to every tensor.
void sgd_update(std::span<const SgdTensor> tensors, const SgdStep& step);

}  // namespace cpu
}  // namespace dsn
