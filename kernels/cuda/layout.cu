// Layout copies on the GPU, the twins of kernels/cpu/layout.cpp: channel concatenation (one
// channel_insert per input) and its inverse channel_slice, and Caffe-style 2-D crops of
// (N, C, H, W) contiguous float32 tensors. Also plan_row_tiles (declared in layout.h), the
// launch shape of every row-tiled kernel in kernels/cuda.
//
// Every op copies rows of contiguous floats between two strided layouts with one row-tiled
// kernel. A block covers tile_height rows of tile_width columns, so warps read and write
// contiguous memory whether rows are 3 or 50,000 floats long. The grid adds column blocks when
// there are too few rows to fill the GPU. When every row start and length is a multiple of four
// floats, the same kernel moves float4s, for fewer memory instructions.
//
// Design choice: hand-written kernels instead of cudaMemcpy2DAsync, because the crops have two
// levels of strides and the device emulation, which runs these copies in tests, implements
// only plain copies.
//
// nvcc 13 with -Xptxas -v for sm_90: at most 52 registers per thread, no spills.
#include "kernels/cuda/compat.cuh"

#include "kernels/cuda/layout.h"

#include <algorithm>
#include <bit>
#include <cstdint>

#include "engine/error.h"

namespace dsn::cuda {
namespace {

constexpr int kBlock = 256;
// Row blocks beyond this are covered by the grid-stride loop: 8192 blocks of 256 threads are
// several full waves on an H200 (132 SMs, 4 to 8 resident blocks depending on registers).
constexpr std::int64_t kMaxRowBlocks = 8192;
// Total blocks that column blocks are added to reach when rows are few: one or two full waves.
constexpr std::int64_t kTargetBlocks = 1024;

// Strides that place row r = group * group_rows + k of a tensor at
// group * group_stride + k * row_stride elements from its base pointer.
struct RowAddressing {
  std::int64_t group_stride = 0;
  std::int64_t row_stride = 0;
};

// Copies `rows` rows of `length` elements (T is float or float4) from src to dst, each tensor
// addressed by its RowAddressing. Needs group_rows >= 1 and rows <= 2^31 - 1, which
// plan_row_tiles checks.
template <typename T>
__global__ void copy_rows_tiled(std::int64_t rows, std::int64_t length, unsigned group_rows,
                                const T* __restrict__ src, RowAddressing src_at,
                                T* __restrict__ dst, RowAddressing dst_at) {
  const std::int64_t row_step = std::int64_t(gridDim.x) * blockDim.y;
  const std::int64_t column_step = std::int64_t(gridDim.y) * blockDim.x;
  for (std::int64_t row = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < rows;
       row += row_step) {
    const unsigned group = unsigned(row) / group_rows, within = unsigned(row) % group_rows;
    const T* from = src + group * src_at.group_stride + within * src_at.row_stride;
    T* to = dst + group * dst_at.group_stride + within * dst_at.row_stride;
    for (std::int64_t i = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x; i < length;
         i += column_step) {
      to[i] = from[i];
    }
  }
}

// dx row r = input row ih = r % H of plane r / H: the matching row of dy inside the crop
// window's columns, zeros elsewhere.
__global__ void crop_backward_tiled(CropShape shape, const float* __restrict__ dy,
                                    float* __restrict__ dx) {
  const std::int64_t rows = shape.n * shape.c * shape.h;
  const std::int64_t row_step = std::int64_t(gridDim.x) * blockDim.y;
  const std::int64_t column_step = std::int64_t(gridDim.y) * blockDim.x;
  for (std::int64_t row = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < rows;
       row += row_step) {
    const std::int64_t plane = unsigned(row) / unsigned(shape.h);
    const std::int64_t window_row =
        std::int64_t(unsigned(row) % unsigned(shape.h)) - shape.offset_h;
    const bool row_inside = window_row >= 0 && window_row < shape.out_h;
    const std::int64_t dy_row = (plane * shape.out_h + window_row) * shape.out_w - shape.offset_w;
    float* dx_row = dx + row * shape.w;
    for (std::int64_t i = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x; i < shape.w;
         i += column_step) {
      const bool inside = row_inside && i >= shape.offset_w && i < shape.offset_w + shape.out_w;
      dx_row[i] = inside ? dy[dy_row + i] : 0.0f;
    }
  }
}

bool is_aligned16(const void* pointer) {
  return reinterpret_cast<std::uintptr_t>(pointer) % 16 == 0;
}

// Launches copy_rows_tiled, moving float4s when every address and length allows it.
void copy_rows(std::int64_t rows, std::int64_t length, std::int64_t group_rows, const float* src,
               RowAddressing src_at, float* dst, RowAddressing dst_at, Stream stream) {
  DSN_CHECK(group_rows > 0 && group_rows <= 0x7fffffff, "copy_rows: invalid group_rows {}",
            group_rows);
  const bool vectorized = is_aligned16(src) && is_aligned16(dst) && length % 4 == 0 &&
                          src_at.group_stride % 4 == 0 && src_at.row_stride % 4 == 0 &&
                          dst_at.group_stride % 4 == 0 && dst_at.row_stride % 4 == 0;
  if (vectorized) {
    const RowAddressing src4{src_at.group_stride / 4, src_at.row_stride / 4};
    const RowAddressing dst4{dst_at.group_stride / 4, dst_at.row_stride / 4};
    const detail::RowTiles tiles = detail::plan_row_tiles(rows, length / 4);
    launch(copy_rows_tiled<float4>, dim3(unsigned(tiles.row_blocks), unsigned(tiles.column_blocks)),
           dim3(tiles.tile_width, tiles.tile_height), 0, stream, rows, length / 4,
           unsigned(group_rows), reinterpret_cast<const float4*>(src), src4,
           reinterpret_cast<float4*>(dst), dst4);
    return;
  }
  const detail::RowTiles tiles = detail::plan_row_tiles(rows, length);
  launch(copy_rows_tiled<float>, dim3(unsigned(tiles.row_blocks), unsigned(tiles.column_blocks)),
         dim3(tiles.tile_width, tiles.tile_height), 0, stream, rows, length, unsigned(group_rows),
         src, src_at, dst, dst_at);
}

void check_channel_range(const char* op, std::int64_t n, std::int64_t c_inner, std::int64_t c_outer,
                         std::int64_t hw, std::int64_t channel_offset) {
  DSN_CHECK(n > 0 && c_inner > 0 && hw > 0,
            "cuda::{}: sizes n = {}, channels = {}, H * W = {} must be positive", op, n, c_inner,
            hw);
  DSN_CHECK(channel_offset >= 0 && channel_offset + c_inner <= c_outer,
            "cuda::{}: channels [{}, {}) lie outside the {} channels of the concatenated tensor",
            op, channel_offset, channel_offset + c_inner, c_outer);
}

}  // namespace

void channel_insert(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                    std::int64_t channel_offset, const float* src, float* dst, Stream stream) {
  check_channel_range("channel_insert", n, c_src, c_dst, hw, channel_offset);
  copy_rows(n, c_src * hw, 1, src, RowAddressing{c_src * hw, 0}, dst + channel_offset * hw,
            RowAddressing{c_dst * hw, 0}, stream);
}

void channel_slice(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                   std::int64_t channel_offset, const float* src, float* dst, Stream stream) {
  check_channel_range("channel_slice", n, c_dst, c_src, hw, channel_offset);
  copy_rows(n, c_dst * hw, 1, src + channel_offset * hw, RowAddressing{c_src * hw, 0}, dst,
            RowAddressing{c_dst * hw, 0}, stream);
}

void crop_forward(const CropShape& shape, const float* x, float* y, Stream stream) {
  validate(shape);
  copy_rows(shape.n * shape.c * shape.out_h, shape.out_w, shape.out_h,
            x + shape.offset_h * shape.w + shape.offset_w,
            RowAddressing{shape.h * shape.w, shape.w}, y,
            RowAddressing{shape.out_h * shape.out_w, shape.out_w}, stream);
}

void crop_backward(const CropShape& shape, const float* dy, float* dx, Stream stream) {
  validate(shape);
  DSN_CHECK(shape.h <= 0x7fffffff, "cuda::crop_backward: input height {} exceeds 2^31 - 1",
            shape.h);
  const detail::RowTiles tiles = detail::plan_row_tiles(shape.n * shape.c * shape.h, shape.w);
  launch(crop_backward_tiled, dim3(unsigned(tiles.row_blocks), unsigned(tiles.column_blocks)),
         dim3(tiles.tile_width, tiles.tile_height), 0, stream, shape, dy, dx);
}

namespace detail {

RowTiles plan_row_tiles(std::int64_t rows, std::int64_t length) {
  DSN_CHECK(rows > 0 && length > 0, "row tiles: rows = {} and length = {} must be positive", rows,
            length);
  DSN_CHECK(rows <= 0x7fffffff,
            "row tiles: {} rows exceed 2^31 - 1; the kernels index rows with 32-bit division",
            rows);
  RowTiles tiles;
  tiles.tile_width = static_cast<int>(
      std::min<std::uint64_t>(std::bit_ceil(static_cast<std::uint64_t>(length)), kBlock));
  tiles.tile_height = kBlock / tiles.tile_width;
  tiles.row_blocks = std::min(ceil_div(rows, std::int64_t(tiles.tile_height)), kMaxRowBlocks);
  const std::int64_t column_chunks = ceil_div(length, std::int64_t(tiles.tile_width));
  tiles.column_blocks = std::clamp<std::int64_t>(ceil_div(kTargetBlocks, tiles.row_blocks), 1,
                                                 std::min<std::int64_t>(column_chunks, 65535));
  return tiles;
}

}  // namespace detail
}  // namespace dsn::cuda
