// Softmax and softmax cross-entropy on the CPU over rows of a (rows, classes) float32 matrix.
// Each row subtracts its maximum before exponentiating and accumulates its sums in double, so
// large logits neither overflow nor lose the small probabilities. Rows are independent OpenMP
// work units.
#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cpu/blas.h"

namespace dsn::cpu {
namespace {

void check_sizes(std::int64_t rows, std::int64_t classes) {
  DSN_CHECK(rows >= 0, "softmax: row count {} must not be negative", rows);
  DSN_CHECK(classes > 0, "softmax: class count {} must be positive", classes);
}

bool parallel_worth_it(std::int64_t rows, std::int64_t classes) {
  return rows > 1 && rows * classes >= detail::kParallelMinElements;
}

// The row maximum and log(sum(exp(x - max))), from which log-probabilities follow without
// taking the log of a rounded probability.
struct RowStats {
  double max = 0.0;
  double log_sum = 0.0;
};

// Writes y = softmax(x) for one row and returns its statistics.
RowStats softmax_row(std::int64_t classes, const float* x, float* y) {
  const double max = *std::max_element(x, x + classes);
  double total = 0.0;
  for (std::int64_t j = 0; j < classes; ++j) total += std::exp(x[j] - max);
  for (std::int64_t j = 0; j < classes; ++j) {
    y[j] = static_cast<float>(std::exp(x[j] - max) / total);
  }
  return RowStats{max, std::log(total)};
}

void check_labels(std::int64_t rows, std::int64_t classes, const std::int32_t* labels) {
  for (std::int64_t row = 0; row < rows; ++row) {
    DSN_CHECK(labels[row] >= 0 && labels[row] < classes,
              "softmax cross-entropy: label {} of row {} lies outside [0, {})", labels[row], row,
              classes);
  }
}

}  // namespace

void softmax_forward(std::int64_t rows, std::int64_t classes, const float* x, float* y) {
  check_sizes(rows, classes);
#pragma omp parallel for schedule(static) if (parallel_worth_it(rows, classes))
  for (std::int64_t row = 0; row < rows; ++row) {
    softmax_row(classes, x + row * classes, y + row * classes);
  }
}

void softmax_backward(std::int64_t rows, std::int64_t classes, const float* y, const float* dy,
                      float* dx) {
  check_sizes(rows, classes);
#pragma omp parallel for schedule(static) if (parallel_worth_it(rows, classes))
  for (std::int64_t row = 0; row < rows; ++row) {
    const float* y_row = y + row * classes;
    const float* dy_row = dy + row * classes;
    float* dx_row = dx + row * classes;
    double dot = 0.0;
    for (std::int64_t j = 0; j < classes; ++j) dot += static_cast<double>(dy_row[j]) * y_row[j];
    for (std::int64_t j = 0; j < classes; ++j) {
      dx_row[j] = static_cast<float>(y_row[j] * (dy_row[j] - dot));
    }
  }
}

void softmax_cross_entropy_forward(std::int64_t rows, std::int64_t classes, const float* logits,
                                   const std::int32_t* labels, float* loss, float* probs) {
  check_sizes(rows, classes);
  check_labels(rows, classes, labels);
#pragma omp parallel for schedule(static) if (parallel_worth_it(rows, classes))
  for (std::int64_t row = 0; row < rows; ++row) {
    const float* x = logits + row * classes;
    const double label_logit = x[labels[row]];  // read before probs may overwrite the logits
    const RowStats stats = softmax_row(classes, x, probs + row * classes);
    // -log softmax(x)[label] = log(sum(exp(x - max))) - (x[label] - max)
    loss[row] = static_cast<float>(stats.log_sum - (label_logit - stats.max));
  }
}

void softmax_cross_entropy_backward(std::int64_t rows, std::int64_t classes, const float* probs,
                                    const std::int32_t* labels, const float* dloss,
                                    float* dlogits) {
  check_sizes(rows, classes);
  check_labels(rows, classes, labels);
#pragma omp parallel for schedule(static) if (parallel_worth_it(rows, classes))
  for (std::int64_t row = 0; row < rows; ++row) {
    const float* p = probs + row * classes;
    float* d = dlogits + row * classes;
    for (std::int64_t j = 0; j < classes; ++j) {
      const float target = j == labels[row] ? 1.0f : 0.0f;
      d[j] = dloss[row] * (p[j] - target);
    }
  }
}

}  // namespace dsn::cpu
