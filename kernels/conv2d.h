// Convolution kernels shared by the CPU and CUDA backends: descriptors and declarations.
//
// Layouts: activations (N, C, H, W) and weights (K, C, R, S), all contiguous float32 (NCHW, as
// Caffe and PyTorch). A transposed convolution is expressed through the convolution whose
// backward-data it is, so its kernels are the same three functions with roles swapped.
#pragma once

#include <cstdint>

namespace dsn {

// Shape of one 2-D cross-correlation y = conv(x, w) + bias.
struct Conv2dShape {
  std::int64_t n = 1;  // batch
  std::int64_t c = 1;  // input channels
  std::int64_t h = 1, w = 1;  // input size
  std::int64_t k = 1;  // output channels
  std::int64_t r = 1, s = 1;  // filter size (height, width)
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;

  std::int64_t out_h() const { return (h + 2 * pad_h - r) / stride_h + 1; }
  std::int64_t out_w() const { return (w + 2 * pad_w - s) / stride_w + 1; }
  // Multiply-accumulates of the forward pass.
  std::int64_t macs() const { return n * k * out_h() * out_w() * c * r * s; }
};

// Checks that every size is positive and the output is not empty; throws dsn::Error naming the
// offending field otherwise.
void validate(const Conv2dShape& shape);

// The convolution whose backward-data computes a transposed convolution with weights
// (C_in, C_out, R, S) (PyTorch's ConvTranspose2d layout) from input (N, C_in, H_in, W_in) to
// output (N, C_out, (H_in - 1) * stride - 2 * pad + R, ...).
Conv2dShape transposed_conv_as_conv(std::int64_t n, std::int64_t c_in, std::int64_t h_in,
                                    std::int64_t w_in, std::int64_t c_out, std::int64_t r,
                                    std::int64_t s, std::int64_t stride_h, std::int64_t stride_w,
                                    std::int64_t pad_h, std::int64_t pad_w);

namespace cpu {

// y (N, K, P, Q) = conv(x (N, C, H, W), w (K, C, R, S)) + bias (K) [optional, may be null],
// followed by ReLU when relu is true. Overwrites y.
void conv2d_forward(const Conv2dShape& shape, const float* x, const float* w, const float* bias,
                    float* y, bool relu = false);

// dx (N, C, H, W) = gradient of the convolution with respect to x, given dy (N, K, P, Q) and
// w (K, C, R, S). Overwrites dx.
void conv2d_backward_data(const Conv2dShape& shape, const float* dy, const float* w, float* dx);

// dw (K, C, R, S) and dbias (K) [optional, may be null] from x (N, C, H, W) and dy (N, K, P, Q).
// Overwrites dw and dbias.
void conv2d_backward_weight(const Conv2dShape& shape, const float* x, const float* dy, float* dw,
                            float* dbias);

}  // namespace cpu
}  // namespace dsn
