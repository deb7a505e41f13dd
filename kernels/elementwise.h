// Element-wise kernels over contiguous float32 arrays of `count` elements. In-place calls (the
// output pointer equal to an input pointer) are allowed for every function here.
#pragma once

#include <cstdint>

namespace dsn {

// Dropout keeps an element when philox_uniform(seed, offset, i) >= p and scales it by 1 / (1 - p),
// so the mask is a pure function of (seed, offset, i) and the backward pass recomputes it.
struct DropoutParams {
  float p = 0.5f;
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;
};

namespace cpu {

void fill(std::int64_t count, float value, float* y);
// y = max(x, 0)
void relu_forward(std::int64_t count, const float* x, float* y);
// dx = dy where y > 0, else 0 (y is the forward output)
void relu_backward(std::int64_t count, const float* y, const float* dy, float* dx);
// y = a + b
void add(std::int64_t count, const float* a, const float* b, float* y);
// y += x
void accumulate(std::int64_t count, const float* x, float* y);
// y = alpha * x
void scale(std::int64_t count, float alpha, const float* x, float* y);
// y = x * mask / (1 - p); used for both the forward (x) and the backward (dy) pass.
void dropout(std::int64_t count, const DropoutParams& params, const float* x, float* y);

// y (N, C, HW) += bias (C), broadcast over N and HW.
void bias_add(std::int64_t n, std::int64_t c, std::int64_t hw, const float* bias, float* y);
// dbias (C) = sum of dy (N, C, HW) over N and HW. Overwrites dbias.
void bias_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy,
                   float* dbias);

}  // namespace cpu
}  // namespace dsn
