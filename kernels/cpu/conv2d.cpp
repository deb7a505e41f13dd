// 2-D convolution on the CPU: im2col followed by an OpenBLAS SGEMM. The two gradients go
// through the same column matrix: backward-data is a GEMM followed by col2im, and
// backward-weight is im2col followed by a GEMM. A 1x1 filter with stride 1 and no padding
// multiplies the input planes directly.
//
// Layout: x (N, C, H, W), w (K, C, R, S), y (N, K, P, Q), contiguous float32. The column matrix
// is (C * R * S, columns): one row per filter tap (c, r, s), one column per output position.
//
// Design choice: the output positions of the whole batch form one column space that is cut into
// tiles of about max(kTileColumns, kColumnBudget / (C * R * S)) columns. On a large plane a tile
// is a run of positions inside one image, and the GEMM reads and writes the tensors in place
// through its leading dimension. On the small deep layers a tile contains several whole images,
// which costs a gather or scatter of (K, columns) but gives OpenBLAS one large GEMM instead of
// many tiny ones. Tiles run one after the other (OpenMP works inside im2col and col2im, OpenBLAS
// inside the GEMM), and the weight gradient sums them in a fixed order, so every result is the
// same from run to run.
// Scratch per call: the column matrix of at most max(kColumnBudget, C * R * S * kTileColumns)
// floats (16 MiB; 18 MiB for 3x3 filters over 512 channels), plus a (K, columns) buffer when a
// tile spans several images.
#include "kernels/conv2d.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/blas.h"

namespace dsn {

void validate(const Conv2dShape& shape) {
  DSN_CHECK(shape.n > 0, "Conv2dShape: batch n = {} must be positive", shape.n);
  DSN_CHECK(shape.c > 0, "Conv2dShape: input channels c = {} must be positive", shape.c);
  DSN_CHECK(shape.h > 0 && shape.w > 0, "Conv2dShape: input size {}x{} must be positive", shape.h,
            shape.w);
  DSN_CHECK(shape.k > 0, "Conv2dShape: output channels k = {} must be positive", shape.k);
  DSN_CHECK(shape.r > 0 && shape.s > 0, "Conv2dShape: filter size {}x{} must be positive", shape.r,
            shape.s);
  DSN_CHECK(shape.stride_h > 0 && shape.stride_w > 0, "Conv2dShape: stride {}x{} must be positive",
            shape.stride_h, shape.stride_w);
  DSN_CHECK(shape.pad_h >= 0 && shape.pad_w >= 0, "Conv2dShape: padding {}x{} must not be negative",
            shape.pad_h, shape.pad_w);
  // Checked directly because out_h() truncates a negative quotient towards zero.
  DSN_CHECK(shape.r <= shape.h + 2 * shape.pad_h && shape.s <= shape.w + 2 * shape.pad_w,
            "Conv2dShape: filter {}x{} is larger than the padded input {}x{}", shape.r, shape.s,
            shape.h + 2 * shape.pad_h, shape.w + 2 * shape.pad_w);
}

Conv2dShape transposed_conv_as_conv(std::int64_t n, std::int64_t c_in, std::int64_t h_in,
                                    std::int64_t w_in, std::int64_t c_out, std::int64_t r,
                                    std::int64_t s, std::int64_t stride_h, std::int64_t stride_w,
                                    std::int64_t pad_h, std::int64_t pad_w) {
  const std::int64_t h_out = (h_in - 1) * stride_h - 2 * pad_h + r;
  const std::int64_t w_out = (w_in - 1) * stride_w - 2 * pad_w + s;
  DSN_CHECK(h_in > 0 && w_in > 0, "transposed convolution input size {}x{} must be positive", h_in,
            w_in);
  DSN_CHECK(h_out > 0 && w_out > 0,
            "transposed convolution output size {}x{} = (input - 1) * stride - 2 * pad + filter "
            "must be positive; reduce the padding",
            h_out, w_out);
  Conv2dShape shape;
  shape.n = n;
  shape.c = c_out;
  shape.h = h_out;
  shape.w = w_out;
  shape.k = c_in;
  shape.r = r;
  shape.s = s;
  shape.stride_h = stride_h;
  shape.stride_w = stride_w;
  shape.pad_h = pad_h;
  shape.pad_w = pad_w;
  validate(shape);
  return shape;
}

namespace cpu {
namespace {

// A tile has at most max(kTileColumns, kColumnBudget / (C * R * S)) columns: the column matrix
// stays near kColumnBudget floats, but never gets fewer than kTileColumns columns for the GEMM.
constexpr std::int64_t kTileColumns = 1024;
constexpr std::int64_t kColumnBudget = std::int64_t{1} << 22;

// A block of output positions: `images` images starting at `image`, and in each of them the
// positions [position, position + count) of the flattened (P, Q) plane. Either images == 1 or
// the tile covers whole planes (position == 0, count == P * Q).
struct Tile {
  std::int64_t image = 0, images = 1;
  std::int64_t position = 0, count = 0;

  std::int64_t columns() const { return images * count; }
};

// Calls visit(tile) for consecutive tiles that cover every output position of the batch.
template <typename Visit>
void for_each_tile(const Conv2dShape& shape, Visit visit) {
  const std::int64_t plane = shape.out_h() * shape.out_w();
  const std::int64_t taps = shape.c * shape.r * shape.s;
  const std::int64_t target = std::max<std::int64_t>(kTileColumns, kColumnBudget / taps);
  if (plane >= target) {
    for (std::int64_t n = 0; n < shape.n; ++n) {
      for (std::int64_t p = 0; p < plane; p += target) {
        visit(Tile{n, 1, p, std::min(target, plane - p)});
      }
    }
    return;
  }
  const std::int64_t images_per_tile = target / plane;
  for (std::int64_t n = 0; n < shape.n; n += images_per_tile) {
    visit(Tile{n, std::min(images_per_tile, shape.n - n), 0, plane});
  }
}

bool is_pointwise(const Conv2dShape& shape) {
  return shape.r == 1 && shape.s == 1 && shape.stride_h == 1 && shape.stride_w == 1 &&
         shape.pad_h == 0 && shape.pad_w == 0;
}

// col (C * R * S, tile.columns()) = the input value under every filter tap at every output
// position of the tile, zero where the tap falls into the padding.
void im2col(const Conv2dShape& shape, const Tile& tile, const float* x, float* col) {
  const std::int64_t out_w = shape.out_w();
  const std::int64_t taps = shape.c * shape.r * shape.s;
  const std::int64_t columns = tile.columns();
#pragma omp parallel for schedule(static) if (taps * columns >= detail::kParallelMinElements)
  for (std::int64_t tap = 0; tap < taps; ++tap) {
    const std::int64_t c = tap / (shape.r * shape.s);
    const std::int64_t r = tap / shape.s % shape.r;
    const std::int64_t s = tap % shape.s;
    float* row = col + tap * columns;
    for (std::int64_t i = 0; i < tile.images; ++i) {
      const float* plane = x + ((tile.image + i) * shape.c + c) * shape.h * shape.w;
      for (std::int64_t j = 0; j < tile.count; ++j) {
        const std::int64_t position = tile.position + j;
        const std::int64_t ih = position / out_w * shape.stride_h - shape.pad_h + r;
        const std::int64_t iw = position % out_w * shape.stride_w - shape.pad_w + s;
        const bool inside = ih >= 0 && ih < shape.h && iw >= 0 && iw < shape.w;
        row[i * tile.count + j] = inside ? plane[ih * shape.w + iw] : 0.0f;
      }
    }
  }
}

// dx += the column matrix folded back onto the input: the transpose of im2col. Each thread owns
// whole channels of dx, and each element receives its contributions in a fixed order.
void col2im(const Conv2dShape& shape, const Tile& tile, const float* col, float* dx) {
  const std::int64_t out_w = shape.out_w();
  const std::int64_t columns = tile.columns();
  const std::int64_t work = shape.c * shape.r * shape.s * columns;
#pragma omp parallel for schedule(static) if (work >= detail::kParallelMinElements)
  for (std::int64_t c = 0; c < shape.c; ++c) {
    for (std::int64_t r = 0; r < shape.r; ++r) {
      for (std::int64_t s = 0; s < shape.s; ++s) {
        const float* row = col + ((c * shape.r + r) * shape.s + s) * columns;
        for (std::int64_t i = 0; i < tile.images; ++i) {
          float* plane = dx + ((tile.image + i) * shape.c + c) * shape.h * shape.w;
          for (std::int64_t j = 0; j < tile.count; ++j) {
            const std::int64_t position = tile.position + j;
            const std::int64_t ih = position / out_w * shape.stride_h - shape.pad_h + r;
            const std::int64_t iw = position % out_w * shape.stride_w - shape.pad_w + s;
            if (ih >= 0 && ih < shape.h && iw >= 0 && iw < shape.w) {
              plane[ih * shape.w + iw] += row[i * tile.count + j];
            }
          }
        }
      }
    }
  }
}

// packed (K, tile.columns()) = the tile's columns of y (N, K, P, Q), image after image.
void gather_output(const Conv2dShape& shape, const Tile& tile, const float* y, float* packed) {
  const std::int64_t plane = shape.out_h() * shape.out_w();
  const std::int64_t columns = tile.columns();
  for (std::int64_t k = 0; k < shape.k; ++k) {
    for (std::int64_t i = 0; i < tile.images; ++i) {
      const float* src = y + ((tile.image + i) * shape.k + k) * plane + tile.position;
      std::copy(src, src + tile.count, packed + k * columns + i * tile.count);
    }
  }
}

// Adds the bias and applies ReLU to rows of `count` outputs per channel, rows `ld` apart.
void bias_relu_epilogue(std::int64_t channels, std::int64_t count, std::int64_t ld,
                        const float* bias, bool relu, float* y) {
  if (bias == nullptr && !relu) return;
  for (std::int64_t k = 0; k < channels; ++k) {
    const float b = bias != nullptr ? bias[k] : 0.0f;
    float* row = y + k * ld;
    for (std::int64_t j = 0; j < count; ++j) {
      const float value = row[j] + b;
      row[j] = relu ? std::max(value, 0.0f) : value;
    }
  }
}

}  // namespace

void conv2d_forward(const Conv2dShape& shape, const float* x, const float* w, const float* bias,
                    float* y, bool relu) {
  validate(shape);
  const std::int64_t plane = shape.out_h() * shape.out_w();
  const std::int64_t taps = shape.c * shape.r * shape.s;

  if (is_pointwise(shape)) {
    for (std::int64_t n = 0; n < shape.n; ++n) {
      float* y_n = y + n * shape.k * plane;
      // y_n (K, H * W) = w (K, C) * x_n (C, H * W)
      detail::sgemm(false, false, shape.k, plane, shape.c, 1.0f, w, shape.c,
                    x + n * shape.c * plane, plane, 0.0f, y_n, plane);
      bias_relu_epilogue(shape.k, plane, plane, bias, relu, y_n);
    }
    return;
  }

  std::vector<float> col;
  std::vector<float> packed;
  for_each_tile(shape, [&](const Tile& tile) {
    const std::int64_t columns = tile.columns();
    col.resize(static_cast<std::size_t>(taps * columns));
    im2col(shape, tile, x, col.data());
    if (tile.images == 1) {
      // Writes straight into y: rows of the GEMM output are plane-long rows of y.
      float* out = y + tile.image * shape.k * plane + tile.position;
      detail::sgemm(false, false, shape.k, columns, taps, 1.0f, w, taps, col.data(), columns, 0.0f,
                    out, plane);
      bias_relu_epilogue(shape.k, columns, plane, bias, relu, out);
      return;
    }
    packed.resize(static_cast<std::size_t>(shape.k * columns));
    detail::sgemm(false, false, shape.k, columns, taps, 1.0f, w, taps, col.data(), columns, 0.0f,
                  packed.data(), columns);
    for (std::int64_t i = 0; i < tile.images; ++i) {
      for (std::int64_t k = 0; k < shape.k; ++k) {
        const float* src = packed.data() + k * columns + i * plane;
        std::copy(src, src + plane, y + ((tile.image + i) * shape.k + k) * plane);
      }
      bias_relu_epilogue(shape.k, plane, plane, bias, relu, y + (tile.image + i) * shape.k * plane);
    }
  });
}

void conv2d_backward_data(const Conv2dShape& shape, const float* dy, const float* w, float* dx) {
  validate(shape);
  const std::int64_t plane = shape.out_h() * shape.out_w();
  const std::int64_t taps = shape.c * shape.r * shape.s;

  if (is_pointwise(shape)) {
    for (std::int64_t n = 0; n < shape.n; ++n) {
      // dx_n (C, H * W) = w^T (C, K) * dy_n (K, H * W)
      detail::sgemm(true, false, shape.c, plane, shape.k, 1.0f, w, shape.c,
                    dy + n * shape.k * plane, plane, 0.0f, dx + n * shape.c * plane, plane);
    }
    return;
  }

  std::fill(dx, dx + shape.n * shape.c * shape.h * shape.w, 0.0f);
  std::vector<float> col;
  std::vector<float> packed;
  for_each_tile(shape, [&](const Tile& tile) {
    const std::int64_t columns = tile.columns();
    const float* dy_tile = dy + tile.image * shape.k * plane + tile.position;
    std::int64_t ld = plane;
    if (tile.images > 1) {
      packed.resize(static_cast<std::size_t>(shape.k * columns));
      gather_output(shape, tile, dy, packed.data());
      dy_tile = packed.data();
      ld = columns;
    }
    col.resize(static_cast<std::size_t>(taps * columns));
    // col (C * R * S, columns) = w^T (C * R * S, K) * dy_tile (K, columns)
    detail::sgemm(true, false, taps, columns, shape.k, 1.0f, w, taps, dy_tile, ld, 0.0f, col.data(),
                  columns);
    col2im(shape, tile, col.data(), dx);
  });
}

void conv2d_backward_weight(const Conv2dShape& shape, const float* x, const float* dy, float* dw,
                            float* dbias) {
  validate(shape);
  const std::int64_t plane = shape.out_h() * shape.out_w();
  const std::int64_t taps = shape.c * shape.r * shape.s;

  if (dbias != nullptr) {
#pragma omp parallel for schedule(static) if (shape.n * shape.k * plane >= \
                                              detail::kParallelMinElements)
    for (std::int64_t k = 0; k < shape.k; ++k) {
      double total = 0.0;
      for (std::int64_t n = 0; n < shape.n; ++n) {
        const float* row = dy + (n * shape.k + k) * plane;
        for (std::int64_t j = 0; j < plane; ++j) total += row[j];
      }
      dbias[k] = static_cast<float>(total);
    }
  }

  if (is_pointwise(shape)) {
    for (std::int64_t n = 0; n < shape.n; ++n) {
      // dw (K, C) (+)= dy_n (K, H * W) * x_n^T (H * W, C)
      detail::sgemm(false, true, shape.k, shape.c, plane, 1.0f, dy + n * shape.k * plane, plane,
                    x + n * shape.c * plane, plane, n == 0 ? 0.0f : 1.0f, dw, shape.c);
    }
    return;
  }

  std::vector<float> col;
  std::vector<float> packed;
  bool first = true;
  for_each_tile(shape, [&](const Tile& tile) {
    const std::int64_t columns = tile.columns();
    const float* dy_tile = dy + tile.image * shape.k * plane + tile.position;
    std::int64_t ld = plane;
    if (tile.images > 1) {
      packed.resize(static_cast<std::size_t>(shape.k * columns));
      gather_output(shape, tile, dy, packed.data());
      dy_tile = packed.data();
      ld = columns;
    }
    col.resize(static_cast<std::size_t>(taps * columns));
    im2col(shape, tile, x, col.data());
    // dw (K, C * R * S) (+)= dy_tile (K, columns) * col^T (columns, C * R * S)
    detail::sgemm(false, true, shape.k, taps, columns, 1.0f, dy_tile, ld, col.data(), columns,
                  first ? 0.0f : 1.0f, dw, taps);
    first = false;
  });
}

}  // namespace cpu
}  // namespace dsn
