// Sum of a float32 array, the twin of dsn::cpu::sum (kernels/reduce.h), and the workspace and
// channel-reduction plan shared by the reductions of kernels/cuda (declared in reduce.h).
//
// Two passes. The first launches G = min(ceil(count / 4096), 1024) blocks of 256 threads. Each
// thread adds its grid-stride share of x into a double, with float4 loads when x is 16-byte
// aligned and then the scalar tail. Each block adds its threads with warp shuffles and shared
// memory in a fixed tree order and stores one partial. The second pass, one block, adds the G
// partials the same way and rounds to float. With G == 1 the first pass writes the result.
//
// Design choice: a two-pass tree instead of float atomics, so that the result depends only on
// count and the alignment of x and is bit-identical from run to run. Accumulating in double
// makes the result match the double reference to float rounding and costs little. A float4
// takes four conversions and four double additions against 16 bytes of traffic, so an H200
// streaming 4.8 TB/s needs about 2.4 TFLOP/s of FP64 of the 33.5 that NVIDIA lists.
//
// nvcc 13 with -Xptxas -v for sm_90: at most 40 registers per thread, no spills.
#include "kernels/cuda/compat.cuh"

#include "kernels/cuda/block_reduce.cuh"

#include "kernels/cuda/reduce.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "engine/error.h"

namespace dsn::cuda {
namespace {

constexpr int kBlock = 256;
// Elements per block of the first pass before another block is added: 16 per thread.
constexpr std::int64_t kElementsPerBlock = 16 * kBlock;
// Upper bound on the first pass's blocks: more than one full wave on an H200 (132 SMs x 6
// resident blocks at 40 registers), while the second pass stays a four-step loop per thread.
constexpr std::int64_t kMaxPartials = 1024;
// Blocks that plan_channel_reduction aims for: about one full wave of 256-thread blocks on an
// H200 (132 SMs x 8 resident blocks at the channel reductions' 28 to 32 registers).
constexpr std::int64_t kTargetBlocks = 1024;
// Smallest workspace allocation. Larger requests round up to a power of two.
constexpr std::size_t kMinWorkspaceBytes = 64 * 1024;

// partials[blockIdx.x] = this block's share of x (count): thread t adds elements t, t + S,
// t + 2S, ... (S = all threads of the grid), as float4s when kVectorized (x 16-byte aligned),
// then the count % 4 tail elements one by one.
template <bool kVectorized, typename Out>
__global__ void sum_partials_grid_stride(std::int64_t count, const float* __restrict__ x,
                                         Out* __restrict__ partials) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t first = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  double total = 0.0;
  std::int64_t scalar_begin = 0;
  if constexpr (kVectorized) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const std::int64_t vectors = count / 4;
    for (std::int64_t v = first; v < vectors; v += stride) {
      const float4 value = x4[v];
      total += (double(value.x) + double(value.y)) + (double(value.z) + double(value.w));
    }
    scalar_begin = vectors * 4;
  }
  for (std::int64_t i = scalar_begin + first; i < count; i += stride) total += x[i];

  total = block_sum(total);
  if (threadIdx.x == 0) partials[blockIdx.x] = static_cast<Out>(total);
}

// *out = sum of partials (count), one block.
__global__ void sum_final_block(int count, const double* __restrict__ partials,
                                float* __restrict__ out) {
  double total = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) total += partials[i];
  total = block_sum(total);
  if (threadIdx.x == 0) *out = static_cast<float>(total);
}

bool is_aligned16(const void* pointer) {
  return reinterpret_cast<std::uintptr_t>(pointer) % 16 == 0;
}

}  // namespace

void sum(std::int64_t count, const float* x, float* out, Stream stream) {
  DSN_CHECK(count >= 0, "cuda::sum: element count {} must not be negative", count);
  DSN_CHECK(out != nullptr, "cuda::sum: the output pointer is null");
  const std::int64_t blocks =
      std::clamp<std::int64_t>(ceil_div(count, kElementsPerBlock), 1, kMaxPartials);
  const bool vectorized = is_aligned16(x);

  if (blocks == 1) {
    launch(
        vectorized ? sum_partials_grid_stride<true, float> : sum_partials_grid_stride<false, float>,
        1, kBlock, 0, stream, count, x, out);
    return;
  }
  auto* partials = static_cast<double*>(detail::stream_workspace(blocks * sizeof(double), stream));
  launch(
      vectorized ? sum_partials_grid_stride<true, double> : sum_partials_grid_stride<false, double>,
      blocks, kBlock, 0, stream, count, x, partials);
  launch(sum_final_block, 1, kBlock, 0, stream, static_cast<int>(blocks), partials, out);
}

namespace detail {

void* stream_workspace(std::size_t bytes, Stream stream) {
  struct Buffer {
    void* data = nullptr;
    std::size_t bytes = 0;
  };
  static std::mutex mutex;
  // Allocated once and never destroyed, so the buffers stay reachable (no leak report) and no
  // cudaFree runs during static destruction, after the runtime may have shut down.
  static auto* buffers = new std::map<std::pair<int, Stream>, Buffer>();

  int device = 0;
  DSN_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard lock(mutex);
  Buffer& buffer = (*buffers)[{device, stream}];
  if (buffer.bytes < bytes) {
    // cudaFree waits for the device's queued work, so no kernel still uses the old buffer.
    DSN_CUDA_CHECK(cudaFree(buffer.data));
    buffer = Buffer{};
    const std::size_t size = std::bit_ceil(std::max(bytes, kMinWorkspaceBytes));
    DSN_CUDA_CHECK(cudaMalloc(&buffer.data, size));
    buffer.bytes = size;
  }
  return buffer.data;
}

ChannelReductionPlan plan_channel_reduction(std::int64_t n, std::int64_t c, std::int64_t hw) {
  DSN_CHECK(n > 0 && c > 0 && hw > 0,
            "channel reduction sizes n = {}, c = {}, H * W = {} must be positive", n, c, hw);
  ChannelReductionPlan plan;
  plan.tile_width = static_cast<int>(
      std::min<std::uint64_t>(std::bit_ceil(static_cast<std::uint64_t>(hw)), kBlock));
  plan.tile_height = kBlock / plan.tile_width;
  // Each split must own at least one step of tile_height batch rows.
  const std::int64_t max_splits = ceil_div(n, std::int64_t(plan.tile_height));
  plan.splits =
      static_cast<int>(std::clamp<std::int64_t>(ceil_div(kTargetBlocks, c), 1, max_splits));
  DSN_CHECK(c * plan.splits <= 0x7fffffff,
            "channel reduction: {} channels x {} splits exceed the grid limit of 2^31 - 1 blocks",
            c, plan.splits);
  return plan;
}

}  // namespace detail
}  // namespace dsn::cuda
