// CUDA twin of kernels/softmax_heads.h: the softmax cross-entropy of every classifier head of a
// batch (the side heads and the fused head of a deeply supervised network) in one launch each
// way. Pointers are device memory and every call is enqueued on `stream`. As in
// kernels/cuda/softmax.h, sums accumulate in float and labels outside [0, classes) give NaN
// instead of an exception.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/softmax_heads.h"

namespace dsn::cuda {

// loss (heads, rows) and probs (heads, rows, classes) from logits (heads, rows, classes) and
// labels (rows). probs may be equal to logits.
void softmax_heads_cross_entropy_forward(const SoftmaxHeads& shape, const float* logits,
                                         const std::int32_t* labels, float* loss, float* probs,
                                         Stream stream);

// dlogits (heads, rows, classes) = dloss[head, row] * (probs - onehot(labels[row])), from
// dloss (heads, rows); bit-identical to the CPU twin. dlogits may be equal to probs.
void softmax_heads_cross_entropy_backward(const SoftmaxHeads& shape, const float* probs,
                                          const std::int32_t* labels, const float* dloss,
                                          float* dlogits, Stream stream);

}  // namespace dsn::cuda
