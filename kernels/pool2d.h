// Pooling kernels shared by the CPU and CUDA backends. Layout (N, C, H, W), contiguous float32.
//
// Output sizes follow Caffe: ceil rounding by default, and a last window that would start inside
// the bottom or right padding is dropped. Average pooling divides by the window clipped to the
// padded input (Caffe's AVE), so padding cells count as zeros inside the image border only.
#pragma once

#include <cstdint>

namespace dsn {

struct Pool2dShape {
  std::int64_t n = 1, c = 1, h = 1, w = 1;
  std::int64_t kernel_h = 2, kernel_w = 2;
  std::int64_t stride_h = 2, stride_w = 2;
  std::int64_t pad_h = 0, pad_w = 0;
  bool ceil_mode = true;

  std::int64_t out_h() const;
  std::int64_t out_w() const;
};

// Checks sizes (positive, pad smaller than the kernel, non-empty output); throws dsn::Error.
void validate(const Pool2dShape& shape);

namespace cpu {

// y (N, C, P, Q) = window maximum of x (N, C, H, W); argmax (N, C, P, Q) receives the index
// h * W + w of the maximum inside its input plane (the first one on ties). Overwrites y, argmax.
void max_pool2d_forward(const Pool2dShape& shape, const float* x, float* y, std::int32_t* argmax);

// dx (N, C, H, W) = scatter-add of dy (N, C, P, Q) at argmax. Overwrites dx.
void max_pool2d_backward(const Pool2dShape& shape, const float* dy, const std::int32_t* argmax,
                         float* dx);

// y (N, C, P, Q) = Caffe average over each window of x (N, C, H, W). Overwrites y.
void avg_pool2d_forward(const Pool2dShape& shape, const float* x, float* y);

// dx (N, C, H, W) from dy (N, C, P, Q). Overwrites dx.
void avg_pool2d_backward(const Pool2dShape& shape, const float* dy, float* dx);

// y (N, C) = mean over H * W of x (N, C, H, W).
void global_avg_pool_forward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* x,
                             float* y);

// dx (N, C, H, W) = dy (N, C) / (H * W), broadcast. Overwrites dx.
void global_avg_pool_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy,
                              float* dx);

}  // namespace cpu
}  // namespace dsn
