// Batch normalisation on the GPU, the twins of kernels/cpu/batch_norm.cpp. x, y, dy and dx are
// (N, C, H, W) contiguous float32, and gamma, beta and the statistics are (C).
//
// Every pass has the same three steps.
//   1. A per-channel reduction with the plan of kernels/cuda/reduce.h. Block (channel, split)
//      adds its share of the channel in double, reduces over the block with warp shuffles and
//      shared memory in a fixed tree order, and stores a partial in the stream workspace.
//   2. One thread per channel adds its partials in split order, writes the statistics or
//      dgamma and dbeta, and turns them into a few float coefficients per channel.
//   3. A row-tiled element-wise kernel (kernels/cuda/layout.h) applies the coefficients:
//      y = (x - center) * scale + shift, or dx = a * dy + k1 * (x - mean) + k0.
// center is the mean rounded to float, and shift = beta - (mean - center) * scale, so x - center
// is small where the data is and a large mean does not cancel in the float arithmetic.
// Forward training reduces sum(x - s) and sum((x - s)^2) in one read of x, where s is the
// channel's first element. The backward passes reduce sum(dy) and sum(dy * (x - mean)).
//
// Design choice: one pass over x for both moments, in double. The one-pass E[x^2] - E[x]^2 loses
// about log2(mean^2 / var) bits to cancellation. In double, with the shift s bringing the mean
// near zero, that loss stays far below float precision, so the statistics match the CPU twin's
// two-pass double sums to float rounding while x is read once instead of twice. The reductions
// stay memory bound on sm_90: an H200 streams about 1.2e12 floats/s (4.8 TB/s), and the four
// FP64 operations per element need 4.8 TFLOP/s of the 33.5 that NVIDIA lists for H100/H200 SXM.
// On GPUs with 1/64-rate FP64 they may become compute bound. The element-wise step runs in
// float with fmaf, the partials make the result independent of scheduling, and no float
// atomics are used.
//
// nvcc 13 with -Xptxas -v for sm_90: at most 46 registers per thread, no spills.
#include "kernels/cuda/compat.cuh"

#include "kernels/cuda/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cuda/layout.h"
#include "kernels/cuda/reduce.h"

namespace dsn::cuda {
namespace {

constexpr int kBlock = 256;

// Two sums reduced together.
struct SumPair {
  double first = 0.0;
  double second = 0.0;
};

// Returns the sums over the warp in lane 0, added in a fixed tree order.
__device__ SumPair warp_sum(SumPair value) {
  for (int offset = warpSize / 2; offset > 0; offset /= 2) {
    value.first += __shfl_down_sync(0xffffffffu, value.first, offset);
    value.second += __shfl_down_sync(0xffffffffu, value.second, offset);
  }
  return value;
}

// Returns the sums over the block (x fastest, a multiple of 32 threads) in its first thread.
__device__ SumPair block_sum(SumPair value) {
  __shared__ double warp_first[32];
  __shared__ double warp_second[32];
  const int thread = threadIdx.y * blockDim.x + threadIdx.x;
  const int warp = thread / warpSize, lane = thread % warpSize;
  value = warp_sum(value);
  if (lane == 0) {
    warp_first[warp] = value.first;
    warp_second[warp] = value.second;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x * blockDim.y / warpSize;
    SumPair totals;
    if (lane < warps) totals = SumPair{warp_first[lane], warp_second[lane]};
    value = warp_sum(totals);
  }
  return value;
}

// Calls visit(offset) for this thread's share of channel `channel`: the batch rows of block
// split `split` (ChannelReductionPlan), and within a row the columns threadIdx.x + k * blockDim.x.
template <typename Visit>
__device__ void for_each_channel_element(std::int64_t n, std::int64_t c, std::int64_t hw,
                                         std::int64_t channel, int split, int splits,
                                         Visit&& visit) {
  for (std::int64_t row = std::int64_t(split) * blockDim.y + threadIdx.y; row < n;
       row += std::int64_t(splits) * blockDim.y) {
    const std::int64_t base = (row * c + channel) * hw;
    for (std::int64_t i = threadIdx.x; i < hw; i += blockDim.x) visit(base + i);
  }
}

__device__ void store_partial(SumPair sums, double* partials) {
  if (threadIdx.x == 0 && threadIdx.y == 0) {
    partials[2 * blockIdx.x] = sums.first;
    partials[2 * blockIdx.x + 1] = sums.second;
  }
}

__device__ SumPair load_channel_sums(std::int64_t channel, int splits, const double* partials) {
  SumPair sums;
  for (int split = 0; split < splits; ++split) {
    sums.first += partials[2 * (channel * splits + split)];
    sums.second += partials[2 * (channel * splits + split) + 1];
  }
  return sums;
}

// partials[block] = (sum(x - s), sum((x - s)^2)) over the block's share of its channel, with
// s = x[0, channel, 0].
__global__ void batch_norm_partial_moments(BatchNormShape shape, int splits,
                                           const float* __restrict__ x,
                                           double* __restrict__ partials) {
  const std::int64_t channel = blockIdx.x / splits;
  const double shift = x[channel * shape.hw];
  SumPair sums;
  for_each_channel_element(shape.n, shape.c, shape.hw, channel, int(blockIdx.x % splits), splits,
                           [&](std::int64_t at) {
                             const double d = double(x[at]) - shift;
                             sums.first += d;
                             sums.second += d * d;
                           });
  store_partial(block_sum(sums), partials);
}

// partials[block] = (sum(dy), sum(dy * (x - mean[channel]))) over the block's share.
__global__ void batch_norm_partial_gradients(BatchNormShape shape, int splits,
                                             const float* __restrict__ x,
                                             const float* __restrict__ dy,
                                             const float* __restrict__ mean,
                                             double* __restrict__ partials) {
  const std::int64_t channel = blockIdx.x / splits;
  const double channel_mean = mean[channel];
  SumPair sums;
  for_each_channel_element(shape.n, shape.c, shape.hw, channel, int(blockIdx.x % splits), splits,
                           [&](std::int64_t at) {
                             const double g = dy[at];
                             sums.first += g;
                             sums.second += g * (double(x[at]) - channel_mean);
                           });
  store_partial(block_sum(sums), partials);
}

// Per channel: the batch statistics from the moments' partials, the saved and running
// statistics, and coefficients (scale, shift, center) with y = (x - center) * scale + shift.
__global__ void batch_norm_finalize_train(
    BatchNormShape shape, int splits, const double* __restrict__ partials,
    const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta,
    float* __restrict__ save_mean, float* __restrict__ save_inv_std,
    float* __restrict__ running_mean, float* __restrict__ running_var,
    float4* __restrict__ coefficients) {
  const double count = double(shape.n * shape.hw);
  for (std::int64_t channel = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
       channel < shape.c; channel += std::int64_t(gridDim.x) * blockDim.x) {
    const SumPair sums = load_channel_sums(channel, splits, partials);
    const double shifted_mean = sums.first / count;
    const double mean = double(x[channel * shape.hw]) + shifted_mean;
    // Sum of squared deviations from the mean, clamped because rounding can push it below 0.
    const double squares = fmax(sums.second - sums.first * shifted_mean, 0.0);
    const double inv_std = 1.0 / sqrt(squares / count + shape.eps);

    save_mean[channel] = static_cast<float>(mean);
    save_inv_std[channel] = static_cast<float>(inv_std);
    if (running_mean != nullptr) {
      running_mean[channel] = static_cast<float>((1.0 - shape.momentum) * running_mean[channel] +
                                                 shape.momentum * mean);
    }
    if (running_var != nullptr) {
      const double unbiased = squares / (count - 1.0);
      running_var[channel] = static_cast<float>((1.0 - shape.momentum) * running_var[channel] +
                                                shape.momentum * unbiased);
    }
    const double scale = gamma[channel] * inv_std;
    const float center = static_cast<float>(mean);
    const double shift = beta[channel] - (mean - center) * scale;
    coefficients[channel] =
        make_float4(static_cast<float>(scale), static_cast<float>(shift), center, 0.0f);
  }
}

// Per channel: coefficients (scale, shift, center) of the inference-mode affine map
// y = (x - mean) * scale + beta with scale = gamma / sqrt(var + eps). With beta null, shift and
// center are 0, which gives the map dx = scale * dy of the inference backward pass.
__global__ void batch_norm_inference_coefficients(BatchNormShape shape,
                                                  const float* __restrict__ gamma,
                                                  const float* __restrict__ beta,
                                                  const float* __restrict__ mean,
                                                  const float* __restrict__ variance,
                                                  float4* __restrict__ coefficients) {
  for (std::int64_t channel = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
       channel < shape.c; channel += std::int64_t(gridDim.x) * blockDim.x) {
    const float scale =
        static_cast<float>(gamma[channel] / sqrt(double(variance[channel]) + shape.eps));
    coefficients[channel] = beta == nullptr
                                ? make_float4(scale, 0.0f, 0.0f, 0.0f)
                                : make_float4(scale, beta[channel], mean[channel], 0.0f);
  }
}

// Per channel of the training backward pass: dgamma = sum(dy * xhat), dbeta = sum(dy) (when
// not null), and coefficients (a, k1, k0, mean) of dx = a * dy + k1 * (x - mean) + k0, which is
// gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)) with xhat = (x - mean) * inv_std.
__global__ void batch_norm_finalize_backward_train(
    BatchNormShape shape, int splits, const double* __restrict__ partials,
    const float* __restrict__ gamma, const float* __restrict__ save_mean,
    const float* __restrict__ save_inv_std, float* __restrict__ dgamma, float* __restrict__ dbeta,
    float4* __restrict__ coefficients) {
  const double count = double(shape.n * shape.hw);
  for (std::int64_t channel = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
       channel < shape.c; channel += std::int64_t(gridDim.x) * blockDim.x) {
    const SumPair sums = load_channel_sums(channel, splits, partials);
    const double inv_std = save_inv_std[channel];
    const double sum_dy_xhat = sums.second * inv_std;
    if (dgamma != nullptr) dgamma[channel] = static_cast<float>(sum_dy_xhat);
    if (dbeta != nullptr) dbeta[channel] = static_cast<float>(sums.first);

    const double a = gamma[channel] * inv_std;
    const double k1 = -a * inv_std * (sum_dy_xhat / count);
    const double k0 = -a * (sums.first / count);
    coefficients[channel] = make_float4(static_cast<float>(a), static_cast<float>(k1),
                                        static_cast<float>(k0), save_mean[channel]);
  }
}

// Per channel of the inference backward pass: dgamma = sum(dy * (x - mean)) / sqrt(var + eps)
// and dbeta = sum(dy), each when not null.
__global__ void batch_norm_finalize_backward_inference(BatchNormShape shape, int splits,
                                                       const double* __restrict__ partials,
                                                       const float* __restrict__ running_var,
                                                       float* __restrict__ dgamma,
                                                       float* __restrict__ dbeta) {
  for (std::int64_t channel = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
       channel < shape.c; channel += std::int64_t(gridDim.x) * blockDim.x) {
    const SumPair sums = load_channel_sums(channel, splits, partials);
    const double inv_std = 1.0 / sqrt(double(running_var[channel]) + shape.eps);
    if (dgamma != nullptr) dgamma[channel] = static_cast<float>(sums.second * inv_std);
    if (dbeta != nullptr) dbeta[channel] = static_cast<float>(sums.first);
  }
}

// out row r (HW elements, channel r % C) = (in - center) * scale + shift with
// (scale, shift, center) = coefficients[r % C], for the N * C rows.
__global__ void batch_norm_affine_tiled(std::int64_t rows, std::int64_t hw, unsigned channels,
                                        const float4* __restrict__ coefficients,
                                        const float* __restrict__ in, float* __restrict__ out) {
  for (std::int64_t row = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < rows;
       row += std::int64_t(gridDim.x) * blockDim.y) {
    const float4 k = coefficients[unsigned(row) % channels];
    const float* in_row = in + row * hw;
    float* out_row = out + row * hw;
    for (std::int64_t i = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x; i < hw;
         i += std::int64_t(gridDim.y) * blockDim.x) {
      out_row[i] = fmaf(in_row[i] - k.z, k.x, k.y);
    }
  }
}

// dx row r = a * dy + k1 * (x - mean) + k0 with (a, k1, k0, mean) = coefficients[r % C].
__global__ void batch_norm_backward_dx_tiled(std::int64_t rows, std::int64_t hw, unsigned channels,
                                             const float4* __restrict__ coefficients,
                                             const float* __restrict__ x,
                                             const float* __restrict__ dy, float* __restrict__ dx) {
  for (std::int64_t row = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < rows;
       row += std::int64_t(gridDim.x) * blockDim.y) {
    const float4 k = coefficients[unsigned(row) % channels];
    const std::int64_t base = row * hw;
    for (std::int64_t i = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x; i < hw;
         i += std::int64_t(gridDim.y) * blockDim.x) {
      dx[base + i] = fmaf(k.x, dy[base + i], fmaf(k.y, x[base + i] - k.w, k.z));
    }
  }
}

void check_shape(const char* op, const BatchNormShape& shape) {
  DSN_CHECK(shape.n > 0 && shape.c > 0 && shape.hw > 0,
            "cuda::{}: BatchNormShape n = {}, c = {}, hw = {} must be positive", op, shape.n,
            shape.c, shape.hw);
  DSN_CHECK(shape.eps > 0.0, "cuda::{}: BatchNormShape eps = {} must be positive", op, shape.eps);
}

std::int64_t channel_blocks(std::int64_t c) {
  return std::max<std::int64_t>(ceil_div(c, kBlock), 1);
}

// Workspace of a pass: two doubles per reduction block, then `coefficient_bytes` per channel.
struct Workspace {
  double* partials;
  void* coefficients;
};

Workspace reserve_workspace(const BatchNormShape& shape, int splits, std::size_t coefficient_bytes,
                            Stream stream) {
  const std::size_t partial_bytes = 2 * sizeof(double) * std::size_t(shape.c * splits);
  auto* base = static_cast<unsigned char*>(
      detail::stream_workspace(partial_bytes + coefficient_bytes * std::size_t(shape.c), stream));
  // partial_bytes is a multiple of 16, so the coefficients stay aligned for float4.
  return Workspace{reinterpret_cast<double*>(base), base + partial_bytes};
}

// Launches an element-wise kernel over the N * C rows of HW elements.
template <typename... Params, typename... Args>
void launch_rows(void (*kernel)(Params...), const BatchNormShape& shape, Stream stream,
                 Args&&... args) {
  const detail::RowTiles tiles = detail::plan_row_tiles(shape.n * shape.c, shape.hw);
  launch(kernel, dim3(unsigned(tiles.row_blocks), unsigned(tiles.column_blocks)),
         dim3(unsigned(tiles.tile_width), unsigned(tiles.tile_height)), 0, stream,
         shape.n * shape.c, shape.hw, unsigned(shape.c), std::forward<Args>(args)...);
}

// Launches batch_norm_partial_gradients and returns the workspace that receives its partials.
Workspace reduce_gradients(const BatchNormShape& shape, const detail::ChannelReductionPlan& plan,
                           std::size_t coefficient_bytes, const float* x, const float* dy,
                           const float* mean, Stream stream) {
  const Workspace workspace = reserve_workspace(shape, plan.splits, coefficient_bytes, stream);
  launch(batch_norm_partial_gradients, shape.c * plan.splits,
         dim3(plan.tile_width, plan.tile_height), 0, stream, shape, plan.splits, x, dy, mean,
         workspace.partials);
  return workspace;
}

}  // namespace

void batch_norm_forward_train(const BatchNormShape& shape, const float* x, const float* gamma,
                              const float* beta, float* y, float* save_mean, float* save_inv_std,
                              float* running_mean, float* running_var, Stream stream) {
  check_shape("batch_norm_forward_train", shape);
  DSN_CHECK(shape.n * shape.hw > 1,
            "cuda::batch_norm_forward_train needs more than one value per channel (got "
            "N * H * W = {}); use a larger batch or inference mode",
            shape.n * shape.hw);
  const detail::ChannelReductionPlan plan =
      detail::plan_channel_reduction(shape.n, shape.c, shape.hw);
  const Workspace workspace = reserve_workspace(shape, plan.splits, sizeof(float4), stream);
  auto* coefficients = static_cast<float4*>(workspace.coefficients);

  launch(batch_norm_partial_moments, shape.c * plan.splits, dim3(plan.tile_width, plan.tile_height),
         0, stream, shape, plan.splits, x, workspace.partials);
  launch(batch_norm_finalize_train, channel_blocks(shape.c), kBlock, 0, stream, shape, plan.splits,
         workspace.partials, x, gamma, beta, save_mean, save_inv_std, running_mean, running_var,
         coefficients);
  launch_rows(batch_norm_affine_tiled, shape, stream, coefficients, x, y);
}

void batch_norm_forward_inference(const BatchNormShape& shape, const float* x, const float* gamma,
                                  const float* beta, const float* running_mean,
                                  const float* running_var, float* y, Stream stream) {
  check_shape("batch_norm_forward_inference", shape);
  auto* coefficients =
      static_cast<float4*>(detail::stream_workspace(sizeof(float4) * std::size_t(shape.c), stream));
  launch(batch_norm_inference_coefficients, channel_blocks(shape.c), kBlock, 0, stream, shape,
         gamma, beta, running_mean, running_var, coefficients);
  launch_rows(batch_norm_affine_tiled, shape, stream, coefficients, x, y);
}

void batch_norm_backward_train(const BatchNormShape& shape, const float* x, const float* dy,
                               const float* gamma, const float* save_mean,
                               const float* save_inv_std, float* dx, float* dgamma, float* dbeta,
                               Stream stream) {
  check_shape("batch_norm_backward_train", shape);
  const detail::ChannelReductionPlan plan =
      detail::plan_channel_reduction(shape.n, shape.c, shape.hw);
  const Workspace workspace =
      reduce_gradients(shape, plan, sizeof(float4), x, dy, save_mean, stream);
  auto* coefficients = static_cast<float4*>(workspace.coefficients);
  launch(batch_norm_finalize_backward_train, channel_blocks(shape.c), kBlock, 0, stream, shape,
         plan.splits, workspace.partials, gamma, save_mean, save_inv_std, dgamma, dbeta,
         coefficients);
  launch_rows(batch_norm_backward_dx_tiled, shape, stream, coefficients, x, dy, dx);
}

void batch_norm_backward_inference(const BatchNormShape& shape, const float* x, const float* dy,
                                   const float* gamma, const float* running_mean,
                                   const float* running_var, float* dx, float* dgamma, float* dbeta,
                                   Stream stream) {
  check_shape("batch_norm_backward_inference", shape);
  const detail::ChannelReductionPlan plan =
      detail::plan_channel_reduction(shape.n, shape.c, shape.hw);
  Workspace workspace{};
  if (dgamma != nullptr || dbeta != nullptr) {
    workspace = reduce_gradients(shape, plan, sizeof(float4), x, dy, running_mean, stream);
    launch(batch_norm_finalize_backward_inference, channel_blocks(shape.c), kBlock, 0, stream,
           shape, plan.splits, workspace.partials, running_var, dgamma, dbeta);
  } else {
    workspace = reserve_workspace(shape, plan.splits, sizeof(float4), stream);
  }
  auto* coefficients = static_cast<float4*>(workspace.coefficients);
  launch(batch_norm_inference_coefficients, channel_blocks(shape.c), kBlock, 0, stream, shape,
         gamma, nullptr, running_mean, running_var, coefficients);
  launch_rows(batch_norm_affine_tiled, shape, stream, coefficients, dy, dx);
}

}  // namespace dsn::cuda
