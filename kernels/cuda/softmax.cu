// Softmax and the fused log-softmax cross-entropy over rows of a (rows, classes) float32
// matrix, the CUDA twins of kernels/cpu/softmax.cpp.
//
// One warp owns one row, 8 rows per 256-thread block in a grid-stride loop over rows. The lanes
// read the row with stride 32, so any class count works. The row maximum, sum and dot products
// are warp-shuffle butterflies with no shared memory or block barrier. The networks here have
// 7 classes, so a block per row would leave most of its threads idle, while a long row only
// costs its warp more loop iterations.
//
// Design choice a reader may question: sums accumulate in float, not in double as on the CPU.
// For a row of K classes whose logits span r = max - min, each exp(x - max) is off by at most
// about (r + 4) 2^-24 relative to itself (the rounded subtraction amplified by exp, plus the
// 2-ulp error of CUDA's expf), the float sum adds (K - 1) 2^-24 and the division 2^-24, so a
// probability stays within about (K + 2r + 10) 2^-24 of the exact value, relative to itself.
// tests/cuda/test_softmax.cpp accepts twice that. The cross-entropy backward does the CPU
// twin's float operations and matches it bit for bit.
#include "kernels/cuda/compat.cuh"

#include "kernels/cuda/softmax.h"

#include <algorithm>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cuda/softmax_rows.cuh"

namespace dsn::cuda {
namespace {

using namespace softmax_rows;

__global__ void softmax_fwd_warp_per_row(std::int64_t rows, std::int64_t classes, const float* x,
                                         float* y) {
  for (std::int64_t row = first_row(); row < rows; row += row_stride()) {
    const float* x_row = x + row * classes;
    float* y_row = y + row * classes;
    const RowStats stats = row_stats(x_row, classes);
    for (std::int64_t j = lane(); j < classes; j += kWarpSize) {
      y_row[j] = expf(x_row[j] - stats.max) / stats.sum;
    }
  }
}

__global__ void softmax_bwd_warp_per_row(std::int64_t rows, std::int64_t classes, const float* y,
                                         const float* dy, float* dx) {
  for (std::int64_t row = first_row(); row < rows; row += row_stride()) {
    const float* y_row = y + row * classes;
    const float* dy_row = dy + row * classes;
    float* dx_row = dx + row * classes;
    float dot = 0.0f;
    for (std::int64_t j = lane(); j < classes; j += kWarpSize) dot += dy_row[j] * y_row[j];
    dot = warp_sum(dot);
    for (std::int64_t j = lane(); j < classes; j += kWarpSize) {
      dx_row[j] = y_row[j] * (dy_row[j] - dot);
    }
  }
}

__global__ void xent_fwd_warp_per_row(std::int64_t rows, std::int64_t classes, const float* logits,
                                      const std::int32_t* labels, float* loss, float* probs) {
  for (std::int64_t row = first_row(); row < rows; row += row_stride()) {
    cross_entropy_row(logits + row * classes, labels[row], classes, loss + row,
                      probs + row * classes);
  }
}

__global__ void xent_bwd_elementwise(std::int64_t rows, std::int64_t classes, const float* probs,
                                     const std::int32_t* labels, const float* dloss,
                                     float* dlogits) {
  const std::int64_t count = rows * classes;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const std::int64_t row = i / classes;
    dlogits[i] = cross_entropy_gradient(probs[i], dloss[row], labels[row], i % classes, classes);
  }
}

void check_sizes(std::int64_t rows, std::int64_t classes) {
  DSN_CHECK(rows >= 0, "cuda softmax: row count {} must not be negative", rows);
  DSN_CHECK(classes > 0, "cuda softmax: class count {} must be positive", classes);
}

std::int64_t row_blocks(std::int64_t rows) {
  return std::min<std::int64_t>(ceil_div(rows, kWarpsPerBlock), kMaxBlocks);
}

}  // namespace

void softmax_forward(std::int64_t rows, std::int64_t classes, const float* x, float* y,
                     Stream stream) {
  check_sizes(rows, classes);
  if (rows == 0) return;
  launch(softmax_fwd_warp_per_row, row_blocks(rows), kBlockThreads, 0, stream, rows, classes, x, y);
}

void softmax_backward(std::int64_t rows, std::int64_t classes, const float* y, const float* dy,
                      float* dx, Stream stream) {
  check_sizes(rows, classes);
  if (rows == 0) return;
  launch(softmax_bwd_warp_per_row, row_blocks(rows), kBlockThreads, 0, stream, rows, classes, y, dy,
         dx);
}

void softmax_cross_entropy_forward(std::int64_t rows, std::int64_t classes, const float* logits,
                                   const std::int32_t* labels, float* loss, float* probs,
                                   Stream stream) {
  check_sizes(rows, classes);
  if (rows == 0) return;
  launch(xent_fwd_warp_per_row, row_blocks(rows), kBlockThreads, 0, stream, rows, classes, logits,
         labels, loss, probs);
}

void softmax_cross_entropy_backward(std::int64_t rows, std::int64_t classes, const float* probs,
                                    const std::int32_t* labels, const float* dloss, float* dlogits,
                                    Stream stream) {
  check_sizes(rows, classes);
  if (rows == 0) return;
  const std::int64_t blocks =
      std::min<std::int64_t>(ceil_div(rows * classes, kBlockThreads), kMaxBlocks);
  launch(xent_bwd_elementwise, blocks, kBlockThreads, 0, stream, rows, classes, probs, labels,
         dloss, dlogits);
}

}  // namespace dsn::cuda
