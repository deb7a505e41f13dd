// Max, average and global average pooling on the GPU, the twins of kernels/cpu/pool2d.cpp.
// They follow Caffe's PoolingLayer rules: output sizes round up, a last window that would start
// in the padding is dropped, max pooling clips windows to the image, and the AVE divisor counts
// the window cells inside the padded input.
//
// Layout: x (N, C, H, W) and y (N, C, P, Q), contiguous float32. argmax contains plane indices
// h * W + w as int32. The window kernels use the row tiles of kernels/cuda/layout.h: a row is
// one output row (forward) or one input row (backward) of one plane, so a warp covers
// neighbouring columns and its loads and stores are contiguous.
//
// Design choice: the backward passes gather instead of scattering. Each thread owns one input
// cell and visits the windows that can contain it: rows (ih + pad - kernel) / stride + 1 through
// (ih + pad) / stride, and likewise for columns. It adds their contributions in row-major window
// order, the order in which the CPU twin's scatter reaches that cell. There are no atomics,
// every dx element is written once, and the results equal the CPU twin's bit for bit.
// Overlapping windows (3x3 stride 2) make a few threads read the same dy twice, which costs far
// less than atomics would.
//
// nvcc 13 with -Xptxas -v for sm_90: at most 56 registers per thread, no spills.
#include "kernels/cuda/compat.cuh"

#include "kernels/cuda/block_reduce.cuh"

#include "kernels/cuda/pool2d.h"

#include <algorithm>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cuda/layout.h"

namespace dsn::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kWarpsPerBlock = kBlock / 32;
// Global pooling blocks beyond this are covered by the grid-stride loop: more than two full
// waves on an H200 (132 SMs x 6 resident blocks at this kernel's 37 registers).
constexpr std::int64_t kMaxBlocks = 2048;

// One pooling window along one axis, as in the CPU twin: the cells [begin, end) inside the
// image, and divisor_extent cells clipped to the padded input.
struct Window {
  std::int64_t begin, end, divisor_extent;
};

__device__ Window pool_window(std::int64_t index, std::int64_t size, std::int64_t kernel,
                              std::int64_t stride, std::int64_t pad) {
  const std::int64_t start = index * stride - pad;
  const std::int64_t padded_end = start + kernel < size + pad ? start + kernel : size + pad;
  return Window{start > 0 ? start : 0, padded_end < size ? padded_end : size, padded_end - start};
}

// Windows [first, last) along one axis whose cells include input coordinate `index`.
struct WindowRange {
  std::int64_t first, last;
};

__device__ WindowRange windows_containing(std::int64_t index, std::int64_t out_size,
                                          std::int64_t kernel, std::int64_t stride,
                                          std::int64_t pad) {
  const std::int64_t padded = index + pad;
  const std::int64_t first = padded < kernel ? 0 : (padded - kernel) / stride + 1;
  const std::int64_t last = padded / stride + 1;
  return WindowRange{first, last < out_size ? last : out_size};
}

// Output sizes of a Pool2dShape, computed on the host (Pool2dShape::out_h is host code).
struct PooledSize {
  std::int64_t h, w;
};

// y and argmax row r = output row p = r % P of plane r / P.
__global__ void max_pool2d_forward_tiled(Pool2dShape shape, PooledSize out,
                                         const float* __restrict__ x, float* __restrict__ y,
                                         std::int32_t* __restrict__ argmax) {
  const std::int64_t rows = shape.n * shape.c * out.h;
  for (std::int64_t row = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < rows;
       row += std::int64_t(gridDim.x) * blockDim.y) {
    const std::int64_t plane = unsigned(row) / unsigned(out.h);
    const std::int64_t p = unsigned(row) % unsigned(out.h);
    const Window window_rows = pool_window(p, shape.h, shape.kernel_h, shape.stride_h, shape.pad_h);
    const float* x_plane = x + plane * shape.h * shape.w;
    for (std::int64_t q = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x; q < out.w;
         q += std::int64_t(gridDim.y) * blockDim.x) {
      const Window window_cols =
          pool_window(q, shape.w, shape.kernel_w, shape.stride_w, shape.pad_w);
      // validate() guarantees a non-empty window. Its first cell starts the maximum and only a
      // strictly greater value replaces it, so the first maximum wins as in the CPU twin.
      std::int64_t best = window_rows.begin * shape.w + window_cols.begin;
      float best_value = x_plane[best];
      for (std::int64_t ih = window_rows.begin; ih < window_rows.end; ++ih) {
        for (std::int64_t iw = window_cols.begin; iw < window_cols.end; ++iw) {
          const float value = x_plane[ih * shape.w + iw];
          if (value > best_value) {
            best_value = value;
            best = ih * shape.w + iw;
          }
        }
      }
      y[row * out.w + q] = best_value;
      argmax[row * out.w + q] = static_cast<std::int32_t>(best);
    }
  }
}

// dx row r = input row ih = r % H of plane r / H: each cell adds dy of the windows whose
// argmax it is, in row-major window order.
__global__ void max_pool2d_backward_gather(Pool2dShape shape, PooledSize out,
                                           const float* __restrict__ dy,
                                           const std::int32_t* __restrict__ argmax,
                                           float* __restrict__ dx) {
  const std::int64_t rows = shape.n * shape.c * shape.h;
  for (std::int64_t row = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < rows;
       row += std::int64_t(gridDim.x) * blockDim.y) {
    const std::int64_t plane = unsigned(row) / unsigned(shape.h);
    const std::int64_t ih = unsigned(row) % unsigned(shape.h);
    const WindowRange window_rows =
        windows_containing(ih, out.h, shape.kernel_h, shape.stride_h, shape.pad_h);
    const float* dy_plane = dy + plane * out.h * out.w;
    const std::int32_t* argmax_plane = argmax + plane * out.h * out.w;
    for (std::int64_t iw = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x; iw < shape.w;
         iw += std::int64_t(gridDim.y) * blockDim.x) {
      const WindowRange window_cols =
          windows_containing(iw, out.w, shape.kernel_w, shape.stride_w, shape.pad_w);
      const std::int32_t cell = static_cast<std::int32_t>(ih * shape.w + iw);
      float total = 0.0f;
      for (std::int64_t p = window_rows.first; p < window_rows.last; ++p) {
        for (std::int64_t q = window_cols.first; q < window_cols.last; ++q) {
          if (argmax_plane[p * out.w + q] == cell) total += dy_plane[p * out.w + q];
        }
      }
      dx[row * shape.w + iw] = total;
    }
  }
}

// y row r = output row p = r % P of plane r / P: window sums in row-major order, divided by
// the Caffe divisor.
__global__ void avg_pool2d_forward_tiled(Pool2dShape shape, PooledSize out,
                                         const float* __restrict__ x, float* __restrict__ y) {
  const std::int64_t rows = shape.n * shape.c * out.h;
  for (std::int64_t row = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < rows;
       row += std::int64_t(gridDim.x) * blockDim.y) {
    const std::int64_t plane = unsigned(row) / unsigned(out.h);
    const std::int64_t p = unsigned(row) % unsigned(out.h);
    const Window window_rows = pool_window(p, shape.h, shape.kernel_h, shape.stride_h, shape.pad_h);
    const float* x_plane = x + plane * shape.h * shape.w;
    for (std::int64_t q = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x; q < out.w;
         q += std::int64_t(gridDim.y) * blockDim.x) {
      const Window window_cols =
          pool_window(q, shape.w, shape.kernel_w, shape.stride_w, shape.pad_w);
      float total = 0.0f;
      for (std::int64_t ih = window_rows.begin; ih < window_rows.end; ++ih) {
        for (std::int64_t iw = window_cols.begin; iw < window_cols.end; ++iw) {
          total += x_plane[ih * shape.w + iw];
        }
      }
      y[row * out.w + q] =
          total / static_cast<float>(window_rows.divisor_extent * window_cols.divisor_extent);
    }
  }
}

// dx row r = input row ih = r % H of plane r / H: each cell adds dy / divisor of every window
// that contains it, in row-major window order.
__global__ void avg_pool2d_backward_gather(Pool2dShape shape, PooledSize out,
                                           const float* __restrict__ dy, float* __restrict__ dx) {
  const std::int64_t rows = shape.n * shape.c * shape.h;
  for (std::int64_t row = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < rows;
       row += std::int64_t(gridDim.x) * blockDim.y) {
    const std::int64_t plane = unsigned(row) / unsigned(shape.h);
    const std::int64_t ih = unsigned(row) % unsigned(shape.h);
    const WindowRange window_rows =
        windows_containing(ih, out.h, shape.kernel_h, shape.stride_h, shape.pad_h);
    const float* dy_plane = dy + plane * out.h * out.w;
    for (std::int64_t iw = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x; iw < shape.w;
         iw += std::int64_t(gridDim.y) * blockDim.x) {
      const WindowRange window_cols =
          windows_containing(iw, out.w, shape.kernel_w, shape.stride_w, shape.pad_w);
      float total = 0.0f;
      for (std::int64_t p = window_rows.first; p < window_rows.last; ++p) {
        const std::int64_t divisor_h =
            pool_window(p, shape.h, shape.kernel_h, shape.stride_h, shape.pad_h).divisor_extent;
        for (std::int64_t q = window_cols.first; q < window_cols.last; ++q) {
          const std::int64_t divisor_w =
              pool_window(q, shape.w, shape.kernel_w, shape.stride_w, shape.pad_w).divisor_extent;
          total += dy_plane[p * out.w + q] / static_cast<float>(divisor_h * divisor_w);
        }
      }
      dx[row * shape.w + iw] = total;
    }
  }
}

// y[plane] = mean of x's plane (HW elements): one warp per plane, lanes striding along the
// plane, accumulated in double like the CPU twin.
__global__ void global_avg_pool_forward_warps(std::int64_t planes, std::int64_t hw,
                                              const float* __restrict__ x, float* __restrict__ y) {
  const int lane = threadIdx.x % warpSize;
  const std::int64_t warps = std::int64_t(gridDim.x) * (blockDim.x / warpSize);
  for (std::int64_t plane = (std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / warpSize;
       plane < planes; plane += warps) {
    const float* x_plane = x + plane * hw;
    double total = 0.0;
    for (std::int64_t i = lane; i < hw; i += warpSize) total += x_plane[i];
    total = warp_sum(total);
    if (lane == 0) y[plane] = static_cast<float>(total / static_cast<double>(hw));
  }
}

// dx row r (one plane of HW) = dy[r] / HW, divided in double and rounded once, as in the CPU
// twin.
__global__ void global_avg_pool_backward_tiled(std::int64_t planes, std::int64_t hw,
                                               const float* __restrict__ dy,
                                               float* __restrict__ dx) {
  for (std::int64_t row = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < planes;
       row += std::int64_t(gridDim.x) * blockDim.y) {
    const float share = static_cast<float>(static_cast<double>(dy[row]) / hw);
    float* dx_row = dx + row * hw;
    for (std::int64_t i = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x; i < hw;
         i += std::int64_t(gridDim.y) * blockDim.x) {
      dx_row[i] = share;
    }
  }
}

PooledSize pooled_size(const Pool2dShape& shape) {
  validate(shape);
  return PooledSize{shape.out_h(), shape.out_w()};
}

dim3 grid_of(const detail::RowTiles& tiles) {
  return dim3(unsigned(tiles.row_blocks), unsigned(tiles.column_blocks));
}

dim3 block_of(const detail::RowTiles& tiles) {
  return dim3(unsigned(tiles.tile_width), unsigned(tiles.tile_height));
}

void check_global_sizes(const char* op, std::int64_t n, std::int64_t c, std::int64_t hw) {
  DSN_CHECK(n > 0 && c > 0 && hw > 0, "cuda::{}: sizes n = {}, c = {}, H * W = {} must be positive",
            op, n, c, hw);
}

}  // namespace

void max_pool2d_forward(const Pool2dShape& shape, const float* x, float* y, std::int32_t* argmax,
                        Stream stream) {
  const PooledSize out = pooled_size(shape);
  const detail::RowTiles tiles = detail::plan_row_tiles(shape.n * shape.c * out.h, out.w);
  launch(max_pool2d_forward_tiled, grid_of(tiles), block_of(tiles), 0, stream, shape, out, x, y,
         argmax);
}

void max_pool2d_backward(const Pool2dShape& shape, const float* dy, const std::int32_t* argmax,
                         float* dx, Stream stream) {
  const PooledSize out = pooled_size(shape);
  const detail::RowTiles tiles = detail::plan_row_tiles(shape.n * shape.c * shape.h, shape.w);
  launch(max_pool2d_backward_gather, grid_of(tiles), block_of(tiles), 0, stream, shape, out, dy,
         argmax, dx);
}

void avg_pool2d_forward(const Pool2dShape& shape, const float* x, float* y, Stream stream) {
  const PooledSize out = pooled_size(shape);
  const detail::RowTiles tiles = detail::plan_row_tiles(shape.n * shape.c * out.h, out.w);
  launch(avg_pool2d_forward_tiled, grid_of(tiles), block_of(tiles), 0, stream, shape, out, x, y);
}

void avg_pool2d_backward(const Pool2dShape& shape, const float* dy, float* dx, Stream stream) {
  const PooledSize out = pooled_size(shape);
  const detail::RowTiles tiles = detail::plan_row_tiles(shape.n * shape.c * shape.h, shape.w);
  launch(avg_pool2d_backward_gather, grid_of(tiles), block_of(tiles), 0, stream, shape, out, dy,
         dx);
}

void global_avg_pool_forward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* x,
                             float* y, Stream stream) {
  check_global_sizes("global_avg_pool_forward", n, c, hw);
  const std::int64_t planes = n * c;
  const std::int64_t blocks =
      std::clamp<std::int64_t>(ceil_div(planes, std::int64_t(kWarpsPerBlock)), 1, kMaxBlocks);
  launch(global_avg_pool_forward_warps, blocks, kBlock, 0, stream, planes, hw, x, y);
}

void global_avg_pool_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy,
                              float* dx, Stream stream) {
  check_global_sizes("global_avg_pool_backward", n, c, hw);
  const detail::RowTiles tiles = detail::plan_row_tiles(n * c, hw);
  launch(global_avg_pool_backward_tiled, grid_of(tiles), block_of(tiles), 0, stream, n * c, hw, dy,
         dx);
}

}  // namespace dsn::cuda
