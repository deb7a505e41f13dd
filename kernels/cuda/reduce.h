// Hand-written CUDA reductions, the twins of kernels/reduce.h, and two helpers that the
// reductions of this folder share: a per-stream device workspace for partial results and the
// launch plan of the per-channel reductions over (N, C, H, W) tensors.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/reduce.h"

namespace dsn::cuda {

// *out = sum of x[0 .. count), accumulated in double and rounded to float. out is one float of
// device memory. Deterministic: the summation order depends on count and on whether x is 16-byte
// aligned, never on scheduling, and uses no atomics.
void sum(std::int64_t count, const float* x, float* out, Stream stream);

namespace detail {

// Returns device memory of at least `bytes` bytes, 256-byte aligned, for kernels enqueued on
// `stream` of the current device. Every call for the same stream and device returns the same
// buffer, reallocated when it must grow. Its contents therefore last only until the kernels of
// the next call run, and calls for one stream must come from one host thread at a time. The
// buffers live until the process exits.
void* stream_workspace(std::size_t bytes, Stream stream);

// Launch plan of a reduction over each channel of x (N, C, HW): one block of tile_width x
// tile_height threads per (channel, split). Split s of a channel covers the batch rows
// n = s * tile_height + y, stepping splits * tile_height, and the threads of a row step along HW
// by tile_width. The plan depends on the shape only, so the summation order is the same on every
// GPU.
struct ChannelReductionPlan {
  int tile_width = 1;   // threads along HW (blockDim.x), a power of two
  int tile_height = 1;  // batch rows per block step (blockDim.y)
  int splits = 1;       // blocks per channel
};

ChannelReductionPlan plan_channel_reduction(std::int64_t n, std::int64_t c, std::int64_t hw);

}  // namespace detail
}  // namespace dsn::cuda
