// Hand-written CUDA 2-D convolution, the twin of dsn::cpu::conv2d_* (kernels/conv2d.h): the same
// shapes, layouts and results, computed as implicit GEMMs. No cuDNN inside.
//
// Layouts: x (N, C, H, W), w (K, C, R, S), y (N, K, P, Q), bias (K), contiguous float32. All
// pointers are device memory; every call is enqueued on `stream`.
#pragma once

#include "kernels/conv2d.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/stream.h"

namespace dsn::cuda {

// y (N, K, P, Q) = conv(x (N, C, H, W), w (K, C, R, S)) + bias (K) [optional, may be null],
// followed by ReLU when relu is true. Overwrites y.
void conv2d_forward(const Conv2dShape& shape, const float* x, const float* w, const float* bias,
                    float* y, bool relu, Stream stream);

// dx (N, C, H, W) = gradient of the convolution with respect to x, given dy (N, K, P, Q) and
// w (K, C, R, S). Overwrites dx. With the shape from transposed_conv_as_conv() this is the
// transposed convolution of dy by w (C_in = K, C_out = C).
void conv2d_backward_data(const Conv2dShape& shape, const float* dy, const float* w, float* dx,
                          Stream stream);

// dw (K, C, R, S) and dbias (K) [optional, may be null] from x (N, C, H, W) and dy (N, K, P, Q).
// Overwrites dw and dbias. Deterministic: the same inputs give bit-identical results on every
// run. When the reduction over N * P * Q is split (TilePlan::splits > 1), the partial sums go to
// a scratch buffer of splits * K * C * R * S floats. That buffer is allocated on first use and
// kept for later calls on the same device and stream.
void conv2d_backward_weight(const Conv2dShape& shape, const float* x, const float* dy, float* dw,
                            float* dbias, Stream stream);

// Returns the kernel and tile that each function above launches for `shape`, and its split count.
TilePlan plan_conv2d_forward(const Conv2dShape& shape);
TilePlan plan_conv2d_backward_data(const Conv2dShape& shape);
TilePlan plan_conv2d_backward_weight(const Conv2dShape& shape);

}  // namespace dsn::cuda
