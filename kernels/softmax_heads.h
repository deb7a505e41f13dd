// Softmax cross-entropy of several classifier heads that share one label per row: the side
// heads and the fused head of a deeply supervised network, all scored in one call.
#pragma once

#include <cstdint>

namespace dsn {

// Logits (heads, rows, classes) contiguous float32, labels (rows) int32 shared by every head.
struct SoftmaxHeads {
  std::int64_t heads = 1;
  std::int64_t rows = 1;
  std::int64_t classes = 1;
};

// Checks that heads and classes are positive and rows is not negative; throws dsn::Error.
void validate(const SoftmaxHeads& shape);

namespace cpu {

// loss (heads, rows) = -log softmax(logits[head, row])[labels[row]] and probs (heads, rows,
// classes) = softmax of each row, computed exactly as dsn::cpu::softmax_cross_entropy_forward
// computes one head. Labels must lie in [0, classes); a label outside throws dsn::Error. probs
// may be equal to logits.
void softmax_heads_cross_entropy_forward(const SoftmaxHeads& shape, const float* logits,
                                         const std::int32_t* labels, float* loss, float* probs);

// dlogits (heads, rows, classes) = dloss[head, row] * (probs - onehot(labels[row])), from
// dloss (heads, rows). dlogits may be equal to probs.
void softmax_heads_cross_entropy_backward(const SoftmaxHeads& shape, const float* probs,
                                          const std::int32_t* labels, const float* dloss,
                                          float* dlogits);

}  // namespace cpu
}  // namespace dsn
