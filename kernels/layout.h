// Copies that change layout: channel concatenation and its split, and 2-D crops. Tensors are
// (N, C, H, W) contiguous float32.
#pragma once

#include <cstdint>

namespace dsn {

// A window of a (N, C, H, W) tensor: rows [offset_h, offset_h + out_h), columns
// [offset_w, offset_w + out_w). Caffe's Crop layer with axis 2.
struct CropShape {
  std::int64_t n = 1, c = 1, h = 1, w = 1;
  std::int64_t offset_h = 0, offset_w = 0;
  std::int64_t out_h = 1, out_w = 1;
};

void validate(const CropShape& shape);

namespace cpu {

// Copies src (N, C_src, HW) into channels [channel_offset, channel_offset + C_src) of
// dst (N, C_dst, HW). Concatenation is one call per input; its backward uses channel_slice.
void channel_insert(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                    std::int64_t channel_offset, const float* src, float* dst);

// Copies channels [channel_offset, channel_offset + C_dst) of src (N, C_src, HW) into
// dst (N, C_dst, HW).
void channel_slice(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                   std::int64_t channel_offset, const float* src, float* dst);

// y (N, C, out_h, out_w) = window of x (N, C, H, W).
void crop_forward(const CropShape& shape, const float* x, float* y);

// dx (N, C, H, W) = dy placed at the window, zeros elsewhere. Overwrites dx.
void crop_backward(const CropShape& shape, const float* dy, float* dx);

}  // namespace cpu
}  // namespace dsn
