// Device helpers of the softmax kernels in kernels/cuda/softmax.cu and softmax_heads.cu. One
// warp owns one row, each lane reads the columns lane, lane + 32, ..., and warp shuffles combine
// the lanes. Include after kernels/cuda/compat.cuh.
#pragma once

#include <cmath>
#include <cstdint>

namespace dsn::cuda::softmax_rows {

inline constexpr int kWarpSize = 32;
inline constexpr int kWarpsPerBlock = 8;
inline constexpr int kBlockThreads = kWarpsPerBlock * kWarpSize;
// Grids stop growing here and loop instead. 65535 blocks of 256 threads are about 60 times what
// an H200 (132 SMs of 2048 threads) holds at once.
inline constexpr std::int64_t kMaxBlocks = 65535;
inline constexpr unsigned kFullMask = 0xffffffffu;

// Row maximum and sum of exp(x - maximum), the same in every lane.
struct RowStats {
  float max;
  float sum;
};

__device__ __forceinline__ float quiet_nan() {
  return __int_as_float(0x7fffffff);
}

// The rows of a grid-stride loop over rows are warp-uniform, so full-mask shuffles are safe.
__device__ __forceinline__ std::int64_t first_row() {
  return (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
}
__device__ __forceinline__ std::int64_t row_stride() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x / kWarpSize;
}
__device__ __forceinline__ int lane() {
  return static_cast<int>(threadIdx.x % kWarpSize);
}

// Butterfly reductions: every lane ends with the result, combined in the same order on every
// lane and every run.
__device__ __forceinline__ float warp_max(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    value = fmaxf(value, __shfl_xor_sync(kFullMask, value, offset));
  }
  return value;
}

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(kFullMask, value, offset);
  }
  return value;
}

__device__ __forceinline__ RowStats row_stats(const float* x, std::int64_t classes) {
  float max = -INFINITY;
  for (std::int64_t j = lane(); j < classes; j += kWarpSize) max = fmaxf(max, x[j]);
  max = warp_max(max);
  float sum = 0.0f;
  for (std::int64_t j = lane(); j < classes; j += kWarpSize) sum += expf(x[j] - max);
  return {max, warp_sum(sum)};
}

// Writes probs = softmax(x) for one row and, from lane 0, loss = log(sum) - (x[label] - max),
// or NaN for a label outside [0, classes). Every lane reads x[label] before the first shuffle
// and writes only the columns it read itself, so probs may be equal to x.
__device__ __forceinline__ void cross_entropy_row(const float* x, std::int32_t label,
                                                  std::int64_t classes, float* loss, float* probs) {
  const bool valid = label >= 0 && label < classes;
  const float label_logit = valid ? x[label] : 0.0f;
  const RowStats stats = row_stats(x, classes);
  for (std::int64_t j = lane(); j < classes; j += kWarpSize) {
    probs[j] = expf(x[j] - stats.max) / stats.sum;
  }
  if (lane() == 0) *loss = valid ? logf(stats.sum) - (label_logit - stats.max) : quiet_nan();
}

// Returns one element of dlogits, dloss[row] * (probability - onehot(label)[column]) with the
// CPU twin's float operations, or NaN for a label outside [0, classes).
__device__ __forceinline__ float cross_entropy_gradient(float probability, float row_dloss,
                                                        std::int32_t label, std::int64_t column,
                                                        std::int64_t classes) {
  if (label < 0 || label >= classes) return quiet_nan();
  const float target = column == label ? 1.0f : 0.0f;
  return row_dloss * (probability - target);
}

}  // namespace dsn::cuda::softmax_rows
