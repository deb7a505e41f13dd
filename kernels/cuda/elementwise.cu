// Element-wise kernels on the GPU, the twins of kernels/cpu/elementwise.cpp: fill, ReLU and its
// gradient, add, accumulate, scale, dropout, and the per-channel bias_add and bias_backward of
// (N, C, HW) tensors. All arrays are contiguous float32.
//
// The flat ops run one grid-stride kernel, map_grid_stride, with a functor per op. When every
// pointer is 16-byte aligned, each thread moves float4s and the first threads take the
// count % 4 tail elements. Otherwise threads move single floats. Both paths perform the same
// float operation per element as the CPU twin, so results are bit-identical.
//
// Bandwidth: by Little's law an H200 needs about 4.8 TB/s x 600 ns = 2.9 MB in flight, about
// 22 KB per SM (an estimate; the latency is a typical HBM figure, not measured here). The flat
// kernels use at most 32 registers, so 2048 threads fit on an SM, and with one 16-byte load per
// input outstanding per thread that is 32 KB or more in flight. Lanes of a warp touch
// consecutive addresses, so every access is coalesced.
//
// Dropout runs one thread per Philox-4x32 block of four stream elements, like the CPU twin, so
// each 128-bit random output is computed once and the mask is a pure function of
// (seed, offset + i). bias_add uses the row tiles of kernels/cuda/layout.h, and bias_backward is
// a per-channel reduction with the plan of kernels/cuda/reduce.h, accumulated in double.
//
// Design choice: no __restrict__ and no __ldg on the flat ops' inputs, because in-place calls
// alias an input with the output. Each thread reads its elements before writing them.
//
// nvcc 13 with -Xptxas -v for sm_90: at most 40 registers per thread, no spills.
#include "kernels/cuda/compat.cuh"

#include "kernels/cuda/block_reduce.cuh"

#include "kernels/cuda/elementwise.h"

#include <algorithm>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cuda/layout.h"
#include "kernels/cuda/reduce.h"
#include "kernels/philox.h"

namespace dsn::cuda {
namespace {

constexpr int kBlock = 256;
// Grid-stride loops cover the work beyond this many blocks: 2048 x 256 threads are about two
// full waves on an H200 (132 SMs x 2048 threads).
constexpr std::int64_t kMaxBlocks = 2048;

struct FillOp {
  float value;
  __device__ float operator()() const { return value; }
};
struct ReluOp {
  __device__ float operator()(float x) const { return x > 0.0f ? x : 0.0f; }
};
struct ReluBackwardOp {
  __device__ float operator()(float y, float dy) const { return y > 0.0f ? dy : 0.0f; }
};
struct AddOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct ScaleOp {
  float alpha;
  __device__ float operator()(float x) const { return alpha * x; }
};

template <typename Op, typename... Vectors>
__device__ float4 map_float4(const Op& op, const Vectors&... in) {
  return make_float4(op(in.x...), op(in.y...), op(in.z...), op(in.w...));
}

// y[i] = op(inputs[i]...) for i < count. kVectorized: every pointer is 16-byte aligned.
template <bool kVectorized, typename Op, typename... Inputs>
__global__ void map_grid_stride(std::int64_t count, Op op, float* y, const Inputs*... inputs) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t first = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  std::int64_t scalar_begin = 0;
  if constexpr (kVectorized) {
    const std::int64_t vectors = count / 4;
    float4* y4 = reinterpret_cast<float4*>(y);
    for (std::int64_t v = first; v < vectors; v += stride) {
      y4[v] = map_float4(op, reinterpret_cast<const float4*>(inputs)[v]...);
    }
    scalar_begin = vectors * 4;
  }
  for (std::int64_t i = scalar_begin + first; i < count; i += stride) y[i] = op(inputs[i]...);
}

// Dropout's decision for one stream element from its 32-bit Philox word: the word's top 24
// bits as a float in [0, 1), exactly as philox_uniform in kernels/philox.h computes it.
__device__ float dropout_element(std::uint32_t word, float p, float keep_scale, float x) {
  const float u = static_cast<float>(word >> 8) * (1.0f / 16777216.0f);
  return u >= p ? x * keep_scale : 0.0f;
}

// y[i] = dropout of x[i] for i < count, where element i is stream element offset + i, lane
// (offset + i) % 4 of Philox block (offset + i) / 4. One thread per Philox block.
// kVectorized: x and y are 16-byte aligned and offset % 4 == 0, so block b covers x[4b .. 4b + 3].
template <bool kVectorized>
__global__ void dropout_philox_grid_stride(std::int64_t count, DropoutParams params,
                                           float keep_scale, const float* x, float* y) {
  const std::uint64_t first = params.offset;
  const std::uint64_t last = params.offset + static_cast<std::uint64_t>(count);
  const std::uint64_t first_block = first / 4;
  const std::int64_t blocks = static_cast<std::int64_t>((last + 3) / 4 - first_block);
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t b = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks;
       b += stride) {
    const std::uint64_t block = first_block + static_cast<std::uint64_t>(b);
    const Philox4x32 words = philox4x32(block, params.seed);
    if constexpr (kVectorized) {
      if (4 * b + 4 <= count) {
        float4 v = reinterpret_cast<const float4*>(x)[b];
        v.x = dropout_element(words.v[0], params.p, keep_scale, v.x);
        v.y = dropout_element(words.v[1], params.p, keep_scale, v.y);
        v.z = dropout_element(words.v[2], params.p, keep_scale, v.z);
        v.w = dropout_element(words.v[3], params.p, keep_scale, v.w);
        reinterpret_cast<float4*>(y)[b] = v;
        continue;
      }
    }
    for (int lane = 0; lane < 4; ++lane) {
      const std::uint64_t element = block * 4 + static_cast<std::uint64_t>(lane);
      if (element < first || element >= last) continue;
      const std::int64_t i = static_cast<std::int64_t>(element - first);
      y[i] = dropout_element(words.v[lane], params.p, keep_scale, x[i]);
    }
  }
}

// y row r (of HW elements) += bias[r % C] for the N * C rows, in the row tiles of layout.h.
__global__ void bias_add_tiled(std::int64_t rows, std::int64_t hw, unsigned channels,
                               const float* __restrict__ bias, float* __restrict__ y) {
  const std::int64_t row_step = std::int64_t(gridDim.x) * blockDim.y;
  const std::int64_t column_step = std::int64_t(gridDim.y) * blockDim.x;
  for (std::int64_t row = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < rows;
       row += row_step) {
    const float b = bias[unsigned(row) % channels];
    float* y_row = y + row * hw;
    for (std::int64_t i = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x; i < hw;
         i += column_step) {
      y_row[i] += b;
    }
  }
}

// partials[channel * splits + split] = split's share of the sum of dy (N, C, HW) over channel,
// with the ChannelReductionPlan layout (block = channel * splits + split).
template <typename Out>
__global__ void bias_backward_partial_sums(std::int64_t n, std::int64_t c, std::int64_t hw,
                                           int splits, const float* __restrict__ dy,
                                           Out* __restrict__ partials) {
  const std::int64_t channel = blockIdx.x / splits;
  const int split = blockIdx.x % splits;
  double total = 0.0;
  for (std::int64_t row = std::int64_t(split) * blockDim.y + threadIdx.y; row < n;
       row += std::int64_t(splits) * blockDim.y) {
    const float* dy_row = dy + (row * c + channel) * hw;
    for (std::int64_t i = threadIdx.x; i < hw; i += blockDim.x) total += dy_row[i];
  }
  total = block_sum(total);
  if (threadIdx.x == 0 && threadIdx.y == 0) partials[blockIdx.x] = static_cast<Out>(total);
}

// dbias[channel] = sum of the channel's `splits` partials, in split order.
__global__ void bias_backward_finalize(std::int64_t c, int splits,
                                       const double* __restrict__ partials,
                                       float* __restrict__ dbias) {
  for (std::int64_t channel = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; channel < c;
       channel += std::int64_t(gridDim.x) * blockDim.x) {
    double total = 0.0;
    for (int split = 0; split < splits; ++split) total += partials[channel * splits + split];
    dbias[channel] = static_cast<float>(total);
  }
}

bool is_aligned16(const void* pointer) {
  return reinterpret_cast<std::uintptr_t>(pointer) % 16 == 0;
}

void check_count(const char* op, std::int64_t count) {
  DSN_CHECK(count >= 0, "cuda::{}: element count {} must not be negative", op, count);
}

std::int64_t flat_blocks(std::int64_t items) {
  return std::clamp<std::int64_t>(ceil_div(items, std::int64_t(kBlock)), 1, kMaxBlocks);
}

// Launches map_grid_stride for y[i] = op(inputs[i]...), choosing the float4 path when every
// pointer allows it.
template <typename Op, typename... Inputs>
void map_elements(std::int64_t count, Op op, float* y, Stream stream, const Inputs*... inputs) {
  if (count == 0) return;
  const bool vectorized = is_aligned16(y) && (is_aligned16(inputs) && ...);
  if (vectorized) {
    launch(map_grid_stride<true, Op, Inputs...>, flat_blocks(count / 4), kBlock, 0, stream, count,
           op, y, inputs...);
  } else {
    launch(map_grid_stride<false, Op, Inputs...>, flat_blocks(count), kBlock, 0, stream, count, op,
           y, inputs...);
  }
}

void check_channels(const char* op, std::int64_t n, std::int64_t c, std::int64_t hw) {
  DSN_CHECK(n > 0 && c > 0 && hw > 0, "cuda::{}: sizes n = {}, c = {}, H * W = {} must be positive",
            op, n, c, hw);
}

}  // namespace

void fill(std::int64_t count, float value, float* y, Stream stream) {
  check_count("fill", count);
  map_elements(count, FillOp{value}, y, stream);
}

void relu_forward(std::int64_t count, const float* x, float* y, Stream stream) {
  check_count("relu_forward", count);
  map_elements(count, ReluOp{}, y, stream, x);
}

void relu_backward(std::int64_t count, const float* y, const float* dy, float* dx, Stream stream) {
  check_count("relu_backward", count);
  map_elements(count, ReluBackwardOp{}, dx, stream, y, dy);
}

void add(std::int64_t count, const float* a, const float* b, float* y, Stream stream) {
  check_count("add", count);
  map_elements(count, AddOp{}, y, stream, a, b);
}

void accumulate(std::int64_t count, const float* x, float* y, Stream stream) {
  check_count("accumulate", count);
  // y + x, the same rounding as the CPU twin's y += x.
  map_elements(count, AddOp{}, y, stream, static_cast<const float*>(y), x);
}

void scale(std::int64_t count, float alpha, const float* x, float* y, Stream stream) {
  check_count("scale", count);
  map_elements(count, ScaleOp{alpha}, y, stream, x);
}

void dropout(std::int64_t count, const DropoutParams& params, const float* x, float* y,
             Stream stream) {
  check_count("dropout", count);
  DSN_CHECK(params.p >= 0.0f && params.p < 1.0f,
            "cuda::dropout: probability p = {} must lie in [0, 1)", params.p);
  if (count == 0) return;
  if (params.p == 0.0f) {
    if (x != y) {
      DSN_CUDA_CHECK(cudaMemcpyAsync(y, x, static_cast<std::size_t>(count) * sizeof(float),
                                     cudaMemcpyDeviceToDevice, stream));
    }
    return;
  }
  const float keep_scale = 1.0f / (1.0f - params.p);
  const std::uint64_t last = params.offset + static_cast<std::uint64_t>(count);
  const std::int64_t philox_blocks = static_cast<std::int64_t>((last + 3) / 4 - params.offset / 4);
  const bool vectorized = is_aligned16(x) && is_aligned16(y) && params.offset % 4 == 0;
  launch(vectorized ? dropout_philox_grid_stride<true> : dropout_philox_grid_stride<false>,
         flat_blocks(philox_blocks), kBlock, 0, stream, count, params, keep_scale, x, y);
}

void bias_add(std::int64_t n, std::int64_t c, std::int64_t hw, const float* bias, float* y,
              Stream stream) {
  check_channels("bias_add", n, c, hw);
  const detail::RowTiles tiles = detail::plan_row_tiles(n * c, hw);
  launch(bias_add_tiled, dim3(unsigned(tiles.row_blocks), unsigned(tiles.column_blocks)),
         dim3(tiles.tile_width, tiles.tile_height), 0, stream, n * c, hw, unsigned(c), bias, y);
}

void bias_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy, float* dbias,
                   Stream stream) {
  check_channels("bias_backward", n, c, hw);
  const detail::ChannelReductionPlan plan = detail::plan_channel_reduction(n, c, hw);
  const dim3 block(plan.tile_width, plan.tile_height);
  const std::int64_t blocks = c * plan.splits;
  if (plan.splits == 1) {
    launch(bias_backward_partial_sums<float>, blocks, block, 0, stream, n, c, hw, 1, dy, dbias);
    return;
  }
  auto* partials = static_cast<double*>(detail::stream_workspace(blocks * sizeof(double), stream));
  launch(bias_backward_partial_sums<double>, blocks, block, 0, stream, n, c, hw, plan.splits, dy,
         partials);
  launch(bias_backward_finalize, flat_blocks(c), kBlock, 0, stream, c, plan.splits, partials,
         dbias);
}

}  // namespace dsn::cuda
