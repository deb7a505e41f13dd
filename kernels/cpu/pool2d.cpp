// Max, average and global average pooling on the CPU, following Caffe's PoolingLayer rules.
//
// Layout: x (N, C, H, W), y (N, C, P, Q), contiguous float32. argmax contains plane indices h * W +
// w. A window starts at (p * stride - pad, q * stride - pad). Max pooling clips the window to the
// image, so padding never wins. Average pooling divides by the window clipped to the padded
// input (Caffe's AVE) but sums only the cells inside the image.
//
// Design choice: every (n, c) plane is one unit of OpenMP work and the backward passes
// scatter-add inside their own plane, so no two threads write the same element and the order
// of the additions is fixed.
#include "kernels/pool2d.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "engine/error.h"
#include "kernels/cpu/blas.h"

namespace dsn {
namespace {

// Number of windows of `kernel` cells, `stride` apart, over `size` cells with `pad` on each side.
std::int64_t pooled_size(std::int64_t size, std::int64_t kernel, std::int64_t stride,
                         std::int64_t pad, bool ceil_mode) {
  const std::int64_t span = size + 2 * pad - kernel;
  // Floor and ceiling division that also round correctly for a negative span.
  const std::int64_t floor_steps = span >= 0 ? span / stride : -((-span + stride - 1) / stride);
  const std::int64_t ceil_steps = span >= 0 ? (span + stride - 1) / stride : -(-span / stride);
  std::int64_t out = (ceil_mode ? ceil_steps : floor_steps) + 1;
  // Drop a last window that would start inside the bottom or right padding (Caffe applies this
  // only when pad > 0, PyTorch in every ceil-mode case; with pad == 0 such a window would start
  // outside the image and be empty, so the rule applies here regardless of pad). It never fires
  // in floor mode because pad < kernel.
  if (out > 1 && (out - 1) * stride >= size + pad) --out;
  return out;
}

}  // namespace

std::int64_t Pool2dShape::out_h() const {
  return pooled_size(h, kernel_h, stride_h, pad_h, ceil_mode);
}

std::int64_t Pool2dShape::out_w() const {
  return pooled_size(w, kernel_w, stride_w, pad_w, ceil_mode);
}

void validate(const Pool2dShape& shape) {
  DSN_CHECK(shape.n > 0 && shape.c > 0, "Pool2dShape: n = {} and c = {} must be positive", shape.n,
            shape.c);
  DSN_CHECK(shape.h > 0 && shape.w > 0, "Pool2dShape: input size {}x{} must be positive", shape.h,
            shape.w);
  DSN_CHECK(shape.h * shape.w <= std::numeric_limits<std::int32_t>::max(),
            "Pool2dShape: input plane {}x{} has more elements than an int32 argmax can index",
            shape.h, shape.w);
  DSN_CHECK(shape.kernel_h > 0 && shape.kernel_w > 0, "Pool2dShape: kernel {}x{} must be positive",
            shape.kernel_h, shape.kernel_w);
  DSN_CHECK(shape.stride_h > 0 && shape.stride_w > 0, "Pool2dShape: stride {}x{} must be positive",
            shape.stride_h, shape.stride_w);
  DSN_CHECK(shape.pad_h >= 0 && shape.pad_w >= 0, "Pool2dShape: padding {}x{} must not be negative",
            shape.pad_h, shape.pad_w);
  DSN_CHECK(shape.pad_h < shape.kernel_h && shape.pad_w < shape.kernel_w,
            "Pool2dShape: padding {}x{} must be smaller than the kernel {}x{}", shape.pad_h,
            shape.pad_w, shape.kernel_h, shape.kernel_w);
  // With this and pad < kernel, every window overlaps the image and the output is not empty.
  DSN_CHECK(
      shape.kernel_h <= shape.h + 2 * shape.pad_h && shape.kernel_w <= shape.w + 2 * shape.pad_w,
      "Pool2dShape: kernel {}x{} is larger than the padded input {}x{}", shape.kernel_h,
      shape.kernel_w, shape.h + 2 * shape.pad_h, shape.w + 2 * shape.pad_w);
}

namespace cpu {
namespace {

// One pooling window along one axis: `divisor_extent` cells clipped to the padded input, and
// the cells [begin, end) inside the image.
struct Span {
  std::int64_t begin = 0, end = 0, divisor_extent = 0;
};

Span window(std::int64_t index, std::int64_t size, std::int64_t kernel, std::int64_t stride,
            std::int64_t pad) {
  const std::int64_t start = index * stride - pad;
  const std::int64_t padded_end = std::min(start + kernel, size + pad);
  return Span{std::max<std::int64_t>(start, 0), std::min(padded_end, size), padded_end - start};
}

bool parallel_worth_it(const Pool2dShape& shape) {
  return shape.n * shape.c * shape.h * shape.w >= detail::kParallelMinElements;
}

}  // namespace

void max_pool2d_forward(const Pool2dShape& shape, const float* x, float* y, std::int32_t* argmax) {
  validate(shape);
  const std::int64_t out_h = shape.out_h(), out_w = shape.out_w();
  const std::int64_t planes = shape.n * shape.c;
#pragma omp parallel for schedule(static) if (parallel_worth_it(shape))
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const float* x_plane = x + plane * shape.h * shape.w;
    float* y_plane = y + plane * out_h * out_w;
    std::int32_t* argmax_plane = argmax + plane * out_h * out_w;
    for (std::int64_t p = 0; p < out_h; ++p) {
      const Span rows = window(p, shape.h, shape.kernel_h, shape.stride_h, shape.pad_h);
      for (std::int64_t q = 0; q < out_w; ++q) {
        const Span cols = window(q, shape.w, shape.kernel_w, shape.stride_w, shape.pad_w);
        // validate() guarantees a non-empty window, so the first cell initialises the maximum.
        std::int64_t best = rows.begin * shape.w + cols.begin;
        for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
          for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) {
            const std::int64_t index = ih * shape.w + iw;
            if (x_plane[index] > x_plane[best]) best = index;
          }
        }
        y_plane[p * out_w + q] = x_plane[best];
        argmax_plane[p * out_w + q] = static_cast<std::int32_t>(best);
      }
    }
  }
}

void max_pool2d_backward(const Pool2dShape& shape, const float* dy, const std::int32_t* argmax,
                         float* dx) {
  validate(shape);
  const std::int64_t out_plane = shape.out_h() * shape.out_w();
  const std::int64_t in_plane = shape.h * shape.w;
  const std::int64_t planes = shape.n * shape.c;
#pragma omp parallel for schedule(static) if (parallel_worth_it(shape))
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    float* dx_plane = dx + plane * in_plane;
    std::fill(dx_plane, dx_plane + in_plane, 0.0f);
    for (std::int64_t j = 0; j < out_plane; ++j) {
      dx_plane[argmax[plane * out_plane + j]] += dy[plane * out_plane + j];
    }
  }
}

void avg_pool2d_forward(const Pool2dShape& shape, const float* x, float* y) {
  validate(shape);
  const std::int64_t out_h = shape.out_h(), out_w = shape.out_w();
  const std::int64_t planes = shape.n * shape.c;
#pragma omp parallel for schedule(static) if (parallel_worth_it(shape))
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const float* x_plane = x + plane * shape.h * shape.w;
    float* y_plane = y + plane * out_h * out_w;
    for (std::int64_t p = 0; p < out_h; ++p) {
      const Span rows = window(p, shape.h, shape.kernel_h, shape.stride_h, shape.pad_h);
      for (std::int64_t q = 0; q < out_w; ++q) {
        const Span cols = window(q, shape.w, shape.kernel_w, shape.stride_w, shape.pad_w);
        float total = 0.0f;
        for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
          for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) {
            total += x_plane[ih * shape.w + iw];
          }
        }
        y_plane[p * out_w + q] =
            total / static_cast<float>(rows.divisor_extent * cols.divisor_extent);
      }
    }
  }
}

void avg_pool2d_backward(const Pool2dShape& shape, const float* dy, float* dx) {
  validate(shape);
  const std::int64_t out_h = shape.out_h(), out_w = shape.out_w();
  const std::int64_t planes = shape.n * shape.c;
#pragma omp parallel for schedule(static) if (parallel_worth_it(shape))
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const float* dy_plane = dy + plane * out_h * out_w;
    float* dx_plane = dx + plane * shape.h * shape.w;
    std::fill(dx_plane, dx_plane + shape.h * shape.w, 0.0f);
    for (std::int64_t p = 0; p < out_h; ++p) {
      const Span rows = window(p, shape.h, shape.kernel_h, shape.stride_h, shape.pad_h);
      for (std::int64_t q = 0; q < out_w; ++q) {
        const Span cols = window(q, shape.w, shape.kernel_w, shape.stride_w, shape.pad_w);
        const float share =
            dy_plane[p * out_w + q] / static_cast<float>(rows.divisor_extent * cols.divisor_extent);
        for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
          for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) {
            dx_plane[ih * shape.w + iw] += share;
          }
        }
      }
    }
  }
}

void global_avg_pool_forward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* x,
                             float* y) {
  DSN_CHECK(n > 0 && c > 0 && hw > 0,
            "global average pooling sizes n = {}, c = {}, H * W = {} must be positive", n, c, hw);
#pragma omp parallel for schedule(static) if (n * c * hw >= detail::kParallelMinElements)
  for (std::int64_t plane = 0; plane < n * c; ++plane) {
    const float* x_plane = x + plane * hw;
    double total = 0.0;
    for (std::int64_t i = 0; i < hw; ++i) total += x_plane[i];
    y[plane] = static_cast<float>(total / static_cast<double>(hw));
  }
}

void global_avg_pool_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy,
                              float* dx) {
  DSN_CHECK(n > 0 && c > 0 && hw > 0,
            "global average pooling sizes n = {}, c = {}, H * W = {} must be positive", n, c, hw);
#pragma omp parallel for schedule(static) if (n * c * hw >= detail::kParallelMinElements)
  for (std::int64_t plane = 0; plane < n * c; ++plane) {
    const float share = static_cast<float>(static_cast<double>(dy[plane]) / hw);
    std::fill(dx + plane * hw, dx + (plane + 1) * hw, share);
  }
}

}  // namespace cpu
}  // namespace dsn
