// Hand-written CUDA batch normalisation, the twins of kernels/batch_norm.h: statistics per
// channel over the N * H * W elements of x (N, C, H, W), contiguous float32 in device memory;
// gamma, beta and all statistics are (C). Statistics and gradient sums are accumulated in double
// in a fixed order, so results are deterministic. They match the CPU twin to float rounding,
// not bit for bit.
#pragma once

#include "kernels/batch_norm.h"
#include "kernels/cuda/stream.h"

namespace dsn::cuda {

// y = gamma * (x - mean) * inv_std + beta with batch statistics (biased variance). Writes
// save_mean (C) and save_inv_std (C) for the backward pass, and updates running_mean and
// running_var (C) in place with the unbiased variance when they are not null.
void batch_norm_forward_train(const BatchNormShape& shape, const float* x, const float* gamma,
                              const float* beta, float* y, float* save_mean, float* save_inv_std,
                              float* running_mean, float* running_var, Stream stream);

// y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
void batch_norm_forward_inference(const BatchNormShape& shape, const float* x, const float* gamma,
                                  const float* beta, const float* running_mean,
                                  const float* running_var, float* y, Stream stream);

// Gradients of the training-mode forward: dx (N, C, H, W), dgamma (C) and dbeta (C), all
// overwritten. dgamma and dbeta may be null.
void batch_norm_backward_train(const BatchNormShape& shape, const float* x, const float* dy,
                               const float* gamma, const float* save_mean,
                               const float* save_inv_std, float* dx, float* dgamma, float* dbeta,
                               Stream stream);

// Gradients of the inference-mode forward (running statistics are constants): dx, and dgamma,
// dbeta when not null, all overwritten.
void batch_norm_backward_inference(const BatchNormShape& shape, const float* x, const float* dy,
                                   const float* gamma, const float* running_mean,
                                   const float* running_var, float* dx, float* dgamma, float* dbeta,
                                   Stream stream);

}  // namespace dsn::cuda
