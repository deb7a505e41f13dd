// Hand-written CUDA pooling, the twins of kernels/pool2d.h: max and average pooling with Caffe's
// output sizes and AVE divisor, and global average pooling. Layout (N, C, H, W), contiguous
// float32 in device memory. Every function except global_avg_pool_forward produces the same
// bits as its dsn::cpu twin, max pooling's argmax included. global_avg_pool_forward accumulates
// in double like the twin, but in a different order.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/pool2d.h"

namespace dsn::cuda {

// y (N, C, P, Q) = window maximum of x (N, C, H, W); argmax (N, C, P, Q) receives the index
// h * W + w of the maximum inside its input plane (the first one in row-major order on ties).
void max_pool2d_forward(const Pool2dShape& shape, const float* x, float* y, std::int32_t* argmax,
                        Stream stream);

// dx (N, C, H, W) = sum of dy (N, C, P, Q) over the windows whose argmax is that input cell.
// argmax must come from max_pool2d_forward with the same shape. Overwrites dx.
void max_pool2d_backward(const Pool2dShape& shape, const float* dy, const std::int32_t* argmax,
                         float* dx, Stream stream);

// y (N, C, P, Q) = Caffe average over each window of x (N, C, H, W).
void avg_pool2d_forward(const Pool2dShape& shape, const float* x, float* y, Stream stream);

// dx (N, C, H, W) from dy (N, C, P, Q). Overwrites dx.
void avg_pool2d_backward(const Pool2dShape& shape, const float* dy, float* dx, Stream stream);

// y (N, C) = mean over H * W of x (N, C, H, W).
void global_avg_pool_forward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* x,
                             float* y, Stream stream);

// dx (N, C, H, W) = dy (N, C) / (H * W), broadcast. Overwrites dx.
void global_avg_pool_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy,
                              float* dx, Stream stream);

}  // namespace dsn::cuda
