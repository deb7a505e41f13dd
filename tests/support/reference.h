// Test support shared by the kernel suites (CPU, CUDA, emulated CUDA): naive double-precision
// reference implementations written straight from each kernel's definition, a float-versus-
// double comparison that reports the worst element, central finite differences in double, and
// deterministic random inputs.
//
// The references are plain nested loops that share no code with kernels/cpu. They compute
// output sizes by enumerating windows instead of calling the shape structs' out_h()/out_w().
// A test that compares a kernel with them therefore checks two independent derivations of the
// same definition.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/gemm.h"
#include "kernels/layout.h"
#include "kernels/pool2d.h"

namespace dsn::ref {

using Vec = std::vector<double>;

// --- Random inputs ---------------------------------------------------------------------------

// Uniform floats in [low, high) from std::mt19937 (fully specified by the C++ standard, unlike
// the standard distributions), so every platform draws the same values for a seed.
inline std::vector<float> random_uniform(std::size_t count, float low, float high,
                                         std::uint32_t seed) {
  std::mt19937 generator(seed);
  std::vector<float> values(count);
  for (float& value : values) {
    const float unit = static_cast<float>(generator() >> 8) * (1.0f / 16777216.0f);
    value = low + (high - low) * unit;
  }
  return values;
}

// A random permutation of `count` values spaced `spacing` apart and centred on zero: no two
// are equal or closer than the spacing, so a max over them has a unique, stable winner under
// finite-difference perturbations far smaller than the spacing.
inline std::vector<float> random_distinct(std::size_t count, float spacing, std::uint32_t seed) {
  std::vector<float> values(count);
  for (std::size_t i = 0; i < count; ++i) {
    values[i] = spacing * (static_cast<float>(i) - 0.5f * static_cast<float>(count));
  }
  std::mt19937 generator(seed);
  for (std::size_t i = count; i > 1; --i) {
    std::swap(values[i - 1], values[generator() % i]);
  }
  return values;
}

// Uniform floats in [low, high) with magnitude at least `gap`: inputs for kinks at zero (ReLU).
inline std::vector<float> random_away_from_zero(std::size_t count, float high, float gap,
                                                std::uint32_t seed) {
  std::vector<float> values = random_uniform(count, -high, high, seed);
  for (float& value : values) {
    if (std::abs(value) < gap) value = value < 0.0f ? -gap : gap;
  }
  return values;
}

inline std::vector<std::int32_t> random_labels(std::size_t count, std::int32_t classes,
                                               std::uint32_t seed) {
  std::mt19937 generator(seed);
  std::vector<std::int32_t> labels(count);
  for (std::int32_t& label : labels) label = static_cast<std::int32_t>(generator() % classes);
  return labels;
}

inline Vec to_double(std::span<const float> values) {
  return Vec(values.begin(), values.end());
}

inline double dot(std::span<const double> a, std::span<const double> b) {
  double total = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) total += a[i] * b[i];
  return total;
}

// --- Comparison and finite differences ------------------------------------------------------

// An element passes when |got - expected| <= abs + rel * |expected|.
struct Tolerance {
  double rel = 1e-4;
  double abs = 1e-5;
};

struct Comparison {
  bool ok = true;
  std::string message;  // empty when ok
};

// Compares float results with double references element by element. On failure the message
// names the worst element (largest error relative to its allowance) and how many failed.
inline Comparison compare(std::span<const float> got, std::span<const double> expected,
                          Tolerance tolerance = {}) {
  if (got.size() != expected.size()) {
    return {false, fmt::format("size mismatch: got {} elements, expected {}", got.size(),
                               expected.size())};
  }
  std::size_t failures = 0, worst = 0;
  double worst_ratio = -1.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double error = std::abs(static_cast<double>(got[i]) - expected[i]);
    const double allowed = tolerance.abs + tolerance.rel * std::abs(expected[i]);
    // A NaN error fails and counts as the worst.
    const double ratio =
        std::isnan(error) ? std::numeric_limits<double>::infinity() : error / allowed;
    if (!(error <= allowed)) ++failures;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (failures == 0) return {};
  const double error = std::abs(static_cast<double>(got[worst]) - expected[worst]);
  return {false, fmt::format("{} of {} elements out of tolerance (abs {:g} + rel {:g}); worst at "
                             "index {}: got {:.9g}, expected {:.9g}, error {:.3g}",
                             failures, got.size(), tolerance.abs, tolerance.rel, worst, got[worst],
                             expected[worst], error)};
}

// Central finite differences of a scalar function in double: df/dx_i ~ (f(x + eps e_i) -
// f(x - eps e_i)) / (2 eps). Costs two calls of f per element of x.
inline Vec numeric_gradient(const std::function<double(const Vec&)>& f, Vec x, double eps = 1e-6) {
  Vec gradient(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + eps;
    const double plus = f(x);
    x[i] = saved - eps;
    const double minus = f(x);
    x[i] = saved;
    gradient[i] = (plus - minus) / (2.0 * eps);
  }
  return gradient;
}

// --- Convolution ----------------------------------------------------------------------------

// Number of filter positions, `stride` apart, that fit entirely inside size + 2 * pad cells.
inline std::int64_t conv_out_size(std::int64_t size, std::int64_t filter, std::int64_t stride,
                                  std::int64_t pad) {
  std::int64_t count = 0;
  while (count * stride + filter <= size + 2 * pad) ++count;
  return count;
}

// y (N, K, P, Q) = sum over (c, r, s) of x[n, c, p * stride - pad + r, q * stride - pad + s] *
// w[k, c, r, s] (zero outside the image), plus bias[k] when bias is not empty, then ReLU.
inline Vec conv2d_forward(const Conv2dShape& sh, const Vec& x, const Vec& w, const Vec& bias,
                          bool relu) {
  const std::int64_t out_h = conv_out_size(sh.h, sh.r, sh.stride_h, sh.pad_h);
  const std::int64_t out_w = conv_out_size(sh.w, sh.s, sh.stride_w, sh.pad_w);
  Vec y(sh.n * sh.k * out_h * out_w);
  for (std::int64_t n = 0; n < sh.n; ++n)
    for (std::int64_t k = 0; k < sh.k; ++k)
      for (std::int64_t p = 0; p < out_h; ++p)
        for (std::int64_t q = 0; q < out_w; ++q) {
          double total = bias.empty() ? 0.0 : bias[k];
          for (std::int64_t c = 0; c < sh.c; ++c)
            for (std::int64_t r = 0; r < sh.r; ++r)
              for (std::int64_t s = 0; s < sh.s; ++s) {
                const std::int64_t ih = p * sh.stride_h - sh.pad_h + r;
                const std::int64_t iw = q * sh.stride_w - sh.pad_w + s;
                if (ih < 0 || ih >= sh.h || iw < 0 || iw >= sh.w) continue;
                total += x[((n * sh.c + c) * sh.h + ih) * sh.w + iw] *
                         w[((k * sh.c + c) * sh.r + r) * sh.s + s];
              }
          if (relu) total = std::max(total, 0.0);
          y[((n * sh.k + k) * out_h + p) * out_w + q] = total;
        }
  return y;
}

// dx (N, C, H, W) of the convolution: every dy[n, k, p, q] * w[k, c, r, s] lands on the input
// cell that tap (r, s) of output (p, q) read in the forward pass.
inline Vec conv2d_backward_data(const Conv2dShape& sh, const Vec& dy, const Vec& w) {
  const std::int64_t out_h = conv_out_size(sh.h, sh.r, sh.stride_h, sh.pad_h);
  const std::int64_t out_w = conv_out_size(sh.w, sh.s, sh.stride_w, sh.pad_w);
  Vec dx(sh.n * sh.c * sh.h * sh.w, 0.0);
  for (std::int64_t n = 0; n < sh.n; ++n)
    for (std::int64_t k = 0; k < sh.k; ++k)
      for (std::int64_t p = 0; p < out_h; ++p)
        for (std::int64_t q = 0; q < out_w; ++q)
          for (std::int64_t c = 0; c < sh.c; ++c)
            for (std::int64_t r = 0; r < sh.r; ++r)
              for (std::int64_t s = 0; s < sh.s; ++s) {
                const std::int64_t ih = p * sh.stride_h - sh.pad_h + r;
                const std::int64_t iw = q * sh.stride_w - sh.pad_w + s;
                if (ih < 0 || ih >= sh.h || iw < 0 || iw >= sh.w) continue;
                dx[((n * sh.c + c) * sh.h + ih) * sh.w + iw] +=
                    dy[((n * sh.k + k) * out_h + p) * out_w + q] *
                    w[((k * sh.c + c) * sh.r + r) * sh.s + s];
              }
  return dx;
}

// dw (K, C, R, S) of the convolution: sum over n, p, q of dy[n, k, p, q] times the input cell
// under tap (r, s).
inline Vec conv2d_backward_weight(const Conv2dShape& sh, const Vec& x, const Vec& dy) {
  const std::int64_t out_h = conv_out_size(sh.h, sh.r, sh.stride_h, sh.pad_h);
  const std::int64_t out_w = conv_out_size(sh.w, sh.s, sh.stride_w, sh.pad_w);
  Vec dw(sh.k * sh.c * sh.r * sh.s, 0.0);
  for (std::int64_t k = 0; k < sh.k; ++k)
    for (std::int64_t c = 0; c < sh.c; ++c)
      for (std::int64_t r = 0; r < sh.r; ++r)
        for (std::int64_t s = 0; s < sh.s; ++s) {
          double total = 0.0;
          for (std::int64_t n = 0; n < sh.n; ++n)
            for (std::int64_t p = 0; p < out_h; ++p)
              for (std::int64_t q = 0; q < out_w; ++q) {
                const std::int64_t ih = p * sh.stride_h - sh.pad_h + r;
                const std::int64_t iw = q * sh.stride_w - sh.pad_w + s;
                if (ih < 0 || ih >= sh.h || iw < 0 || iw >= sh.w) continue;
                total += dy[((n * sh.k + k) * out_h + p) * out_w + q] *
                         x[((n * sh.c + c) * sh.h + ih) * sh.w + iw];
              }
          dw[((k * sh.c + c) * sh.r + r) * sh.s + s] = total;
        }
  return dw;
}

// PyTorch's ConvTranspose2d by its scatter definition: y (N, C_out, H_out, W_out) with
// H_out = (H_in - 1) * stride - 2 * pad + R receives x[n, ci, i, j] * w[ci, co, a, b] at
// (i * stride - pad + a, j * stride - pad + b) when that lies inside the output.
struct TransposedConv {
  std::int64_t n = 1, c_in = 1, h_in = 1, w_in = 1, c_out = 1, r = 1, s = 1;
  std::int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;

  std::int64_t h_out() const { return (h_in - 1) * stride_h - 2 * pad_h + r; }
  std::int64_t w_out() const { return (w_in - 1) * stride_w - 2 * pad_w + s; }
};

inline Vec conv_transpose2d(const TransposedConv& t, const Vec& x, const Vec& w) {
  const std::int64_t h_out = t.h_out(), w_out = t.w_out();
  Vec y(t.n * t.c_out * h_out * w_out, 0.0);
  for (std::int64_t n = 0; n < t.n; ++n)
    for (std::int64_t ci = 0; ci < t.c_in; ++ci)
      for (std::int64_t i = 0; i < t.h_in; ++i)
        for (std::int64_t j = 0; j < t.w_in; ++j)
          for (std::int64_t co = 0; co < t.c_out; ++co)
            for (std::int64_t a = 0; a < t.r; ++a)
              for (std::int64_t b = 0; b < t.s; ++b) {
                const std::int64_t oh = i * t.stride_h - t.pad_h + a;
                const std::int64_t ow = j * t.stride_w - t.pad_w + b;
                if (oh < 0 || oh >= h_out || ow < 0 || ow >= w_out) continue;
                y[((n * t.c_out + co) * h_out + oh) * w_out + ow] +=
                    x[((n * t.c_in + ci) * t.h_in + i) * t.w_in + j] *
                    w[((ci * t.c_out + co) * t.r + a) * t.s + b];
              }
  return y;
}

// --- Pooling (Caffe rules) ------------------------------------------------------------------

// Number of pooling windows along one axis, by enumerating window starts in padded
// coordinates (0 is the first padding cell). Ceil mode: keep adding windows while the previous
// ones leave cells of the padded input uncovered. Floor mode: only windows that fit. Both then
// drop windows that start in the trailing padding (at or beyond size + pad).
inline std::int64_t pool_out_size(std::int64_t size, std::int64_t kernel, std::int64_t stride,
                                  std::int64_t pad, bool ceil_mode) {
  const std::int64_t padded = size + 2 * pad;
  std::int64_t count = 0;
  for (std::int64_t start = 0;; start += stride) {
    const bool wanted =
        ceil_mode ? (start == 0 || start - stride + kernel < padded) : start + kernel <= padded;
    if (!wanted || start >= size + pad) break;
    ++count;
  }
  return count;
}

struct MaxPoolResult {
  Vec y;
  std::vector<std::int32_t> argmax;  // h * W + w inside the input plane
};

// Maximum over the window cells that lie in the image, first maximum in row-major order.
inline MaxPoolResult max_pool2d(const Pool2dShape& sh, const Vec& x) {
  const std::int64_t out_h = pool_out_size(sh.h, sh.kernel_h, sh.stride_h, sh.pad_h, sh.ceil_mode);
  const std::int64_t out_w = pool_out_size(sh.w, sh.kernel_w, sh.stride_w, sh.pad_w, sh.ceil_mode);
  MaxPoolResult result{Vec(sh.n * sh.c * out_h * out_w),
                       std::vector<std::int32_t>(sh.n * sh.c * out_h * out_w, -1)};
  for (std::int64_t plane = 0; plane < sh.n * sh.c; ++plane)
    for (std::int64_t p = 0; p < out_h; ++p)
      for (std::int64_t q = 0; q < out_w; ++q) {
        double best = -std::numeric_limits<double>::infinity();
        std::int32_t best_index = -1;
        for (std::int64_t a = 0; a < sh.kernel_h; ++a)
          for (std::int64_t b = 0; b < sh.kernel_w; ++b) {
            const std::int64_t ih = p * sh.stride_h + a - sh.pad_h;
            const std::int64_t iw = q * sh.stride_w + b - sh.pad_w;
            if (ih < 0 || ih >= sh.h || iw < 0 || iw >= sh.w) continue;
            const double value = x[(plane * sh.h + ih) * sh.w + iw];
            if (best_index < 0 || value > best) {
              best = value;
              best_index = static_cast<std::int32_t>(ih * sh.w + iw);
            }
          }
        const std::int64_t out = (plane * out_h + p) * out_w + q;
        result.y[out] = best;
        result.argmax[out] = best_index;
      }
  return result;
}

// Sum over the window cells inside the image, divided by the number of window cells inside the
// padded input (size + 2 * pad): Caffe's AVE divisor.
inline Vec avg_pool2d(const Pool2dShape& sh, const Vec& x) {
  const std::int64_t out_h = pool_out_size(sh.h, sh.kernel_h, sh.stride_h, sh.pad_h, sh.ceil_mode);
  const std::int64_t out_w = pool_out_size(sh.w, sh.kernel_w, sh.stride_w, sh.pad_w, sh.ceil_mode);
  Vec y(sh.n * sh.c * out_h * out_w);
  for (std::int64_t plane = 0; plane < sh.n * sh.c; ++plane)
    for (std::int64_t p = 0; p < out_h; ++p)
      for (std::int64_t q = 0; q < out_w; ++q) {
        double total = 0.0;
        std::int64_t cells = 0;
        for (std::int64_t a = 0; a < sh.kernel_h; ++a)
          for (std::int64_t b = 0; b < sh.kernel_w; ++b) {
            const std::int64_t ph = p * sh.stride_h + a;  // padded coordinates
            const std::int64_t pw = q * sh.stride_w + b;
            if (ph >= sh.h + 2 * sh.pad_h || pw >= sh.w + 2 * sh.pad_w) continue;
            ++cells;
            const std::int64_t ih = ph - sh.pad_h, iw = pw - sh.pad_w;
            if (ih < 0 || ih >= sh.h || iw < 0 || iw >= sh.w) continue;
            total += x[(plane * sh.h + ih) * sh.w + iw];
          }
        y[(plane * out_h + p) * out_w + q] = total / static_cast<double>(cells);
      }
  return y;
}

inline Vec global_avg_pool(std::int64_t n, std::int64_t c, std::int64_t hw, const Vec& x) {
  Vec y(n * c, 0.0);
  for (std::int64_t plane = 0; plane < n * c; ++plane) {
    for (std::int64_t i = 0; i < hw; ++i) y[plane] += x[plane * hw + i];
    y[plane] /= static_cast<double>(hw);
  }
  return y;
}

// --- Batch normalisation --------------------------------------------------------------------

struct BatchNormResult {
  Vec y;
  Vec mean;      // (C)
  Vec variance;  // (C), biased: divided by N * H * W
};

inline BatchNormResult batch_norm_train(const BatchNormShape& sh, const Vec& x, const Vec& gamma,
                                        const Vec& beta) {
  const double count = static_cast<double>(sh.n * sh.hw);
  BatchNormResult result{Vec(x.size()), Vec(sh.c, 0.0), Vec(sh.c, 0.0)};
  for (std::int64_t c = 0; c < sh.c; ++c) {
    for (std::int64_t n = 0; n < sh.n; ++n)
      for (std::int64_t i = 0; i < sh.hw; ++i) result.mean[c] += x[(n * sh.c + c) * sh.hw + i];
    result.mean[c] /= count;
    for (std::int64_t n = 0; n < sh.n; ++n)
      for (std::int64_t i = 0; i < sh.hw; ++i) {
        const double d = x[(n * sh.c + c) * sh.hw + i] - result.mean[c];
        result.variance[c] += d * d;
      }
    result.variance[c] /= count;
    for (std::int64_t n = 0; n < sh.n; ++n)
      for (std::int64_t i = 0; i < sh.hw; ++i) {
        const std::int64_t at = (n * sh.c + c) * sh.hw + i;
        result.y[at] =
            gamma[c] * (x[at] - result.mean[c]) / std::sqrt(result.variance[c] + sh.eps) + beta[c];
      }
  }
  return result;
}

inline Vec batch_norm_inference(const BatchNormShape& sh, const Vec& x, const Vec& gamma,
                                const Vec& beta, const Vec& running_mean, const Vec& running_var) {
  Vec y(x.size());
  for (std::int64_t n = 0; n < sh.n; ++n)
    for (std::int64_t c = 0; c < sh.c; ++c)
      for (std::int64_t i = 0; i < sh.hw; ++i) {
        const std::int64_t at = (n * sh.c + c) * sh.hw + i;
        y[at] = gamma[c] * (x[at] - running_mean[c]) / std::sqrt(running_var[c] + sh.eps) + beta[c];
      }
  return y;
}

// --- Softmax and cross-entropy --------------------------------------------------------------

inline Vec softmax(std::int64_t rows, std::int64_t classes, const Vec& x) {
  Vec y(x.size());
  for (std::int64_t row = 0; row < rows; ++row) {
    double total = 0.0;
    for (std::int64_t j = 0; j < classes; ++j) total += std::exp(x[row * classes + j]);
    for (std::int64_t j = 0; j < classes; ++j) {
      y[row * classes + j] = std::exp(x[row * classes + j]) / total;
    }
  }
  return y;
}

// loss (rows) = log(sum_j exp(x_j)) - x_label; needs moderate logits (no max subtraction).
inline Vec cross_entropy(std::int64_t rows, std::int64_t classes, const Vec& logits,
                         std::span<const std::int32_t> labels) {
  Vec loss(rows);
  for (std::int64_t row = 0; row < rows; ++row) {
    double total = 0.0;
    for (std::int64_t j = 0; j < classes; ++j) total += std::exp(logits[row * classes + j]);
    loss[row] = std::log(total) - logits[row * classes + labels[row]];
  }
  return loss;
}

// --- Element-wise, layout, GEMM -------------------------------------------------------------

inline Vec relu(const Vec& x) {
  Vec y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] > 0.0 ? x[i] : 0.0;
  return y;
}

// y (N, C, HW) + bias (C) broadcast over N and HW.
inline Vec bias_add(std::int64_t n, std::int64_t c, std::int64_t hw, const Vec& bias, Vec y) {
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t k = 0; k < c; ++k)
      for (std::int64_t i = 0; i < hw; ++i) y[(b * c + k) * hw + i] += bias[k];
  return y;
}

inline Vec crop(const CropShape& sh, const Vec& x) {
  Vec y(sh.n * sh.c * sh.out_h * sh.out_w);
  for (std::int64_t n = 0; n < sh.n; ++n)
    for (std::int64_t c = 0; c < sh.c; ++c)
      for (std::int64_t i = 0; i < sh.out_h; ++i)
        for (std::int64_t j = 0; j < sh.out_w; ++j) {
          y[((n * sh.c + c) * sh.out_h + i) * sh.out_w + j] =
              x[((n * sh.c + c) * sh.h + sh.offset_h + i) * sh.w + sh.offset_w + j];
        }
  return y;
}

// y (N, sum of channels, HW) = the inputs (N, channels[t], HW) stacked along the channels.
inline Vec concat(std::int64_t n, std::span<const std::int64_t> channels, std::int64_t hw,
                  std::span<const Vec> inputs) {
  std::int64_t total_channels = 0;
  for (const std::int64_t c : channels) total_channels += c;
  Vec y(n * total_channels * hw);
  for (std::int64_t b = 0; b < n; ++b) {
    std::int64_t channel = 0;
    for (std::size_t t = 0; t < inputs.size(); ++t)
      for (std::int64_t c = 0; c < channels[t]; ++c, ++channel)
        for (std::int64_t i = 0; i < hw; ++i) {
          y[(b * total_channels + channel) * hw + i] = inputs[t][(b * channels[t] + c) * hw + i];
        }
  }
  return y;
}

// C = alpha * op(A) op(B) + beta * C on row-major storage with the shape's leading dimensions;
// `c` is the initial C buffer and the return value the whole buffer after the update (elements
// between n and ldc are carried over unchanged).
inline Vec gemm(const GemmShape& sh, const Vec& a, const Vec& b, Vec c) {
  const std::int64_t lda = sh.lda ? sh.lda : (sh.trans_a ? sh.m : sh.k);
  const std::int64_t ldb = sh.ldb ? sh.ldb : (sh.trans_b ? sh.k : sh.n);
  const std::int64_t ldc = sh.ldc ? sh.ldc : sh.n;
  for (std::int64_t i = 0; i < sh.m; ++i)
    for (std::int64_t j = 0; j < sh.n; ++j) {
      double total = 0.0;
      for (std::int64_t l = 0; l < sh.k; ++l) {
        const double a_il = sh.trans_a ? a[l * lda + i] : a[i * lda + l];
        const double b_lj = sh.trans_b ? b[j * ldb + l] : b[l * ldb + j];
        total += a_il * b_lj;
      }
      c[i * ldc + j] = sh.alpha * total + sh.beta * c[i * ldc + j];
    }
  return c;
}

}  // namespace dsn::ref

// DSN_CHECK_CLOSE(got, expected, tolerance): a doctest CHECK of ref::compare that prints the
// comparison's message on failure. Available when doctest is included first.
#ifdef DOCTEST_LIBRARY_INCLUDED
#define DSN_CHECK_CLOSE(got, expected, tolerance)               \
  do {                                                          \
    const ::dsn::ref::Comparison dsn_comparison_ =              \
        ::dsn::ref::compare((got), (expected), (tolerance));    \
    CHECK_MESSAGE(dsn_comparison_.ok, dsn_comparison_.message); \
  } while (0)
#endif
