// Differentiable ops on tensors. Each op checks its inputs (shape checks stay on in release
// builds), runs the kernel of the inputs' backend, and records a backward node when an input
// requires a gradient. All inputs of an op must live on one device.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace dsn::ops {

struct Conv2dParams {
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
};

// y (N, K, P, Q) = conv(x (N, C, H, W), weight (K, C, R, S)) + bias (K) [may be undefined],
// then ReLU when relu is true (fused into the kernel's epilogue).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
              const Conv2dParams& params, bool relu = false);

// Transposed convolution, PyTorch's ConvTranspose2d: x (N, C_in, H, W), weight
// (C_in, C_out, R, S), bias (C_out) [may be undefined]. The output height is
// (H - 1) * stride - 2 * pad + R, and the width likewise.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const Conv2dParams& params);

struct Pool2dParams {
  std::int64_t kernel_h = 2, kernel_w = 2;
  std::int64_t stride_h = 2, stride_w = 2;
  std::int64_t pad_h = 0, pad_w = 0;
  bool ceil_mode = true;  // Caffe's rounding
};

Tensor max_pool2d(const Tensor& x, const Pool2dParams& params);
Tensor avg_pool2d(const Tensor& x, const Pool2dParams& params);
// (N, C, H, W) -> (N, C)
Tensor global_avg_pool2d(const Tensor& x);

enum class BatchNormMode {
  Train,      // batch statistics; the running statistics are updated in place
  Inference,  // running statistics (also "frozen" batch norm during training)
};

// x (N, C, H, W); gamma, beta, running_mean, running_var (C).
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                  Tensor& running_mean, Tensor& running_var, BatchNormMode mode,
                  double momentum = 0.1, double eps = 1e-5);

Tensor relu(const Tensor& x);

// Identity unless `training`; then drops each element with probability p using the counter-based
// stream (seed, offset), which the caller advances by x.numel() per call.
Tensor dropout(const Tensor& x, float p, bool training, std::uint64_t seed,
               std::uint64_t offset);

// y (N, out) = x (N, in) weight^T (out, in) + bias (out) [may be undefined].
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

Tensor add(const Tensor& a, const Tensor& b);  // same shapes
Tensor scale(const Tensor& x, float alpha);

// Concatenation along dimension 1 of (N, C_i, H, W) tensors with equal N, H, W.
Tensor concat_channels(const std::vector<Tensor>& inputs);

// The window [offset_h, offset_h + out_h) x [offset_w, offset_w + out_w) of x (N, C, H, W).
Tensor crop(const Tensor& x, std::int64_t offset_h, std::int64_t offset_w, std::int64_t out_h,
            std::int64_t out_w);

Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x);  // (N, ...) -> (N, rest)

// Row-wise softmax of a (rows, classes) tensor.
Tensor softmax(const Tensor& x);

// Mean over the batch of -log softmax(logits)[label]: logits (N, classes), labels int32 (N).
// Returns a one-element tensor of shape ().
Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels);

Tensor sum(const Tensor& x);   // shape ()
Tensor mean(const Tensor& x);  // shape ()

}  // namespace dsn::ops
