// Batch normalisation, softmax, softmax cross-entropy, sum and mean on the CPU and the CUDA
// backend, forward and backward through autograd, against double references. The two backends
// reduce in different orders and precisions (the CPU in double, the CUDA softmax in float), so
// each element must lie within a bound derived from the float operations that make it; the
// derivation sits with each test. An indexing error or a wrong formula moves an element by about
// the size of its terms, orders of magnitude beyond these bounds.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include "engine/ops.h"
#include "tests/backend/support.h"
#include "tests/support/reference.h"

namespace dsn::backend_test {
namespace {

// --- Batch normalisation ----------------------------------------------------------------------
//
// Both backends accumulate the statistics in double and round them to float, then apply a few
// float coefficients per channel. Each float operation on the way rounds once, and by our count
// of the kernels' steps no term passes through more than 8 of them. The rounded mean and 1 / std
// also move (x - mean) by up to 2^-24 (|x| + |mean|). The bound is therefore 16 * 2^-24 (twice
// the operation count) times the sum of the magnitudes of the terms, with |x| + |mean| in place
// of |x - mean|.

constexpr double kBatchNormOps = 16.0;

struct BatchNormCase {
  std::int64_t n, c, h, w;
  float center;  // inputs lie in [center - 2, center + 2]
};

// A large mean against a small spread, where a naive one-pass variance cancels. 1x1 maps in a
// batch of 2, the fewest values per channel that training mode accepts. Batch 1 with 17
// channels, not a multiple of any tile.
constexpr BatchNormCase kBatchNormCases[] = {
    {3, 5, 4, 3, 50.0f},
    {2, 3, 1, 1, 0.0f},
    {1, 17, 5, 7, -3.0f},
};

struct ChannelStats {
  Vec mean, inv_std;
};

ChannelStats stats_of(const Vec& mean, const Vec& variance, double eps) {
  ChannelStats stats{mean, Vec(variance.size())};
  for (std::size_t c = 0; c < variance.size(); ++c) {
    stats.inv_std[c] = 1.0 / std::sqrt(variance[c] + eps);
  }
  return stats;
}

TEST_CASE("ops batch_norm train matches reference") {
  std::uint32_t seed = 6000;
  for (const BatchNormCase& c : kBatchNormCases) {
    CAPTURE(c.n);
    CAPTURE(c.c);
    CAPTURE(c.h * c.w);
    CAPTURE(c.center);
    BatchNormShape shape;
    shape.n = c.n;
    shape.c = c.c;
    shape.hw = c.h * c.w;
    const std::int64_t hw = shape.hw;
    const double count = double(c.n * hw);
    const Shape x_shape{c.n, c.c, c.h, c.w};
    const std::vector<float> x =
        ref::random_uniform(std::size_t(numel(x_shape)), c.center - 2.0f, c.center + 2.0f, seed++);
    const std::vector<float> gamma = ref::random_uniform(std::size_t(c.c), -1.5f, 1.5f, seed++);
    const std::vector<float> beta = ref::random_uniform(std::size_t(c.c), -1.0f, 1.0f, seed++);
    const std::vector<float> running_mean =
        ref::random_uniform(std::size_t(c.c), -1.0f, 1.0f, seed++);
    const std::vector<float> running_var =
        ref::random_uniform(std::size_t(c.c), 0.5f, 2.0f, seed++);
    const std::vector<float> dy = ref::random_uniform(x.size(), -1.0f, 1.0f, seed++);

    // The running statistics after the call, CPU first, then CUDA.
    std::vector<std::vector<float>> means_after, vars_after;
    const BothResults results = run_on_both(
        {{x_shape, x}, {{c.c}, gamma}, {{c.c}, beta}},
        [&](const std::vector<Tensor>& t) {
          Tensor mean = Tensor::from_vector({c.c}, running_mean, t[0].device());
          Tensor var = Tensor::from_vector({c.c}, running_var, t[0].device());
          const Tensor y =
              ops::batch_norm(t[0], t[1], t[2], mean, var, ops::BatchNormMode::Train, 0.1, 1e-5);
          means_after.push_back(mean.to_vector());
          vars_after.push_back(var.to_vector());
          return y;
        },
        dy);
    REQUIRE(means_after.size() == 2);

    const ref::BatchNormResult forward =
        ref::batch_norm_train(shape, to_double(x), to_double(gamma), to_double(beta));
    const ChannelStats stats = stats_of(forward.mean, forward.variance, shape.eps);
    const double momentum = shape.momentum;

    Vec y_bound(x.size()), dx(x.size()), dx_bound(x.size());
    Vec dgamma(std::size_t(c.c), 0.0), dgamma_bound(dgamma.size());
    Vec dbeta(dgamma.size(), 0.0), dbeta_bound(dgamma.size());
    Vec mean_after(dgamma.size()), mean_bound(dgamma.size());
    Vec var_after(dgamma.size()), var_bound(dgamma.size());
    for (std::int64_t ch = 0; ch < c.c; ++ch) {
      const double mean = stats.mean[ch], inv_std = stats.inv_std[ch], g = gamma[ch];
      // Channel sums: dbeta = sum dy, dgamma = sum dy * xhat, and the magnitudes for the bounds.
      double abs_dy = 0.0, abs_dy_xhat = 0.0, abs_dy_shifted = 0.0;
      for (std::int64_t b = 0; b < c.n; ++b)
        for (std::int64_t i = 0; i < hw; ++i) {
          const std::size_t at = std::size_t((b * c.c + ch) * hw + i);
          const double xhat = (x[at] - mean) * inv_std;
          dbeta[ch] += dy[at];
          dgamma[ch] += dy[at] * xhat;
          abs_dy += std::abs(double(dy[at]));
          abs_dy_xhat += std::abs(dy[at] * xhat);
          abs_dy_shifted +=
              std::abs(double(dy[at])) * (std::abs(double(x[at])) + std::abs(mean)) * inv_std;
        }
      dgamma_bound[ch] = kBatchNormOps * kUnit * abs_dy_shifted;
      dbeta_bound[ch] = kBatchNormOps * kUnit * abs_dy;
      for (std::int64_t b = 0; b < c.n; ++b)
        for (std::int64_t i = 0; i < hw; ++i) {
          const std::size_t at = std::size_t((b * c.c + ch) * hw + i);
          const double xhat = (x[at] - mean) * inv_std;
          const double shifted = (std::abs(double(x[at])) + std::abs(mean)) * inv_std;
          y_bound[at] =
              kBatchNormOps * kUnit * (std::abs(g) * shifted + std::abs(double(beta[ch])));
          dx[at] = g * inv_std * (dy[at] - dbeta[ch] / count - xhat * dgamma[ch] / count);
          dx_bound[at] = kBatchNormOps * kUnit * std::abs(g) * inv_std *
                         (std::abs(double(dy[at])) + abs_dy / count +
                          shifted * abs_dy_xhat / count + std::abs(xhat) * abs_dy_shifted / count);
        }
      // running = (1 - momentum) running + momentum * batch, with the unbiased variance.
      const double unbiased = forward.variance[ch] * count / (count - 1.0);
      mean_after[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mean;
      mean_bound[ch] =
          kBatchNormOps * kUnit *
          ((1.0 - momentum) * std::abs(double(running_mean[ch])) + momentum * std::abs(mean));
      var_after[ch] = (1.0 - momentum) * running_var[ch] + momentum * unbiased;
      var_bound[ch] = kBatchNormOps * kUnit * std::abs(var_after[ch]);
    }
    check_both_within("batch_norm train y", results.cpu.output, results.cuda.output, forward.y,
                      y_bound);
    check_both_within("batch_norm train running_mean", means_after[0], means_after[1], mean_after,
                      mean_bound);
    check_both_within("batch_norm train running_var", vars_after[0], vars_after[1], var_after,
                      var_bound);
    check_both_within("batch_norm train dx", results.cpu.grads[0], results.cuda.grads[0], dx,
                      dx_bound);
    check_both_within("batch_norm train dgamma", results.cpu.grads[1], results.cuda.grads[1],
                      dgamma, dgamma_bound);
    check_both_within("batch_norm train dbeta", results.cpu.grads[2], results.cuda.grads[2], dbeta,
                      dbeta_bound);
  }
}

TEST_CASE("ops batch_norm inference matches reference") {
  std::uint32_t seed = 6100;
  for (const BatchNormCase& c : kBatchNormCases) {
    CAPTURE(c.n);
    CAPTURE(c.c);
    CAPTURE(c.h * c.w);
    BatchNormShape shape;
    shape.n = c.n;
    shape.c = c.c;
    shape.hw = c.h * c.w;
    const std::int64_t hw = shape.hw;
    const Shape x_shape{c.n, c.c, c.h, c.w};
    const std::vector<float> x =
        ref::random_uniform(std::size_t(numel(x_shape)), c.center - 2.0f, c.center + 2.0f, seed++);
    const std::vector<float> gamma = ref::random_uniform(std::size_t(c.c), -1.5f, 1.5f, seed++);
    const std::vector<float> beta = ref::random_uniform(std::size_t(c.c), -1.0f, 1.0f, seed++);
    // Running statistics near the data's, as after training.
    const std::vector<float> running_mean =
        ref::random_uniform(std::size_t(c.c), c.center - 0.5f, c.center + 0.5f, seed++);
    const std::vector<float> running_var =
        ref::random_uniform(std::size_t(c.c), 0.5f, 2.0f, seed++);
    const std::vector<float> dy = ref::random_uniform(x.size(), -1.0f, 1.0f, seed++);

    std::vector<std::vector<float>> means_after;
    const BothResults results = run_on_both(
        {{x_shape, x}, {{c.c}, gamma}, {{c.c}, beta}},
        [&](const std::vector<Tensor>& t) {
          Tensor mean = Tensor::from_vector({c.c}, running_mean, t[0].device());
          Tensor var = Tensor::from_vector({c.c}, running_var, t[0].device());
          const Tensor y = ops::batch_norm(t[0], t[1], t[2], mean, var,
                                           ops::BatchNormMode::Inference, 0.1, 1e-5);
          means_after.push_back(mean.to_vector());
          return y;
        },
        dy);
    // Inference mode leaves the running statistics alone.
    CHECK(means_after.at(0) == running_mean);
    CHECK(means_after.at(1) == running_mean);

    const Vec y = ref::batch_norm_inference(shape, to_double(x), to_double(gamma), to_double(beta),
                                            to_double(running_mean), to_double(running_var));
    Vec y_bound(x.size()), dx(x.size()), dx_bound(x.size());
    Vec dgamma(std::size_t(c.c), 0.0), dgamma_bound(dgamma.size(), 0.0);
    Vec dbeta(dgamma.size(), 0.0), dbeta_bound(dgamma.size(), 0.0);
    for (std::int64_t ch = 0; ch < c.c; ++ch) {
      const double mean = running_mean[ch], g = gamma[ch];
      const double inv_std = 1.0 / std::sqrt(double(running_var[ch]) + shape.eps);
      for (std::int64_t b = 0; b < c.n; ++b)
        for (std::int64_t i = 0; i < hw; ++i) {
          const std::size_t at = std::size_t((b * c.c + ch) * hw + i);
          const double shifted = (std::abs(double(x[at])) + std::abs(mean)) * inv_std;
          y_bound[at] =
              kBatchNormOps * kUnit * (std::abs(g) * shifted + std::abs(double(beta[ch])));
          dx[at] = g * inv_std * dy[at];
          dx_bound[at] = kBatchNormOps * kUnit * std::abs(dx[at]);
          dgamma[ch] += dy[at] * (x[at] - mean) * inv_std;
          dgamma_bound[ch] += kBatchNormOps * kUnit * std::abs(double(dy[at])) * shifted;
          dbeta[ch] += dy[at];
          dbeta_bound[ch] += kBatchNormOps * kUnit * std::abs(double(dy[at]));
        }
    }
    check_both_within("batch_norm inference y", results.cpu.output, results.cuda.output, y,
                      y_bound);
    check_both_within("batch_norm inference dx", results.cpu.grads[0], results.cuda.grads[0], dx,
                      dx_bound);
    check_both_within("batch_norm inference dgamma", results.cpu.grads[1], results.cuda.grads[1],
                      dgamma, dgamma_bound);
    check_both_within("batch_norm inference dbeta", results.cpu.grads[2], results.cuda.grads[2],
                      dbeta, dbeta_bound);
  }
}

// --- Softmax and cross-entropy ----------------------------------------------------------------
//
// The CUDA kernels sum in float. kernels/cuda/softmax.cu derives that a probability of a row of
// K classes whose logits span r = max - min stays within (K + 2r + 10) 2^-24 of the exact value,
// relative to itself; the CPU, which sums in double, stays within that too. Twice that relative
// error, e = 2 (K + 2r + 10) 2^-24, bounds the forward outputs, and the backward bounds add the
// effect of e on the dot products plus the float rounding of each step.

struct SoftmaxCase {
  std::int64_t rows, classes;
  float spread;  // logits lie in [-spread, spread]
};

// The networks' 7 classes, a row longer than a warp's 32 lanes, and two classes.
constexpr SoftmaxCase kSoftmaxCases[] = {
    {5, 7, 4.0f},
    {3, 40, 6.0f},
    {1, 2, 1.0f},
};

// e = 2 (K + 2r + 10) 2^-24 for each row of logits.
Vec probability_errors(std::int64_t rows, std::int64_t classes, const std::vector<float>& x) {
  Vec errors(static_cast<std::size_t>(rows));
  for (std::int64_t row = 0; row < rows; ++row) {
    const auto begin = x.begin() + row * classes, end = begin + classes;
    const double span = double(*std::max_element(begin, end)) - *std::min_element(begin, end);
    errors[row] = 2.0 * (double(classes) + 2.0 * span + 10.0) * kUnit;
  }
  return errors;
}

TEST_CASE("ops softmax matches reference") {
  std::uint32_t seed = 6200;
  for (const SoftmaxCase& c : kSoftmaxCases) {
    CAPTURE(c.rows);
    CAPTURE(c.classes);
    const std::size_t count = std::size_t(c.rows * c.classes);
    const std::vector<float> x = ref::random_uniform(count, -c.spread, c.spread, seed++);
    const std::vector<float> dy = ref::random_uniform(count, -1.0f, 1.0f, seed++);
    const BothResults results = run_on_both(
        {{{c.rows, c.classes}, x}}, [](const std::vector<Tensor>& t) { return ops::softmax(t[0]); },
        dy);

    const Vec y = ref::softmax(c.rows, c.classes, to_double(x));
    const Vec errors = probability_errors(c.rows, c.classes, x);
    // dx_j = y_j (dy_j - dot) with dot = sum_i dy_i y_i. Errors of e y_i in y move dx_j by up to
    // e y_j (|dy_j| + |dot| + S) with S = sum_i |dy_i| y_i; the float dot over K terms and the
    // two roundings after it add (K + 2) 2^-24 y_j (|dy_j| + |dot| + S), doubled as margin.
    Vec y_bound(count), dx(count), dx_bound(count);
    for (std::int64_t row = 0; row < c.rows; ++row) {
      double dot = 0.0, magnitude = 0.0;
      for (std::int64_t j = 0; j < c.classes; ++j) {
        const std::size_t at = std::size_t(row * c.classes + j);
        dot += dy[at] * y[at];
        magnitude += std::abs(double(dy[at])) * y[at];
      }
      const double relative = errors[row] + 2.0 * double(c.classes + 2) * kUnit;
      for (std::int64_t j = 0; j < c.classes; ++j) {
        const std::size_t at = std::size_t(row * c.classes + j);
        y_bound[at] = errors[row] * y[at];
        dx[at] = y[at] * (dy[at] - dot);
        dx_bound[at] = relative * y[at] * (std::abs(double(dy[at])) + std::abs(dot) + magnitude);
      }
    }
    check_both_within("softmax y", results.cpu.output, results.cuda.output, y, y_bound);
    check_both_within("softmax dx", results.cpu.grads[0], results.cuda.grads[0], dx, dx_bound);
  }
}

TEST_CASE("ops softmax_cross_entropy matches reference") {
  std::uint32_t seed = 6300;
  for (const SoftmaxCase& c : kSoftmaxCases) {
    CAPTURE(c.rows);
    CAPTURE(c.classes);
    const std::size_t count = std::size_t(c.rows * c.classes);
    const std::vector<float> x = ref::random_uniform(count, -c.spread, c.spread, seed++);
    const std::vector<std::int32_t> labels =
        ref::random_labels(std::size_t(c.rows), std::int32_t(c.classes), seed++);
    const float dloss = 0.7f;
    const std::int64_t rows = c.rows;
    const BothResults results =
        run_on_both({{{c.rows, c.classes}, x}},
                    [&](const std::vector<Tensor>& t) {
                      return ops::softmax_cross_entropy(
                          t[0], Tensor::from_vector({rows}, labels, t[0].device()));
                    },
                    {dloss});

    // Row loss log(sum_j exp(x_j - max)) - (x_label - max): the sum's relative error, at most
    // e / 2, becomes an absolute error of the log, and the log and the two subtractions each
    // round once. The mean over rows (a double sum rounded once, then a multiplication by the
    // rounded 1 / rows) adds three roundings of the loss. Everything is doubled as margin.
    const Vec errors = probability_errors(c.rows, c.classes, x);
    const Vec probabilities = ref::softmax(c.rows, c.classes, to_double(x));
    const Vec row_losses = ref::cross_entropy(c.rows, c.classes, to_double(x), labels);
    double loss = 0.0, loss_bound = 0.0;
    for (std::int64_t row = 0; row < c.rows; ++row) {
      const auto begin = x.begin() + row * c.classes;
      const double max = *std::max_element(begin, begin + c.classes);
      const double label_gap = max - x[std::size_t(row * c.classes + labels[row])];
      const double log_sum = row_losses[row] - label_gap;
      loss += row_losses[row] / double(c.rows);
      loss_bound +=
          (errors[row] +
           2.0 * kUnit * (std::abs(log_sum) + 2.0 * label_gap + std::abs(row_losses[row]))) /
          double(c.rows);
    }
    loss_bound += 6.0 * kUnit * std::abs(loss);
    check_both_within("softmax_cross_entropy loss", results.cpu.output, results.cuda.output, {loss},
                      {loss_bound});

    // dlogits = dloss / rows * (p - onehot(label)): the probability's error e p, and the
    // roundings of dloss / rows, the subtraction and the product, doubled as margin.
    Vec dlogits(count), dlogits_bound(count);
    for (std::int64_t row = 0; row < c.rows; ++row)
      for (std::int64_t j = 0; j < c.classes; ++j) {
        const std::size_t at = std::size_t(row * c.classes + j);
        const double onehot = j == labels[row] ? 1.0 : 0.0;
        const double weight = double(dloss) / double(c.rows);
        dlogits[at] = weight * (probabilities[at] - onehot);
        dlogits_bound[at] = std::abs(weight) * (errors[row] * probabilities[at] +
                                                6.0 * kUnit * (probabilities[at] + onehot));
      }
    check_both_within("softmax_cross_entropy dlogits", results.cpu.grads[0], results.cuda.grads[0],
                      dlogits, dlogits_bound);
  }
}

// --- Sum and mean -----------------------------------------------------------------------------
//
// Both backends accumulate in double and round once to float. Bound: that rounding, doubled as
// margin, plus twice the worst-case double summation error over K terms:
// 2^-23 |sum| + 4 K 2^-53 sum |x|. The mean multiplies by the rounded 1 / K, two more roundings.

TEST_CASE("ops sum and mean match reference") {
  const std::vector<Shape> shapes = {{1}, {1001}, {3, 7, 11}, {2, 5000}};
  std::uint32_t seed = 6400;
  for (const Shape& shape : shapes) {
    CAPTURE(to_string(shape));
    const std::size_t count = std::size_t(numel(shape));
    const std::vector<float> x = ref::random_uniform(count, -1.0f, 2.0f, seed++);
    double total = 0.0, magnitude = 0.0;
    for (const float value : x) {
      total += value;
      magnitude += std::abs(double(value));
    }
    const double summation = 4.0 * double(count) * std::ldexp(magnitude, -53);
    const float dy = -1.25f;

    const BothResults sums = run_on_both(
        {{shape, x}}, [](const std::vector<Tensor>& t) { return ops::sum(t[0]); }, {dy});
    check_both_within("sum", sums.cpu.output, sums.cuda.output, {total},
                      {std::ldexp(std::abs(total), -23) + summation});
    check_same_bits("sum dx", sums.cpu.grads[0], sums.cuda.grads[0]);
    CHECK(sums.cuda.grads[0] == std::vector<float>(count, dy));

    const BothResults means = run_on_both(
        {{shape, x}}, [](const std::vector<Tensor>& t) { return ops::mean(t[0]); }, {dy});
    const double mean = total / double(count);
    check_both_within("mean", means.cpu.output, means.cuda.output, {mean},
                      {std::ldexp(std::abs(mean), -21) + summation / double(count)});
    check_same_bits("mean dx", means.cpu.grads[0], means.cuda.grads[0]);
    CHECK(means.cuda.grads[0] ==
          std::vector<float>(count, dy * (1.0f / static_cast<float>(count))));
  }
}

}  // namespace
}  // namespace dsn::backend_test
