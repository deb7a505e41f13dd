// cuda batch normalisation against double references: tests/support/reference.h for the
// forward passes, and the gradient formulas below for the backward passes. The CPU suite checks
// those formulas against finite differences. Shapes cover channels 1, 2, 3, 5 and 17, batch 1
// to 9, H * W of 1 to 300, and channel reductions split over several blocks. Inputs also come
// with a mean of 50 and a spread of 2, where a naive one-pass variance would cancel.
//
// Bounds, per element, derived from how the kernels compute:
//   statistics and sums, accumulated in double over K terms and rounded once to float:
//     2^-23 |expected| + 4 K 2^-53 sum|terms|.
//   element-wise outputs, float coefficients applied with fmaf: the worst-case rounding bound
//     2 K 2^-24 sum|terms| over the K terms of the affine map, plus the effect of the
//     statistics' double error.
// Reductions must also give bit-identical results under the three thread schedules.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/error.h"
#include "kernels/batch_norm.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/reduce.h"
#include "tests/cuda/device_buffer.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::DeviceBuffer;

const double kFloatUnit = std::ldexp(1.0, -24);
const double kDoubleUnit = std::ldexp(1.0, -53);

// Checks |got_i - expected_i| <= bound_i and reports the worst element.
std::string bound_violation(std::span<const float> got, std::span<const double> expected,
                            std::span<const double> bound) {
  if (got.size() != expected.size() || got.size() != bound.size()) {
    return fmt::format("size mismatch: got {}, expected {}, bounds {}", got.size(), expected.size(),
                       bound.size());
  }
  std::size_t failures = 0, worst = 0;
  double worst_ratio = -1.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double error = std::abs(double(got[i]) - expected[i]);
    const bool pass = error <= bound[i];  // false for NaN
    double ratio = std::numeric_limits<double>::infinity();
    if (pass) ratio = bound[i] > 0.0 ? error / bound[i] : 0.0;
    if (!pass) ++failures;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (failures == 0) return {};
  return fmt::format(
      "{} of {} elements exceed the bound; worst at index {}: got {:.9g}, "
      "expected {:.9g}, error {:.3g}, bound {:.3g}",
      failures, got.size(), worst, got[worst], expected[worst],
      std::abs(double(got[worst]) - expected[worst]), bound[worst]);
}

#define CHECK_WITHIN(got, expected, bound)                                          \
  do {                                                                              \
    const std::string dsn_violation_ = bound_violation((got), (expected), (bound)); \
    CHECK_MESSAGE(dsn_violation_.empty(), dsn_violation_);                          \
  } while (0)

// Returns an empty string when both spans hold the same bits, else the first difference.
std::string bitwise_mismatch(std::span<const float> got, std::span<const float> expected) {
  if (got.size() != expected.size()) {
    return fmt::format("size mismatch: got {}, expected {}", got.size(), expected.size());
  }
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &expected[i], sizeof(float)) != 0) {
      return fmt::format("first difference at index {}: got {:.9g}, expected {:.9g}", i, got[i],
                         expected[i]);
    }
  }
  return {};
}

// Bound for a value accumulated in double over `terms` terms whose absolute values sum to at
// most terms * magnitude, then rounded once to float (2^-24 relative, doubled as margin).
double double_sum_bound(double expected, double terms, double magnitude) {
  return 2.0 * kFloatUnit * std::abs(expected) + 4.0 * terms * terms * kDoubleUnit * magnitude;
}

struct Case {
  std::int64_t n, c, hw;
  float offset;  // added to every input value
};

std::string describe(const Case& k) {
  return fmt::format("x ({}, {}, {}) + {}", k.n, k.c, k.hw, k.offset);
}

// (9, 3, 33) and (5, 2, 300) split each channel over 3 and 5 blocks, (2, 1, 1) has one value
// per row, and (3, 5, 7) gives each block 32 rows of 8 threads.
std::vector<Case> cases() {
  std::vector<Case> result;
  const Case shapes[] = {{1, 3, 35, 0}, {3, 17, 35, 0}, {9, 3, 33, 0}, {5, 2, 300, 0},
                         {2, 1, 1, 0},  {3, 5, 7, 0},   {1, 1, 2, 0}};
  for (const Case& shape : shapes) {
    result.push_back(shape);
    result.push_back(Case{shape.n, shape.c, shape.hw, 50.0f});
  }
  return result;
}

BatchNormShape shape_of(const Case& k) {
  BatchNormShape shape;
  shape.n = k.n;
  shape.c = k.c;
  shape.hw = k.hw;
  return shape;
}

std::size_t at(const BatchNormShape& s, std::int64_t n, std::int64_t c, std::int64_t i) {
  return std::size_t((n * s.c + c) * s.hw + i);
}

// Inputs of one case: x = offset + uniform(-2, 2), gamma with one negative entry, beta, and
// running statistics to be updated.
struct Inputs {
  std::vector<float> x, gamma, beta, running_mean, running_var;
};

Inputs make_inputs(const Case& k, std::uint32_t seed) {
  Inputs in;
  in.x = ref::random_uniform(std::size_t(k.n * k.c * k.hw), -2.0f, 2.0f, seed);
  for (float& value : in.x) value += k.offset;
  in.gamma = ref::random_uniform(std::size_t(k.c), 0.5f, 1.5f, seed + 1);
  in.gamma[0] = -0.75f;
  in.beta = ref::random_uniform(std::size_t(k.c), -1.0f, 1.0f, seed + 2);
  in.running_mean = ref::random_uniform(std::size_t(k.c), -0.5f, 0.5f, seed + 3);
  in.running_var = ref::random_uniform(std::size_t(k.c), 0.5f, 2.0f, seed + 4);
  return in;
}

// The largest |x| of each channel.
Vec channel_max_abs(const BatchNormShape& s, const std::vector<float>& x) {
  Vec result(std::size_t(s.c), 0.0);
  for (std::int64_t n = 0; n < s.n; ++n)
    for (std::int64_t c = 0; c < s.c; ++c)
      for (std::int64_t i = 0; i < s.hw; ++i) {
        result[std::size_t(c)] =
            std::max(result[std::size_t(c)], double(std::abs(x[at(s, n, c, i)])));
      }
  return result;
}

TEST_CASE("cuda batch_norm forward train matches reference") {
  CHECK(cuda::detail::plan_channel_reduction(9, 3, 33).splits == 3);
  CHECK(cuda::detail::plan_channel_reduction(5, 2, 300).splits == 5);
  std::uint32_t seed = 10;
  for (const Case& k : cases()) {
    CAPTURE(describe(k));
    const BatchNormShape s = shape_of(k);
    const Inputs in = make_inputs(k, seed += 10);
    DeviceBuffer<float> x(in.x), gamma(in.gamma), beta(in.beta), y(in.x.size());
    DeviceBuffer<float> save_mean(std::size_t(s.c)), save_inv_std(std::size_t(s.c));
    DeviceBuffer<float> running_mean(in.running_mean), running_var(in.running_var);
    cuda::batch_norm_forward_train(s, x.get(), gamma.get(), beta.get(), y.get(), save_mean.get(),
                                   save_inv_std.get(), running_mean.get(), running_var.get(),
                                   nullptr);

    const ref::BatchNormResult expected = ref::batch_norm_train(
        s, ref::to_double(in.x), ref::to_double(in.gamma), ref::to_double(in.beta));
    const double count = double(s.n * s.hw);
    const Vec max_abs = channel_max_abs(s, in.x);

    // Per channel: the statistics, their double error (terms |x - shift| <= 2 max|x| for the
    // mean, (x - shift)^2 <= 4 max|x|^2 twice over for the variance), and the bounds.
    Vec inv_std(std::size_t(s.c)), mean_error(std::size_t(s.c)), inv_std_error(std::size_t(s.c));
    Vec mean_bound(std::size_t(s.c)), inv_std_bound(std::size_t(s.c));
    Vec expected_running_mean(std::size_t(s.c)), running_mean_bound(std::size_t(s.c));
    Vec expected_running_var(std::size_t(s.c)), running_var_bound(std::size_t(s.c));
    for (std::size_t c = 0; c < std::size_t(s.c); ++c) {
      const double mean = expected.mean[c], variance = expected.variance[c];
      const double m = s.momentum;
      inv_std[c] = 1.0 / std::sqrt(variance + s.eps);
      const double variance_magnitude = 8.0 * max_abs[c] * max_abs[c];
      mean_error[c] = 4.0 * count * kDoubleUnit * 2.0 * max_abs[c];
      inv_std_error[c] =
          4.0 * count * kDoubleUnit * variance_magnitude * inv_std[c] / (variance + s.eps);
      mean_bound[c] = 2.0 * kFloatUnit * std::abs(mean) + mean_error[c];
      inv_std_bound[c] = 2.0 * kFloatUnit * inv_std[c] + inv_std_error[c];
      expected_running_mean[c] = (1.0 - m) * in.running_mean[c] + m * mean;
      running_mean_bound[c] =
          2.0 * kFloatUnit * std::abs(expected_running_mean[c]) + m * mean_error[c];
      const double unbiased = variance * count / (count - 1.0);
      expected_running_var[c] = (1.0 - m) * in.running_var[c] + m * unbiased;
      running_var_bound[c] =
          2.0 * kFloatUnit * std::abs(expected_running_var[c]) +
          m * 4.0 * count * kDoubleUnit * variance_magnitude * count / (count - 1.0);
    }
    CHECK_WITHIN(save_mean.to_host(), expected.mean, mean_bound);
    CHECK_WITHIN(save_inv_std.to_host(), inv_std, inv_std_bound);
    CHECK_WITHIN(running_mean.to_host(), expected_running_mean, running_mean_bound);
    CHECK_WITHIN(running_var.to_host(), expected_running_var, running_var_bound);

    // y = (x - center) * scale + shift with center = mean rounded to float and shift = beta -
    // (mean - center) * scale: K = 2 terms, each off by at most 2^-24 |mean * scale| through
    // the center's rounding, plus the statistics' double error times its effect.
    Vec y_bound(in.x.size());
    for (std::int64_t n = 0; n < s.n; ++n)
      for (std::int64_t c = 0; c < s.c; ++c)
        for (std::int64_t i = 0; i < s.hw; ++i) {
          const std::size_t j = at(s, n, c, i);
          const std::size_t ch = std::size_t(c);
          const double scale = in.gamma[ch] * inv_std[ch];
          const double centered = (in.x[j] - expected.mean[ch]) * scale;
          const double center_rounding = kFloatUnit * std::abs(expected.mean[ch] * scale);
          y_bound[j] = 2.0 * 2.0 * kFloatUnit *
                           (std::abs(centered) + std::abs(in.beta[ch]) + 2.0 * center_rounding) +
                       std::abs(scale) * mean_error[ch] +
                       std::abs((in.x[j] - expected.mean[ch]) * in.gamma[ch]) * inv_std_error[ch];
        }
    CHECK_WITHIN(y.to_host(), expected.y, y_bound);
  }
}

TEST_CASE("cuda batch_norm forward train skips null running statistics") {
  const Case k{3, 5, 7, 0};
  const BatchNormShape s = shape_of(k);
  const Inputs in = make_inputs(k, 3);
  DeviceBuffer<float> x(in.x), gamma(in.gamma), beta(in.beta), y(in.x.size()), y_again(in.x.size());
  DeviceBuffer<float> save_mean(std::size_t(s.c)), save_inv_std(std::size_t(s.c));
  DeviceBuffer<float> running_mean(in.running_mean), running_var(in.running_var);
  cuda::batch_norm_forward_train(s, x.get(), gamma.get(), beta.get(), y.get(), save_mean.get(),
                                 save_inv_std.get(), running_mean.get(), running_var.get(),
                                 nullptr);
  cuda::batch_norm_forward_train(s, x.get(), gamma.get(), beta.get(), y_again.get(),
                                 save_mean.get(), save_inv_std.get(), nullptr, nullptr, nullptr);
  const std::string mismatch = bitwise_mismatch(y_again.to_host(), y.to_host());
  CHECK_MESSAGE(mismatch.empty(), mismatch);
}

TEST_CASE("cuda batch_norm forward inference matches reference") {
  std::uint32_t seed = 500;
  for (const Case& k : cases()) {
    CAPTURE(describe(k));
    const BatchNormShape s = shape_of(k);
    Inputs in = make_inputs(k, seed += 10);
    for (float& mean : in.running_mean) mean += k.offset;
    DeviceBuffer<float> x(in.x), gamma(in.gamma), beta(in.beta), y(in.x.size());
    DeviceBuffer<float> running_mean(in.running_mean), running_var(in.running_var);
    cuda::batch_norm_forward_inference(s, x.get(), gamma.get(), beta.get(), running_mean.get(),
                                       running_var.get(), y.get(), nullptr);

    const Vec expected = ref::batch_norm_inference(
        s, ref::to_double(in.x), ref::to_double(in.gamma), ref::to_double(in.beta),
        ref::to_double(in.running_mean), ref::to_double(in.running_var));
    Vec bound(in.x.size());
    for (std::int64_t n = 0; n < s.n; ++n)
      for (std::int64_t c = 0; c < s.c; ++c)
        for (std::int64_t i = 0; i < s.hw; ++i) {
          const std::size_t j = at(s, n, c, i), ch = std::size_t(c);
          // y = (x - mean) * scale + beta with the float mean and beta as given: K = 2 terms.
          const double scale = in.gamma[ch] / std::sqrt(double(in.running_var[ch]) + s.eps);
          const double centered = (double(in.x[j]) - in.running_mean[ch]) * scale;
          bound[j] = 2.0 * 2.0 * kFloatUnit * (std::abs(centered) + std::abs(in.beta[ch]));
        }
    CHECK_WITHIN(y.to_host(), expected, bound);
  }
}

// Gradients of the training forward pass in double from their formulas, with the saved mean
// and inverse standard deviation as given: dbeta = sum(dy), dgamma = sum(dy * xhat), and
// dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) * inv_std.
// Also the bounds of each output (see the file comment).
struct TrainGradients {
  Vec dx, dgamma, dbeta;
  Vec dx_bound, dgamma_bound, dbeta_bound;
};

TrainGradients train_gradients(const BatchNormShape& s, const Inputs& in,
                               const std::vector<float>& dy, const std::vector<float>& mean,
                               const std::vector<float>& inv_std) {
  const double count = double(s.n * s.hw);
  TrainGradients g{Vec(in.x.size()), Vec(std::size_t(s.c), 0.0), Vec(std::size_t(s.c), 0.0),
                   Vec(in.x.size()), Vec(std::size_t(s.c), 0.0), Vec(std::size_t(s.c), 0.0)};
  Vec dy_magnitude(std::size_t(s.c), 0.0), dy_xhat_magnitude(std::size_t(s.c), 0.0);
  for (std::int64_t n = 0; n < s.n; ++n)
    for (std::int64_t c = 0; c < s.c; ++c)
      for (std::int64_t i = 0; i < s.hw; ++i) {
        const std::size_t j = at(s, n, c, i), ch = std::size_t(c);
        const double xhat = (double(in.x[j]) - mean[ch]) * inv_std[ch];
        g.dbeta[ch] += dy[j];
        g.dgamma[ch] += dy[j] * xhat;
        dy_magnitude[ch] += std::abs(dy[j]);
        dy_xhat_magnitude[ch] += std::abs(dy[j] * xhat);
      }
  for (std::size_t c = 0; c < std::size_t(s.c); ++c) {
    g.dbeta_bound[c] = double_sum_bound(g.dbeta[c], count, dy_magnitude[c] / count);
    g.dgamma_bound[c] = double_sum_bound(g.dgamma[c], count, dy_xhat_magnitude[c] / count);
  }
  for (std::int64_t n = 0; n < s.n; ++n)
    for (std::int64_t c = 0; c < s.c; ++c)
      for (std::int64_t i = 0; i < s.hw; ++i) {
        const std::size_t j = at(s, n, c, i), ch = std::size_t(c);
        const double centered = double(in.x[j]) - mean[ch];
        const double a = in.gamma[ch] * double(inv_std[ch]);
        const double k1 = -a * inv_std[ch] * g.dgamma[ch] / count;
        const double k0 = -a * g.dbeta[ch] / count;
        g.dx[j] = a * dy[j] + k1 * centered + k0;
        // K = 3 terms, plus the double error of the two sums carried through k1 and k0.
        g.dx_bound[j] = 2.0 * 3.0 * kFloatUnit *
                            (std::abs(a * dy[j]) + std::abs(k1 * centered) + std::abs(k0)) +
                        std::abs(a * inv_std[ch] * centered) * g.dgamma_bound[ch] / count +
                        std::abs(a) * g.dbeta_bound[ch] / count;
      }
  return g;
}

TEST_CASE("cuda batch_norm backward train matches reference") {
  std::uint32_t seed = 900;
  for (const Case& k : cases()) {
    CAPTURE(describe(k));
    const BatchNormShape s = shape_of(k);
    const Inputs in = make_inputs(k, seed += 10);
    const std::vector<float> dy = ref::random_uniform(in.x.size(), -1.0f, 1.0f, seed + 5);
    // The saved statistics as the forward pass would store them: the reference rounded to float.
    const ref::BatchNormResult forward = ref::batch_norm_train(
        s, ref::to_double(in.x), ref::to_double(in.gamma), ref::to_double(in.beta));
    std::vector<float> mean(std::size_t(s.c)), inv_std(std::size_t(s.c));
    for (std::size_t c = 0; c < std::size_t(s.c); ++c) {
      mean[c] = float(forward.mean[c]);
      inv_std[c] = float(1.0 / std::sqrt(forward.variance[c] + s.eps));
    }

    DeviceBuffer<float> x(in.x), dy_device(dy), gamma(in.gamma), mean_device(mean),
        inv_std_device(inv_std);
    DeviceBuffer<float> dx(in.x.size()), dgamma(std::size_t(s.c)), dbeta(std::size_t(s.c));
    cuda::batch_norm_backward_train(s, x.get(), dy_device.get(), gamma.get(), mean_device.get(),
                                    inv_std_device.get(), dx.get(), dgamma.get(), dbeta.get(),
                                    nullptr);
    const TrainGradients expected = train_gradients(s, in, dy, mean, inv_std);
    const std::vector<float> got_dx = dx.to_host();
    CHECK_WITHIN(got_dx, expected.dx, expected.dx_bound);
    CHECK_WITHIN(dgamma.to_host(), expected.dgamma, expected.dgamma_bound);
    CHECK_WITHIN(dbeta.to_host(), expected.dbeta, expected.dbeta_bound);

    // Null dgamma and dbeta: dx must not change.
    DeviceBuffer<float> dx_again(in.x.size());
    cuda::batch_norm_backward_train(s, x.get(), dy_device.get(), gamma.get(), mean_device.get(),
                                    inv_std_device.get(), dx_again.get(), nullptr, nullptr,
                                    nullptr);
    const std::string mismatch = bitwise_mismatch(dx_again.to_host(), got_dx);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
  }
}

TEST_CASE("cuda batch_norm backward inference matches reference") {
  std::uint32_t seed = 1300;
  for (const Case& k : cases()) {
    CAPTURE(describe(k));
    const BatchNormShape s = shape_of(k);
    Inputs in = make_inputs(k, seed += 10);
    for (float& mean : in.running_mean) mean += k.offset;
    const std::vector<float> dy = ref::random_uniform(in.x.size(), -1.0f, 1.0f, seed + 5);
    DeviceBuffer<float> x(in.x), dy_device(dy), gamma(in.gamma);
    DeviceBuffer<float> running_mean(in.running_mean), running_var(in.running_var);
    DeviceBuffer<float> dx(in.x.size()), dgamma(std::size_t(s.c)), dbeta(std::size_t(s.c));
    cuda::batch_norm_backward_inference(s, x.get(), dy_device.get(), gamma.get(),
                                        running_mean.get(), running_var.get(), dx.get(),
                                        dgamma.get(), dbeta.get(), nullptr);

    const double count = double(s.n * s.hw);
    Vec expected_dx(in.x.size()), dx_bound(in.x.size());
    Vec expected_dgamma(std::size_t(s.c), 0.0), expected_dbeta(std::size_t(s.c), 0.0);
    Vec dgamma_magnitude(std::size_t(s.c), 0.0), dbeta_magnitude(std::size_t(s.c), 0.0);
    for (std::int64_t n = 0; n < s.n; ++n)
      for (std::int64_t c = 0; c < s.c; ++c)
        for (std::int64_t i = 0; i < s.hw; ++i) {
          const std::size_t j = at(s, n, c, i), ch = std::size_t(c);
          const double inv_std = 1.0 / std::sqrt(double(in.running_var[ch]) + s.eps);
          const double xhat = (double(in.x[j]) - in.running_mean[ch]) * inv_std;
          expected_dx[j] = in.gamma[ch] * inv_std * dy[j];
          // dx = a * dy with a rounded to float: K = 2 roundings of one term.
          dx_bound[j] = 2.0 * 2.0 * kFloatUnit * std::abs(expected_dx[j]);
          expected_dgamma[ch] += dy[j] * xhat;
          expected_dbeta[ch] += dy[j];
          dgamma_magnitude[ch] += std::abs(dy[j] * xhat);
          dbeta_magnitude[ch] += std::abs(dy[j]);
        }
    Vec dgamma_bound(std::size_t(s.c)), dbeta_bound(std::size_t(s.c));
    for (std::size_t c = 0; c < std::size_t(s.c); ++c) {
      dgamma_bound[c] = double_sum_bound(expected_dgamma[c], count, dgamma_magnitude[c] / count);
      dbeta_bound[c] = double_sum_bound(expected_dbeta[c], count, dbeta_magnitude[c] / count);
    }
    const std::vector<float> got_dx = dx.to_host();
    CHECK_WITHIN(got_dx, expected_dx, dx_bound);
    CHECK_WITHIN(dgamma.to_host(), expected_dgamma, dgamma_bound);
    CHECK_WITHIN(dbeta.to_host(), expected_dbeta, dbeta_bound);

    DeviceBuffer<float> dx_again(in.x.size());
    cuda::batch_norm_backward_inference(s, x.get(), dy_device.get(), gamma.get(),
                                        running_mean.get(), running_var.get(), dx_again.get(),
                                        nullptr, nullptr, nullptr);
    const std::string mismatch = bitwise_mismatch(dx_again.to_host(), got_dx);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
  }
}

TEST_CASE("cuda batch_norm rejects invalid shapes") {
  DeviceBuffer<float> buffer(16);
  float* p = buffer.get();
  BatchNormShape one_value;  // N * H * W = 1
  CHECK_THROWS_AS(cuda::batch_norm_forward_train(one_value, p, p, p, p, p, p, p, p, nullptr),
                  Error);
  BatchNormShape no_channels;
  no_channels.c = 0;
  CHECK_THROWS_AS(cuda::batch_norm_forward_inference(no_channels, p, p, p, p, p, p, nullptr),
                  Error);
  BatchNormShape zero_eps;
  zero_eps.hw = 4;
  zero_eps.eps = 0.0;
  CHECK_THROWS_AS(cuda::batch_norm_backward_train(zero_eps, p, p, p, p, p, p, p, p, nullptr),
                  Error);
}

#if defined(DSN_DEVICE_EMULATION)
TEST_CASE("cuda batch_norm identical across schedules") {
  const Case k{9, 3, 33, 50.0f};
  const BatchNormShape s = shape_of(k);
  const Inputs in = make_inputs(k, 77);
  const std::vector<float> dy = ref::random_uniform(in.x.size(), -1.0f, 1.0f, 78);
  DeviceBuffer<float> x(in.x), gamma(in.gamma), beta(in.beta), dy_device(dy);
  DeviceBuffer<float> y(in.x.size()), dx(in.x.size());
  DeviceBuffer<float> save_mean(std::size_t(s.c)), save_inv_std(std::size_t(s.c));
  DeviceBuffer<float> dgamma(std::size_t(s.c)), dbeta(std::size_t(s.c));

  const emu::Schedule saved = emu::schedule();
  std::vector<std::vector<float>> results;
  for (const char* order : {"forward", "reverse", "random:11"}) {
    emu::set_schedule(emu::parse_schedule(order));
    cuda::batch_norm_forward_train(s, x.get(), gamma.get(), beta.get(), y.get(), save_mean.get(),
                                   save_inv_std.get(), nullptr, nullptr, nullptr);
    cuda::batch_norm_backward_train(s, x.get(), dy_device.get(), gamma.get(), save_mean.get(),
                                    save_inv_std.get(), dx.get(), dgamma.get(), dbeta.get(),
                                    nullptr);
    std::vector<float> all;
    for (const DeviceBuffer<float>* output :
         {&y, &save_mean, &save_inv_std, &dx, &dgamma, &dbeta}) {
      const std::vector<float> values = output->to_host();
      all.insert(all.end(), values.begin(), values.end());
    }
    results.push_back(std::move(all));
  }
  emu::set_schedule(saved);
  for (std::size_t run = 1; run < results.size(); ++run) {
    CAPTURE(run);
    const std::string mismatch = bitwise_mismatch(results[run], results[0]);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
  }
}
#endif

}  // namespace
}  // namespace dsn
