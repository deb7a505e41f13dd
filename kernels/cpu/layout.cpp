// Layout copies on the CPU: channel concatenation and its inverse slice, and Caffe-style 2-D
// crops of (N, C, H, W) contiguous float32 tensors. Each is a sequence of contiguous row copies.
#include "kernels/layout.h"

#include <algorithm>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cpu/blas.h"

namespace dsn {

void validate(const CropShape& shape) {
  DSN_CHECK(shape.n > 0 && shape.c > 0, "CropShape: n = {} and c = {} must be positive", shape.n,
            shape.c);
  DSN_CHECK(shape.h > 0 && shape.w > 0, "CropShape: input size {}x{} must be positive", shape.h,
            shape.w);
  DSN_CHECK(shape.out_h > 0 && shape.out_w > 0, "CropShape: output size {}x{} must be positive",
            shape.out_h, shape.out_w);
  DSN_CHECK(shape.offset_h >= 0 && shape.offset_w >= 0,
            "CropShape: offset ({}, {}) must not be negative", shape.offset_h, shape.offset_w);
  DSN_CHECK(shape.offset_h + shape.out_h <= shape.h && shape.offset_w + shape.out_w <= shape.w,
            "CropShape: window {}x{} at offset ({}, {}) does not fit the input {}x{}", shape.out_h,
            shape.out_w, shape.offset_h, shape.offset_w, shape.h, shape.w);
}

namespace cpu {
namespace {

void check_channel_range(std::int64_t n, std::int64_t c_inner, std::int64_t c_outer,
                         std::int64_t hw, std::int64_t channel_offset) {
  DSN_CHECK(n > 0 && c_inner > 0 && hw > 0,
            "channel copy sizes n = {}, channels = {}, H * W = {} must be positive", n, c_inner,
            hw);
  DSN_CHECK(channel_offset >= 0 && channel_offset + c_inner <= c_outer,
            "channels [{}, {}) lie outside the {} channels of the concatenated tensor",
            channel_offset, channel_offset + c_inner, c_outer);
}

}  // namespace

void channel_insert(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                    std::int64_t channel_offset, const float* src, float* dst) {
  check_channel_range(n, c_src, c_dst, hw, channel_offset);
  const std::int64_t block = c_src * hw;
#pragma omp parallel for schedule(static) if (n * block >= detail::kParallelMinElements)
  for (std::int64_t i = 0; i < n; ++i) {
    const float* from = src + i * block;
    std::copy(from, from + block, dst + (i * c_dst + channel_offset) * hw);
  }
}

void channel_slice(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                   std::int64_t channel_offset, const float* src, float* dst) {
  check_channel_range(n, c_dst, c_src, hw, channel_offset);
  const std::int64_t block = c_dst * hw;
#pragma omp parallel for schedule(static) if (n * block >= detail::kParallelMinElements)
  for (std::int64_t i = 0; i < n; ++i) {
    const float* from = src + (i * c_src + channel_offset) * hw;
    std::copy(from, from + block, dst + i * block);
  }
}

void crop_forward(const CropShape& shape, const float* x, float* y) {
  validate(shape);
  const std::int64_t planes = shape.n * shape.c;
#pragma omp parallel for schedule(static) if (planes * shape.out_h * shape.out_w >= \
                                              detail::kParallelMinElements)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const float* x_plane = x + plane * shape.h * shape.w;
    float* y_plane = y + plane * shape.out_h * shape.out_w;
    for (std::int64_t row = 0; row < shape.out_h; ++row) {
      const float* from = x_plane + (shape.offset_h + row) * shape.w + shape.offset_w;
      std::copy(from, from + shape.out_w, y_plane + row * shape.out_w);
    }
  }
}

void crop_backward(const CropShape& shape, const float* dy, float* dx) {
  validate(shape);
  const std::int64_t planes = shape.n * shape.c;
#pragma omp parallel for schedule(static) if (planes * shape.h * shape.w >= \
                                              detail::kParallelMinElements)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    float* dx_plane = dx + plane * shape.h * shape.w;
    const float* dy_plane = dy + plane * shape.out_h * shape.out_w;
    std::fill(dx_plane, dx_plane + shape.h * shape.w, 0.0f);
    for (std::int64_t row = 0; row < shape.out_h; ++row) {
      const float* from = dy_plane + row * shape.out_w;
      std::copy(from, from + shape.out_w,
                dx_plane + (shape.offset_h + row) * shape.w + shape.offset_w);
    }
  }
}

}  // namespace cpu
}  // namespace dsn
