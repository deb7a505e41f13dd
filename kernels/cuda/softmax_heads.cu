// Softmax cross-entropy of several classifier heads sharing one label per row, the CUDA twin of
// kernels/cpu/softmax_heads.cpp: logits (heads, rows, classes), labels (rows).
//
// The heads form one stack of heads * rows rows, so every head of a batch is scored in a single
// launch. The forward gives each row to one warp (kernels/cuda/softmax_rows.cuh, with the
// accuracy derived in kernels/cuda/softmax.cu) and reads its label at row % rows. The backward
// is element-wise and matches the CPU twin bit for bit.
#include "kernels/cuda/compat.cuh"

#include "kernels/cuda/softmax_heads.h"

#include <algorithm>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cuda/softmax_rows.cuh"

namespace dsn::cuda {
namespace {

using namespace softmax_rows;

__global__ void heads_xent_fwd_warp_per_row(SoftmaxHeads shape, const float* logits,
                                            const std::int32_t* labels, float* loss, float* probs) {
  const std::int64_t stacked_rows = shape.heads * shape.rows;
  for (std::int64_t row = first_row(); row < stacked_rows; row += row_stride()) {
    cross_entropy_row(logits + row * shape.classes, labels[row % shape.rows], shape.classes,
                      loss + row, probs + row * shape.classes);
  }
}

__global__ void heads_xent_bwd_elementwise(SoftmaxHeads shape, const float* probs,
                                           const std::int32_t* labels, const float* dloss,
                                           float* dlogits) {
  const std::int64_t count = shape.heads * shape.rows * shape.classes;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const std::int64_t row = i / shape.classes;  // stacked row: head * rows + batch row
    dlogits[i] = cross_entropy_gradient(probs[i], dloss[row], labels[row % shape.rows],
                                        i % shape.classes, shape.classes);
  }
}

}  // namespace

void softmax_heads_cross_entropy_forward(const SoftmaxHeads& shape, const float* logits,
                                         const std::int32_t* labels, float* loss, float* probs,
                                         Stream stream) {
  validate(shape);
  if (shape.rows == 0) return;
  const std::int64_t blocks =
      std::min<std::int64_t>(ceil_div(shape.heads * shape.rows, kWarpsPerBlock), kMaxBlocks);
  launch(heads_xent_fwd_warp_per_row, blocks, kBlockThreads, 0, stream, shape, logits, labels, loss,
         probs);
}

void softmax_heads_cross_entropy_backward(const SoftmaxHeads& shape, const float* probs,
                                          const std::int32_t* labels, const float* dloss,
                                          float* dlogits, Stream stream) {
  validate(shape);
  if (shape.rows == 0) return;
  const std::int64_t blocks = std::min<std::int64_t>(
      ceil_div(shape.heads * shape.rows * shape.classes, kBlockThreads), kMaxBlocks);
  launch(heads_xent_bwd_elementwise, blocks, kBlockThreads, 0, stream, shape, probs, labels, dloss,
         dlogits);
}

}  // namespace dsn::cuda
