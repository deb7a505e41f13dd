// CUDA twins of the softmax kernels in kernels/softmax.h: softmax and the fused log-softmax
// cross-entropy over rows of a (rows, classes) float32 matrix. Pointers are device memory and
// every call is enqueued on `stream`.
//
// Differences from the CPU twin: sums accumulate in float instead of double (see
// kernels/cuda/softmax.cu for the error bound), and labels outside [0, classes) give NaN
// instead of an exception, because the labels lie in device memory and checking them on the
// host would cost a copy and a synchronisation.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/softmax.h"

namespace dsn::cuda {

// y (rows, classes) = softmax of each row of x (rows, classes). y may be equal to x.
void softmax_forward(std::int64_t rows, std::int64_t classes, const float* x, float* y,
                     Stream stream);

// dx (rows, classes) = y * (dy - sum(dy * y)) row-wise. dx may be equal to y or dy.
void softmax_backward(std::int64_t rows, std::int64_t classes, const float* y, const float* dy,
                      float* dx, Stream stream);

// loss (rows) = -log softmax(logits)[label] and probs (rows, classes) = softmax(logits). A row
// whose label lies outside [0, classes) gets a NaN loss. probs may be equal to logits.
void softmax_cross_entropy_forward(std::int64_t rows, std::int64_t classes, const float* logits,
                                   const std::int32_t* labels, float* loss, float* probs,
                                   Stream stream);

// dlogits (rows, classes) = dloss[row] * (probs - onehot(label)), bit-identical to the CPU twin;
// rows with a label outside [0, classes) get NaN. dlogits may be equal to probs.
void softmax_cross_entropy_backward(std::int64_t rows, std::int64_t classes, const float* probs,
                                    const std::int32_t* labels, const float* dloss, float* dlogits,
                                    Stream stream);

}  // namespace dsn::cuda
