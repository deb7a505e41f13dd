// Batch normalisation on the CPU: per-channel statistics over the N * H * W elements of
// x (N, C, H, W), contiguous float32; gamma, beta and all statistics are (C).
//
// Design choice: one OpenMP work unit per channel, with every sum over that channel accumulated
// serially in double. The fixed summation order makes the results independent of the thread
// count. The mean and the variance take two passes (mean first, then squared deviations)
// because the one-pass E[x^2] - E[x]^2 cancels badly on activations with a large mean.
#include "kernels/batch_norm.h"

#include <cmath>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cpu/blas.h"

namespace dsn::cpu {
namespace {

void check_shape(const BatchNormShape& shape) {
  DSN_CHECK(shape.n > 0 && shape.c > 0 && shape.hw > 0,
            "BatchNormShape: n = {}, c = {}, hw = {} must be positive", shape.n, shape.c, shape.hw);
  DSN_CHECK(shape.eps > 0.0, "BatchNormShape: eps = {} must be positive", shape.eps);
}

bool parallel_worth_it(const BatchNormShape& shape) {
  return shape.n * shape.c * shape.hw >= detail::kParallelMinElements;
}

// Calls visit(offset) for each of the N rows of H * W elements of channel c, with the row's
// offset inside the (N, C, H, W) tensor.
template <typename Visit>
void for_each_row(const BatchNormShape& shape, std::int64_t c, Visit visit) {
  for (std::int64_t n = 0; n < shape.n; ++n) visit((n * shape.c + c) * shape.hw);
}

}  // namespace

void batch_norm_forward_train(const BatchNormShape& shape, const float* x, const float* gamma,
                              const float* beta, float* y, float* save_mean, float* save_inv_std,
                              float* running_mean, float* running_var) {
  check_shape(shape);
  const std::int64_t count = shape.n * shape.hw;
  DSN_CHECK(count > 1,
            "batch normalisation in training mode needs more than one value per channel (got "
            "N * H * W = {}); use a larger batch or inference mode",
            count);
#pragma omp parallel for schedule(static) if (parallel_worth_it(shape))
  for (std::int64_t c = 0; c < shape.c; ++c) {
    double total = 0.0;
    for_each_row(shape, c, [&](std::int64_t row) {
      for (std::int64_t i = 0; i < shape.hw; ++i) total += x[row + i];
    });
    const double mean = total / static_cast<double>(count);

    double squares = 0.0;
    for_each_row(shape, c, [&](std::int64_t row) {
      for (std::int64_t i = 0; i < shape.hw; ++i) {
        const double deviation = x[row + i] - mean;
        squares += deviation * deviation;
      }
    });
    const double variance = squares / static_cast<double>(count);
    const double inv_std = 1.0 / std::sqrt(variance + shape.eps);

    const double scale = gamma[c] * inv_std;
    const double shift = beta[c] - mean * scale;
    for_each_row(shape, c, [&](std::int64_t row) {
      for (std::int64_t i = 0; i < shape.hw; ++i) {
        y[row + i] = static_cast<float>(x[row + i] * scale + shift);
      }
    });

    save_mean[c] = static_cast<float>(mean);
    save_inv_std[c] = static_cast<float>(inv_std);
    if (running_mean != nullptr) {
      running_mean[c] =
          static_cast<float>((1.0 - shape.momentum) * running_mean[c] + shape.momentum * mean);
    }
    if (running_var != nullptr) {
      const double unbiased = squares / static_cast<double>(count - 1);
      running_var[c] =
          static_cast<float>((1.0 - shape.momentum) * running_var[c] + shape.momentum * unbiased);
    }
  }
}

void batch_norm_forward_inference(const BatchNormShape& shape, const float* x, const float* gamma,
                                  const float* beta, const float* running_mean,
                                  const float* running_var, float* y) {
  check_shape(shape);
#pragma omp parallel for schedule(static) if (parallel_worth_it(shape))
  for (std::int64_t c = 0; c < shape.c; ++c) {
    const double inv_std = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + shape.eps);
    const double scale = gamma[c] * inv_std;
    const double shift = beta[c] - running_mean[c] * scale;
    for_each_row(shape, c, [&](std::int64_t row) {
      for (std::int64_t i = 0; i < shape.hw; ++i) {
        y[row + i] = static_cast<float>(x[row + i] * scale + shift);
      }
    });
  }
}

void batch_norm_backward_train(const BatchNormShape& shape, const float* x, const float* dy,
                               const float* gamma, const float* save_mean,
                               const float* save_inv_std, float* dx, float* dgamma, float* dbeta) {
  check_shape(shape);
  const double count = static_cast<double>(shape.n * shape.hw);
#pragma omp parallel for schedule(static) if (parallel_worth_it(shape))
  for (std::int64_t c = 0; c < shape.c; ++c) {
    const double mean = save_mean[c];
    const double inv_std = save_inv_std[c];

    // sum_dy = dL/dbeta, sum_dy_xhat = dL/dgamma with xhat = (x - mean) * inv_std.
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for_each_row(shape, c, [&](std::int64_t row) {
      for (std::int64_t i = 0; i < shape.hw; ++i) {
        sum_dy += dy[row + i];
        sum_dy_xhat += dy[row + i] * (x[row + i] - mean) * inv_std;
      }
    });

    // dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)): the mean and the
    // variance both depend on every x of the channel.
    const double scale = gamma[c] * inv_std;
    const double mean_dy = sum_dy / count;
    const double mean_dy_xhat = sum_dy_xhat / count;
    for_each_row(shape, c, [&](std::int64_t row) {
      for (std::int64_t i = 0; i < shape.hw; ++i) {
        const double xhat = (x[row + i] - mean) * inv_std;
        dx[row + i] = static_cast<float>(scale * (dy[row + i] - mean_dy - xhat * mean_dy_xhat));
      }
    });
    if (dgamma != nullptr) dgamma[c] = static_cast<float>(sum_dy_xhat);
    if (dbeta != nullptr) dbeta[c] = static_cast<float>(sum_dy);
  }
}

void batch_norm_backward_inference(const BatchNormShape& shape, const float* x, const float* dy,
                                   const float* gamma, const float* running_mean,
                                   const float* running_var, float* dx, float* dgamma,
                                   float* dbeta) {
  check_shape(shape);
#pragma omp parallel for schedule(static) if (parallel_worth_it(shape))
  for (std::int64_t c = 0; c < shape.c; ++c) {
    const double mean = running_mean[c];
    const double inv_std = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + shape.eps);
    const double scale = gamma[c] * inv_std;
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for_each_row(shape, c, [&](std::int64_t row) {
      for (std::int64_t i = 0; i < shape.hw; ++i) {
        sum_dy += dy[row + i];
        sum_dy_xhat += dy[row + i] * (x[row + i] - mean) * inv_std;
        dx[row + i] = static_cast<float>(dy[row + i] * scale);
      }
    });
    if (dgamma != nullptr) dgamma[c] = static_cast<float>(sum_dy_xhat);
    if (dbeta != nullptr) dbeta[c] = static_cast<float>(sum_dy);
  }
}

}  // namespace dsn::cpu
