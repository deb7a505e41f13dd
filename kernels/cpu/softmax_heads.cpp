// Multi-head softmax cross-entropy on the CPU: one call of the single-head kernels
// (kernels/cpu/softmax.cpp) per head, with the label array shared, so each head's results are
// bit-identical to scoring it alone.
#include "kernels/softmax_heads.h"

#include <cstdint>

#include "engine/error.h"
#include "kernels/softmax.h"

namespace dsn {

void validate(const SoftmaxHeads& shape) {
  DSN_CHECK(shape.heads > 0, "SoftmaxHeads: head count {} must be positive", shape.heads);
  DSN_CHECK(shape.rows >= 0, "SoftmaxHeads: row count {} must not be negative", shape.rows);
  DSN_CHECK(shape.classes > 0, "SoftmaxHeads: class count {} must be positive", shape.classes);
}

namespace cpu {

void softmax_heads_cross_entropy_forward(const SoftmaxHeads& shape, const float* logits,
                                         const std::int32_t* labels, float* loss, float* probs) {
  validate(shape);
  const std::int64_t head_size = shape.rows * shape.classes;
  for (std::int64_t head = 0; head < shape.heads; ++head) {
    softmax_cross_entropy_forward(shape.rows, shape.classes, logits + head * head_size, labels,
                                  loss + head * shape.rows, probs + head * head_size);
  }
}

void softmax_heads_cross_entropy_backward(const SoftmaxHeads& shape, const float* probs,
                                          const std::int32_t* labels, const float* dloss,
                                          float* dlogits) {
  validate(shape);
  const std::int64_t head_size = shape.rows * shape.classes;
  for (std::int64_t head = 0; head < shape.heads; ++head) {
    softmax_cross_entropy_backward(shape.rows, shape.classes, probs + head * head_size, labels,
                                   dloss + head * shape.rows, dlogits + head * head_size);
  }
}

}  // namespace cpu
}  // namespace dsn
