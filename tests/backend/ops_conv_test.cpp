// ops::conv2d, ops::conv_transpose2d and ops::linear on the CPU and the CUDA backend, forward
// and backward through autograd, against double references written from each op's definition.
//
// Tolerance: the kernels of the two backends sum the products in different orders, so neither
// matches the other bit for bit. Each element must lie within 2 * K * 2^-24 * sum |a_i b_i| of
// the double result, where the sum runs over the K products (and the bias) that make it: a
// worst-case float rounding bound that no summation order exceeds but an indexing error does.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "engine/ops.h"
#include "tests/backend/support.h"
#include "tests/support/reference.h"

namespace dsn::backend_test {
namespace {

struct ConvCase {
  std::int64_t n, c, h, w, k, r, s, stride_h, stride_w, pad_h, pad_w;
  bool bias, relu;
};

// Odd sizes, stride 2 with padding, 1x1, a rectangular filter with unequal strides, channel
// counts that are not a multiple of any tile, batch 1 and 3.
constexpr ConvCase kConvCases[] = {
    {3, 5, 7, 9, 6, 3, 3, 2, 2, 1, 1, true, true},
    {2, 3, 5, 4, 4, 1, 1, 1, 1, 0, 0, false, false},
    {1, 3, 6, 7, 5, 3, 2, 1, 2, 2, 0, true, false},
    {2, 17, 6, 6, 9, 3, 3, 1, 1, 1, 1, true, true},
};

Conv2dShape make_shape(const ConvCase& c) {
  Conv2dShape shape;
  shape.n = c.n;
  shape.c = c.c;
  shape.h = c.h;
  shape.w = c.w;
  shape.k = c.k;
  shape.r = c.r;
  shape.s = c.s;
  shape.stride_h = c.stride_h;
  shape.stride_w = c.stride_w;
  shape.pad_h = c.pad_h;
  shape.pad_w = c.pad_w;
  return shape;
}

// dbias (K) of a (N, K, HW) gradient, and the sums of |dy| for its bound.
Vec channel_sums(std::int64_t n, std::int64_t k, std::int64_t hw, const Vec& dy) {
  Vec sums(std::size_t(k), 0.0);
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t channel = 0; channel < k; ++channel)
      for (std::int64_t i = 0; i < hw; ++i) sums[channel] += dy[(b * k + channel) * hw + i];
  return sums;
}

Vec abs_vec(const Vec& values) {
  Vec result(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) result[i] = std::abs(values[i]);
  return result;
}

TEST_CASE("ops conv2d matches reference") {
  std::uint32_t seed = 1000;
  for (const ConvCase& c : kConvCases) {
    const Conv2dShape shape = make_shape(c);
    const std::string description = fmt::format(
        "x ({}, {}, {}, {}), w ({}, {}, {}, {}), stride ({}, {}), pad ({}, {}), bias {}, relu {}",
        c.n, c.c, c.h, c.w, c.k, c.c, c.r, c.s, c.stride_h, c.stride_w, c.pad_h, c.pad_w, c.bias,
        c.relu);
    CAPTURE(description);
    const std::int64_t out_h = ref::conv_out_size(c.h, c.r, c.stride_h, c.pad_h);
    const std::int64_t out_w = ref::conv_out_size(c.w, c.s, c.stride_w, c.pad_w);
    const std::vector<float> x =
        ref::random_uniform(std::size_t(c.n * c.c * c.h * c.w), -1.0f, 1.0f, seed++);
    const std::vector<float> w =
        ref::random_uniform(std::size_t(c.k * c.c * c.r * c.s), -0.5f, 0.5f, seed++);
    const std::vector<float> bias = ref::random_uniform(std::size_t(c.k), -0.5f, 0.5f, seed++);
    const std::vector<float> dy =
        ref::random_uniform(std::size_t(c.n * c.k * out_h * out_w), -1.0f, 1.0f, seed++);

    std::vector<HostTensor> inputs = {{{c.n, c.c, c.h, c.w}, x}, {{c.k, c.c, c.r, c.s}, w}};
    if (c.bias) inputs.push_back({{c.k}, bias});
    ops::Conv2dParams params;
    params.stride_h = c.stride_h;
    params.stride_w = c.stride_w;
    params.pad_h = c.pad_h;
    params.pad_w = c.pad_w;
    const bool relu = c.relu, has_bias = c.bias;
    const BothResults results = run_on_both(
        inputs,
        [&](const std::vector<Tensor>& t) {
          return ops::conv2d(t[0], t[1], has_bias ? t[2] : Tensor(), params, relu);
        },
        dy);

    // Forward: the pre-activation and its bound; ReLU does not add rounding.
    const Vec no_bias;
    const Vec x_ref = to_double(x), w_ref = to_double(w);
    const Vec pre =
        ref::conv2d_forward(shape, x_ref, w_ref, has_bias ? to_double(bias) : no_bias, false);
    const Vec y_bound = sum_bound(ref::conv2d_forward(shape, absolute(x), absolute(w),
                                                      has_bias ? absolute(bias) : no_bias, false),
                                  double(c.c * c.r * c.s + 1));
    Vec y_ref = pre;
    Vec dy_masked = to_double(dy);
    if (relu) {
      // A pre-activation within its bound of zero could take either side of the ReLU on
      // either backend; the seeds give none.
      for (std::size_t i = 0; i < pre.size(); ++i) {
        REQUIRE_MESSAGE(std::abs(pre[i]) > y_bound[i], "ambiguous ReLU input at ", i);
        y_ref[i] = std::max(pre[i], 0.0);
        if (pre[i] <= 0.0) dy_masked[i] = 0.0;
      }
    }
    check_both_within("conv2d y", results.cpu.output, results.cuda.output, y_ref, y_bound);

    const Vec dy_abs = abs_vec(dy_masked);
    check_both_within(
        "conv2d dx", results.cpu.grads[0], results.cuda.grads[0],
        ref::conv2d_backward_data(shape, dy_masked, w_ref),
        sum_bound(ref::conv2d_backward_data(shape, dy_abs, absolute(w)), double(c.k * c.r * c.s)));
    const double reduction_terms = double(c.n * out_h * out_w);
    check_both_within(
        "conv2d dw", results.cpu.grads[1], results.cuda.grads[1],
        ref::conv2d_backward_weight(shape, x_ref, dy_masked),
        sum_bound(ref::conv2d_backward_weight(shape, absolute(x), dy_abs), reduction_terms));
    if (has_bias) {
      check_both_within("conv2d dbias", results.cpu.grads[2], results.cuda.grads[2],
                        channel_sums(c.n, c.k, out_h * out_w, dy_masked),
                        sum_bound(channel_sums(c.n, c.k, out_h * out_w, dy_abs), reduction_terms));
    }
  }
}

// Gradients of PyTorch's ConvTranspose2d by the adjoint of its scatter definition
// (ref::conv_transpose2d). Each product x[n, ci, i, j] * w[ci, co, a, b] that lands on output
// (oh, ow) sends dy[n, co, oh, ow] * w to dx and dy * x to dw.
struct TransposedGrads {
  Vec dx, dw;
};

TransposedGrads transposed_backward(const ref::TransposedConv& t, const Vec& x, const Vec& w,
                                    const Vec& dy) {
  const std::int64_t h_out = t.h_out(), w_out = t.w_out();
  TransposedGrads grads{Vec(x.size(), 0.0), Vec(w.size(), 0.0)};
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
                const std::size_t x_at = std::size_t(((n * t.c_in + ci) * t.h_in + i) * t.w_in + j);
                const std::size_t w_at = std::size_t(((ci * t.c_out + co) * t.r + a) * t.s + b);
                const double g = dy[std::size_t(((n * t.c_out + co) * h_out + oh) * w_out + ow)];
                grads.dx[x_at] += g * w[w_at];
                grads.dw[w_at] += g * x[x_at];
              }
  return grads;
}

struct TransposedCase {
  std::int64_t n, c_in, h_in, w_in, c_out, kernel, stride, pad;
  bool bias;
};

// The DSN-VGG-Face upsampling (one channel, kernel 2f, stride f, pad 0) at f = 2 and 4, and
// multi-channel cases with padding, odd sizes and stride 1.
constexpr TransposedCase kTransposedCases[] = {
    {2, 1, 5, 7, 1, 4, 2, 0, false},
    {1, 1, 3, 4, 1, 8, 4, 0, false},
    {2, 3, 4, 5, 2, 4, 2, 1, true},
    {3, 2, 3, 3, 5, 3, 1, 1, true},
};

TEST_CASE("ops conv_transpose2d matches reference") {
  std::uint32_t seed = 2000;
  for (const TransposedCase& c : kTransposedCases) {
    const std::string description = fmt::format(
        "x ({}, {}, {}, {}), w ({}, {}, {}, {}), stride {}, pad {}, bias {}", c.n, c.c_in, c.h_in,
        c.w_in, c.c_in, c.c_out, c.kernel, c.kernel, c.stride, c.pad, c.bias);
    CAPTURE(description);
    ref::TransposedConv t;
    t.n = c.n;
    t.c_in = c.c_in;
    t.h_in = c.h_in;
    t.w_in = c.w_in;
    t.c_out = c.c_out;
    t.r = t.s = c.kernel;
    t.stride_h = t.stride_w = c.stride;
    t.pad_h = t.pad_w = c.pad;
    const std::int64_t h_out = t.h_out(), w_out = t.w_out();
    const std::vector<float> x =
        ref::random_uniform(std::size_t(c.n * c.c_in * c.h_in * c.w_in), -1.0f, 1.0f, seed++);
    const std::vector<float> w = ref::random_uniform(
        std::size_t(c.c_in * c.c_out * c.kernel * c.kernel), -0.5f, 0.5f, seed++);
    const std::vector<float> bias = ref::random_uniform(std::size_t(c.c_out), -0.5f, 0.5f, seed++);
    const std::vector<float> dy =
        ref::random_uniform(std::size_t(c.n * c.c_out * h_out * w_out), -1.0f, 1.0f, seed++);

    std::vector<HostTensor> inputs = {{{c.n, c.c_in, c.h_in, c.w_in}, x},
                                      {{c.c_in, c.c_out, c.kernel, c.kernel}, w}};
    if (c.bias) inputs.push_back({{c.c_out}, bias});
    ops::Conv2dParams params;
    params.stride_h = params.stride_w = c.stride;
    params.pad_h = params.pad_w = c.pad;
    const bool has_bias = c.bias;
    const BothResults results = run_on_both(
        inputs,
        [&](const std::vector<Tensor>& in) {
          return ops::conv_transpose2d(in[0], in[1], has_bias ? in[2] : Tensor(), params);
        },
        dy);

    // Each output receives at most c_in * kernel^2 products, plus the bias.
    const std::int64_t plane = h_out * w_out;
    Vec y_ref = ref::conv_transpose2d(t, to_double(x), to_double(w));
    Vec y_magnitude = ref::conv_transpose2d(t, absolute(x), absolute(w));
    if (has_bias) {
      y_ref = ref::bias_add(c.n, c.c_out, plane, to_double(bias), y_ref);
      y_magnitude = ref::bias_add(c.n, c.c_out, plane, absolute(bias), y_magnitude);
    }
    check_both_within("conv_transpose2d y", results.cpu.output, results.cuda.output, y_ref,
                      sum_bound(y_magnitude, double(c.c_in * c.kernel * c.kernel + 1)));

    const TransposedGrads grads = transposed_backward(t, to_double(x), to_double(w), to_double(dy));
    const TransposedGrads magnitudes =
        transposed_backward(t, absolute(x), absolute(w), absolute(dy));
    check_both_within("conv_transpose2d dx", results.cpu.grads[0], results.cuda.grads[0], grads.dx,
                      sum_bound(magnitudes.dx, double(c.c_out * c.kernel * c.kernel)));
    check_both_within("conv_transpose2d dw", results.cpu.grads[1], results.cuda.grads[1], grads.dw,
                      sum_bound(magnitudes.dw, double(c.n * c.h_in * c.w_in)));
    if (has_bias) {
      check_both_within(
          "conv_transpose2d dbias", results.cpu.grads[2], results.cuda.grads[2],
          channel_sums(c.n, c.c_out, plane, to_double(dy)),
          sum_bound(channel_sums(c.n, c.c_out, plane, absolute(dy)), double(c.n * plane)));
    }
  }
}

struct LinearCase {
  std::int64_t batch, in, out;
  bool bias;
};

// Tiny and odd sizes, and the side-1 classifier of the small DSN-VGG-Face (72 x 72 flattened
// map to 7 classes, batch 2) for a long reduction.
constexpr LinearCase kLinearCases[] = {
    {3, 17, 5, true},
    {1, 40, 7, false},
    {2, 5184, 7, true},
};

TEST_CASE("ops linear matches reference") {
  std::uint32_t seed = 3000;
  for (const LinearCase& c : kLinearCases) {
    CAPTURE(c.batch);
    CAPTURE(c.in);
    CAPTURE(c.out);
    const std::vector<float> x =
        ref::random_uniform(std::size_t(c.batch * c.in), -1.0f, 1.0f, seed++);
    const std::vector<float> w =
        ref::random_uniform(std::size_t(c.out * c.in), -0.5f, 0.5f, seed++);
    const std::vector<float> bias = ref::random_uniform(std::size_t(c.out), -0.5f, 0.5f, seed++);
    const std::vector<float> dy =
        ref::random_uniform(std::size_t(c.batch * c.out), -1.0f, 1.0f, seed++);
    std::vector<HostTensor> inputs = {{{c.batch, c.in}, x}, {{c.out, c.in}, w}};
    if (c.bias) inputs.push_back({{c.out}, bias});
    const bool has_bias = c.bias;
    const BothResults results = run_on_both(
        inputs,
        [&](const std::vector<Tensor>& t) {
          return ops::linear(t[0], t[1], has_bias ? t[2] : Tensor());
        },
        dy);

    // y = x w^T + bias, dx = dy w, dw = dy^T x, dbias = column sums of dy; each with the sums
    // of absolute products for its bound.
    Vec y(std::size_t(c.batch * c.out)), y_magnitude(y.size());
    Vec dx(x.size(), 0.0), dx_magnitude(x.size(), 0.0);
    Vec dw(w.size(), 0.0), dw_magnitude(w.size(), 0.0);
    Vec dbias(std::size_t(c.out), 0.0), dbias_magnitude(dbias.size(), 0.0);
    for (std::int64_t b = 0; b < c.batch; ++b)
      for (std::int64_t o = 0; o < c.out; ++o) {
        const std::size_t y_at = std::size_t(b * c.out + o);
        double total = has_bias ? bias[o] : 0.0;
        double magnitude = has_bias ? std::abs(double(bias[o])) : 0.0;
        for (std::int64_t i = 0; i < c.in; ++i) {
          const std::size_t x_at = std::size_t(b * c.in + i), w_at = std::size_t(o * c.in + i);
          total += double(x[x_at]) * w[w_at];
          magnitude += std::abs(double(x[x_at]) * w[w_at]);
          dx[x_at] += double(dy[y_at]) * w[w_at];
          dx_magnitude[x_at] += std::abs(double(dy[y_at]) * w[w_at]);
          dw[w_at] += double(dy[y_at]) * x[x_at];
          dw_magnitude[w_at] += std::abs(double(dy[y_at]) * x[x_at]);
        }
        y[y_at] = total;
        y_magnitude[y_at] = magnitude;
        dbias[o] += dy[y_at];
        dbias_magnitude[o] += std::abs(dy[y_at]);
      }
    check_both_within("linear y", results.cpu.output, results.cuda.output, y,
                      sum_bound(y_magnitude, double(c.in + 1)));
    check_both_within("linear dx", results.cpu.grads[0], results.cuda.grads[0], dx,
                      sum_bound(dx_magnitude, double(c.out)));
    check_both_within("linear dw", results.cpu.grads[1], results.cuda.grads[1], dw,
                      sum_bound(dw_magnitude, double(c.batch)));
    if (has_bias) {
      check_both_within("linear dbias", results.cpu.grads[2], results.cuda.grads[2], dbias,
                        sum_bound(dbias_magnitude, double(c.batch)));
    }
  }
}

}  // namespace
}  // namespace dsn::backend_test
