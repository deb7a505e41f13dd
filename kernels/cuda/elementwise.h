// Hand-written CUDA element-wise kernels, the twins of kernels/elementwise.h, over contiguous
// float32 device arrays of `count` elements. In-place calls (the output pointer equal to an
// input pointer) are allowed for every function here. Partially overlapping arrays are not.
// Every function except bias_backward produces the same bits as its dsn::cpu twin.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/elementwise.h"

namespace dsn::cuda {

void fill(std::int64_t count, float value, float* y, Stream stream);
// y = max(x, 0)
void relu_forward(std::int64_t count, const float* x, float* y, Stream stream);
// dx = dy where y > 0, else 0 (y is the forward output)
void relu_backward(std::int64_t count, const float* y, const float* dy, float* dx, Stream stream);
// y = a + b
void add(std::int64_t count, const float* a, const float* b, float* y, Stream stream);
// y += x
void accumulate(std::int64_t count, const float* x, float* y, Stream stream);
// y = alpha * x
void scale(std::int64_t count, float alpha, const float* x, float* y, Stream stream);
// y = x * mask / (1 - p), with the mask of kernels/elementwise.h drawn from kernels/philox.h.
void dropout(std::int64_t count, const DropoutParams& params, const float* x, float* y,
             Stream stream);

// y (N, C, HW) += bias (C), broadcast over N and HW.
void bias_add(std::int64_t n, std::int64_t c, std::int64_t hw, const float* bias, float* y,
              Stream stream);
// dbias (C) = sum of dy (N, C, HW) over N and HW, accumulated in double. Overwrites dbias.
void bias_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy, float* dbias,
                   Stream stream);

}  // namespace dsn::cuda
