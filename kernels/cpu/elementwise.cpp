// Element-wise kernels on the CPU over contiguous float32 arrays. Every loop reads x[i] before
// it writes y[i], so the in-place calls that kernels/elementwise.h allows are safe.
//
// Dropout draws one Philox block per four consecutive stream elements, because calling
// philox_uniform per element would compute every block four times. It converts each 32-bit word
// to a float exactly as philox_uniform does, so the mask is the same bit for bit.
#include "kernels/elementwise.h"

#include <algorithm>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cpu/blas.h"
#include "kernels/philox.h"

namespace dsn::cpu {
namespace {

void check_count(std::int64_t count) {
  DSN_CHECK(count >= 0, "element count {} must not be negative", count);
}

}  // namespace

void fill(std::int64_t count, float value, float* y) {
  check_count(count);
  std::fill(y, y + count, value);
}

void relu_forward(std::int64_t count, const float* x, float* y) {
  check_count(count);
#pragma omp parallel for simd schedule(static) if (count >= detail::kParallelMinElements)
  for (std::int64_t i = 0; i < count; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward(std::int64_t count, const float* y, const float* dy, float* dx) {
  check_count(count);
#pragma omp parallel for simd schedule(static) if (count >= detail::kParallelMinElements)
  for (std::int64_t i = 0; i < count; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void add(std::int64_t count, const float* a, const float* b, float* y) {
  check_count(count);
#pragma omp parallel for simd schedule(static) if (count >= detail::kParallelMinElements)
  for (std::int64_t i = 0; i < count; ++i) y[i] = a[i] + b[i];
}

void accumulate(std::int64_t count, const float* x, float* y) {
  check_count(count);
#pragma omp parallel for simd schedule(static) if (count >= detail::kParallelMinElements)
  for (std::int64_t i = 0; i < count; ++i) y[i] += x[i];
}

void scale(std::int64_t count, float alpha, const float* x, float* y) {
  check_count(count);
#pragma omp parallel for simd schedule(static) if (count >= detail::kParallelMinElements)
  for (std::int64_t i = 0; i < count; ++i) y[i] = alpha * x[i];
}

void dropout(std::int64_t count, const DropoutParams& params, const float* x, float* y) {
  check_count(count);
  DSN_CHECK(params.p >= 0.0f && params.p < 1.0f, "dropout probability p = {} must lie in [0, 1)",
            params.p);
  if (count == 0) return;
  if (params.p == 0.0f) {
    if (x != y) std::copy(x, x + count, y);
    return;
  }
  const float keep_scale = 1.0f / (1.0f - params.p);
  // Stream element e = offset + i lives in lane e % 4 of Philox block e / 4.
  const std::uint64_t first = params.offset;
  const std::uint64_t last = params.offset + static_cast<std::uint64_t>(count);
  const std::uint64_t first_block = first / 4;
  const std::uint64_t end_block = (last + 3) / 4;
#pragma omp parallel for schedule(static) if (count >= detail::kParallelMinElements)
  for (std::uint64_t block = first_block; block < end_block; ++block) {
    const Philox4x32 words = philox4x32(block, params.seed);
    for (std::uint64_t lane = 0; lane < 4; ++lane) {
      const std::uint64_t element = block * 4 + lane;
      if (element < first || element >= last) continue;
      const std::uint64_t i = element - first;
      const float u = static_cast<float>(words.v[lane] >> 8) * (1.0f / 16777216.0f);
      y[i] = u >= params.p ? x[i] * keep_scale : 0.0f;
    }
  }
}

void bias_add(std::int64_t n, std::int64_t c, std::int64_t hw, const float* bias, float* y) {
  DSN_CHECK(n >= 0 && c > 0 && hw > 0, "bias_add sizes n = {}, c = {}, H * W = {} are invalid", n,
            c, hw);
#pragma omp parallel for schedule(static) if (n * c * hw >= detail::kParallelMinElements)
  for (std::int64_t plane = 0; plane < n * c; ++plane) {
    const float b = bias[plane % c];
    float* row = y + plane * hw;
    for (std::int64_t i = 0; i < hw; ++i) row[i] += b;
  }
}

void bias_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy, float* dbias) {
  DSN_CHECK(n >= 0 && c > 0 && hw > 0, "bias_backward sizes n = {}, c = {}, H * W = {} are invalid",
            n, c, hw);
  // One channel per work unit, summed serially in double: the result does not depend on the
  // thread count.
#pragma omp parallel for schedule(static) if (n * c * hw >= detail::kParallelMinElements)
  for (std::int64_t channel = 0; channel < c; ++channel) {
    double total = 0.0;
    for (std::int64_t image = 0; image < n; ++image) {
      const float* row = dy + (image * c + channel) * hw;
      for (std::int64_t i = 0; i < hw; ++i) total += row[i];
    }
    dbias[channel] = static_cast<float>(total);
  }
}

}  // namespace dsn::cpu
