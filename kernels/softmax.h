// Softmax and the fused log-softmax cross-entropy over rows of a (rows, classes) float32 matrix.
#pragma once

#include <cstdint>

namespace dsn {
namespace cpu {

// y (rows, classes) = softmax of each row of x, computed with the row maximum subtracted.
void softmax_forward(std::int64_t rows, std::int64_t classes, const float* x, float* y);

// dx = y * (dy - sum(dy * y)) row-wise, from the forward output y.
void softmax_backward(std::int64_t rows, std::int64_t classes, const float* y, const float* dy,
                      float* dx);

// loss (rows) = -log softmax(logits)[label] per row, and probs (rows, classes) = softmax(logits).
// Labels must lie in [0, classes); a label outside throws dsn::Error.
void softmax_cross_entropy_forward(std::int64_t rows, std::int64_t classes, const float* logits,
                                   const std::int32_t* labels, float* loss, float* probs);

// dlogits (rows, classes) = dloss[row] * (probs - onehot(label)).
void softmax_cross_entropy_backward(std::int64_t rows, std::int64_t classes, const float* probs,
                                    const std::int32_t* labels, const float* dloss,
                                    float* dlogits);

}  // namespace cpu
}  // namespace dsn
