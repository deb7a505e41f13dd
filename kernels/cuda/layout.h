// Hand-written CUDA layout copies, the twins of kernels/layout.h: channel concatenation and its
// slice, and 2-D crops of (N, C, H, W) contiguous float32 tensors. Also the launch plan of the
// row-tiled kernels of this folder, which see a tensor as rows of contiguous floats.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/layout.h"

namespace dsn::cuda {

// Copies src (N, C_src, HW) into channels [channel_offset, channel_offset + C_src) of
// dst (N, C_dst, HW). The other channels of dst are left unchanged.
void channel_insert(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                    std::int64_t channel_offset, const float* src, float* dst, Stream stream);

// Copies channels [channel_offset, channel_offset + C_dst) of src (N, C_src, HW) into
// dst (N, C_dst, HW).
void channel_slice(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                   std::int64_t channel_offset, const float* src, float* dst, Stream stream);

// y (N, C, out_h, out_w) = window of x (N, C, H, W).
void crop_forward(const CropShape& shape, const float* x, float* y, Stream stream);

// dx (N, C, H, W) = dy (N, C, out_h, out_w) placed at the window, zeros elsewhere. Overwrites dx.
void crop_backward(const CropShape& shape, const float* dy, float* dx, Stream stream);

namespace detail {

// Launch shape of a kernel over `rows` rows of `length` contiguous elements, in blocks of
// tile_width x tile_height threads. tile_width is the smallest power of two not below length,
// at most 256, so that short rows share a block and a warp reads contiguous memory.
// Block (x, y) takes rows blockIdx.x * tile_height + threadIdx.y, stepping
// row_blocks * tile_height, and columns blockIdx.y * tile_width + threadIdx.x, stepping
// column_blocks * tile_width. Throws dsn::Error when rows exceeds 2^31 - 1, because the kernels
// split row indices into coordinates with 32-bit division.
struct RowTiles {
  int tile_width = 1;
  int tile_height = 1;
  std::int64_t row_blocks = 1;     // gridDim.x
  std::int64_t column_blocks = 1;  // gridDim.y
};

RowTiles plan_row_tiles(std::int64_t rows, std::int64_t length);

}  // namespace detail
}  // namespace dsn::cuda
