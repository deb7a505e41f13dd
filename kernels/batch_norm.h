// Batch normalisation over (N, C, H, W): statistics per channel over N * H * W elements.
//
// Training mode normalises with the batch mean and biased variance and updates the running
// statistics with the unbiased variance, as PyTorch and Caffe do. Inference (and frozen) mode
// normalises with the running statistics.
#pragma once

#include <cstdint>

namespace dsn {

struct BatchNormShape {
  std::int64_t n = 1, c = 1, hw = 1;  // hw = H * W
  double eps = 1e-5;
  double momentum = 0.1;  // running = (1 - momentum) * running + momentum * batch
};

namespace cpu {

// y = gamma * (x - mean) * inv_std + beta with batch statistics. Writes save_mean (C) and
// save_inv_std (C) for the backward pass, and updates running_mean and running_var (C) in place
// when they are not null. x, y (N, C, H, W); gamma, beta (C).
void batch_norm_forward_train(const BatchNormShape& shape, const float* x, const float* gamma,
                              const float* beta, float* y, float* save_mean, float* save_inv_std,
                              float* running_mean, float* running_var);

// y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
void batch_norm_forward_inference(const BatchNormShape& shape, const float* x,
                                  const float* gamma, const float* beta,
                                  const float* running_mean, const float* running_var, float* y);

// Gradients of the training-mode forward: dx (N, C, H, W), dgamma (C), dbeta (C); all
// overwritten. dgamma and dbeta may be null.
void batch_norm_backward_train(const BatchNormShape& shape, const float* x, const float* dy,
                               const float* gamma, const float* save_mean,
                               const float* save_inv_std, float* dx, float* dgamma, float* dbeta);

// Gradients of the inference-mode forward (running statistics are constants): dx, and dgamma,
// dbeta when not null; all overwritten.
void batch_norm_backward_inference(const BatchNormShape& shape, const float* x, const float* dy,
                                   const float* gamma, const float* running_mean,
                                   const float* running_var, float* dx, float* dgamma,
                                   float* dbeta);

}  // namespace cpu
}  // namespace dsn
