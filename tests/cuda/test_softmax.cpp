// CUDA softmax and softmax cross-entropy against the double references in
// tests/support/reference.h, within the float accumulation bound derived in
// kernels/cuda/softmax.cu, and the cross-entropy backward against the CPU twin bit for bit.
// Also large logits, in-place calls, invalid labels and empty batches.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda/softmax.h"
#include "kernels/softmax.h"
#include "tests/cuda/device_buffer.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::DeviceBuffer;

const double kUnit = std::ldexp(1.0, -24);

struct Size {
  std::int64_t rows, classes;
};

// 7 classes is the emotion label count. 37 rows fill more than one block of 8 warps. 33, 100
// and 1000 classes make the lanes loop with a partial last step.
const Size kSizes[] = {{1, 1}, {5, 7}, {37, 7}, {3, 33}, {16, 32}, {2, 100}, {3, 1000}};

// Checks |got - expected| <= allowed element by element and reports the worst element.
void check_within(const std::vector<float>& got, const Vec& expected, const Vec& allowed) {
  REQUIRE(got.size() == expected.size());
  std::size_t failures = 0, worst = 0;
  double worst_ratio = -1.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double error = std::abs(static_cast<double>(got[i]) - expected[i]);
    if (!(error <= allowed[i])) ++failures;
    const double ratio = std::isnan(error) ? INFINITY : error / allowed[i];
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  CHECK_MESSAGE(
      failures == 0,
      fmt::format("{} of {} elements out of bound; worst at {}: got {:.9g}, expected "
                  "{:.9g}, allowed error {:.3g}",
                  failures, got.size(), worst, got[worst], expected[worst], allowed[worst]));
}

// Per row: the logits' maximum, their range (max - min) and log(sum(exp(x - max))).
struct RowStats {
  double max, range, log_sum;
};

std::vector<RowStats> row_stats(std::int64_t rows, std::int64_t classes, const Vec& x) {
  std::vector<RowStats> stats;
  for (std::int64_t row = 0; row < rows; ++row) {
    const auto begin = x.begin() + row * classes, end = begin + classes;
    const double max = *std::max_element(begin, end), min = *std::min_element(begin, end);
    double sum = 0.0;
    for (auto it = begin; it != end; ++it) sum += std::exp(*it - max);
    stats.push_back({max, max - min, std::log(sum)});
  }
  return stats;
}

// The bound of kernels/cuda/softmax.cu, doubled: (K + 2r + 10) 2^-24 relative to each
// probability. The absolute floor covers probabilities that underflow float.
Vec probability_bound(std::int64_t rows, std::int64_t classes, const Vec& x, const Vec& y) {
  const std::vector<RowStats> stats = row_stats(rows, classes, x);
  Vec allowed(y.size());
  for (std::int64_t i = 0; i < rows * classes; ++i) {
    const RowStats& row = stats[static_cast<std::size_t>(i / classes)];
    allowed[i] = 2.0 * (classes + 2.0 * row.range + 10.0) * kUnit * y[i] + 1e-38;
  }
  return allowed;
}

// loss = log(sum) - (x[label] - max): the sum's relative error becomes an absolute one, and
// logf and the two subtractions add a rounding of their operands each.
Vec loss_bound(std::int64_t rows, std::int64_t classes, const Vec& x,
               const std::vector<std::int32_t>& labels) {
  const std::vector<RowStats> stats = row_stats(rows, classes, x);
  Vec allowed(static_cast<std::size_t>(rows));
  for (std::int64_t row = 0; row < rows; ++row) {
    const RowStats& s = stats[static_cast<std::size_t>(row)];
    const double label_offset = std::abs(x[row * classes + labels[row]] - s.max);
    allowed[row] =
        2.0 * (classes + 2.0 * s.range + 10.0) * kUnit * (1.0 + std::abs(s.log_sum) + label_offset);
  }
  return allowed;
}

// Checks that two float arrays hold the same bits, NaN included.
void check_identical(const std::vector<float>& got, const std::vector<float>& expected) {
  REQUIRE(got.size() == expected.size());
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &expected[i], sizeof(float)) != 0 && mismatches++ == 0) first = i;
  }
  CHECK_MESSAGE(mismatches == 0,
                fmt::format("{} of {} elements differ; first at {}: got {:.9g}, expected {:.9g}",
                            mismatches, got.size(), first, got[first], expected[first]));
}

TEST_CASE("cuda softmax within float rounding") {
  std::uint32_t seed = 7000;
  for (const Size size : kSizes) {
    CAPTURE(size.rows);
    CAPTURE(size.classes);
    const std::int64_t count = size.rows * size.classes;
    const std::vector<float> x = ref::random_uniform(count, -8.0f, 8.0f, ++seed);
    const std::vector<float> dy = ref::random_uniform(count, -1.0f, 1.0f, seed + 100);
    DeviceBuffer<float> x_d(x), y_d(count), dy_d(dy), dx_d(count);

    cuda::softmax_forward(size.rows, size.classes, x_d.get(), y_d.get(), nullptr);
    const std::vector<float> y = y_d.to_host();
    const Vec x_ref = ref::to_double(x);
    const Vec y_ref = ref::softmax(size.rows, size.classes, x_ref);
    check_within(y, y_ref, probability_bound(size.rows, size.classes, x_ref, y_ref));

    // Backward from the device's y: dx = y (dy - sum(dy y)) in double, bounded by K + 3
    // roundings of y (|dy| + sum |dy y|).
    cuda::softmax_backward(size.rows, size.classes, y_d.get(), dy_d.get(), dx_d.get(), nullptr);
    Vec dx_ref(count), allowed(count);
    for (std::int64_t row = 0; row < size.rows; ++row) {
      double dot = 0.0, magnitude = 0.0;
      for (std::int64_t j = row * size.classes; j < (row + 1) * size.classes; ++j) {
        dot += static_cast<double>(dy[j]) * y[j];
        magnitude += std::abs(static_cast<double>(dy[j]) * y[j]);
      }
      for (std::int64_t j = row * size.classes; j < (row + 1) * size.classes; ++j) {
        dx_ref[j] = y[j] * (dy[j] - dot);
        allowed[j] =
            2.0 * (size.classes + 3.0) * kUnit * y[j] * (std::abs(dy[j]) + magnitude) + 1e-38;
      }
    }
    check_within(dx_d.to_host(), dx_ref, allowed);
  }
}

TEST_CASE("cuda softmax cross-entropy forward and backward") {
  std::uint32_t seed = 7100;
  for (const Size size : kSizes) {
    CAPTURE(size.rows);
    CAPTURE(size.classes);
    const std::int64_t count = size.rows * size.classes;
    const std::vector<float> logits = ref::random_uniform(count, -8.0f, 8.0f, ++seed);
    const std::vector<std::int32_t> labels =
        ref::random_labels(size.rows, static_cast<std::int32_t>(size.classes), seed);
    const std::vector<float> dloss = ref::random_uniform(size.rows, -1.0f, 1.0f, seed + 100);
    DeviceBuffer<float> logits_d(logits), loss_d(size.rows), probs_d(count);
    DeviceBuffer<float> dloss_d(dloss), dlogits_d(count);
    DeviceBuffer<std::int32_t> labels_d(labels);

    cuda::softmax_cross_entropy_forward(size.rows, size.classes, logits_d.get(), labels_d.get(),
                                        loss_d.get(), probs_d.get(), nullptr);
    const Vec x_ref = ref::to_double(logits);
    const Vec probs_ref = ref::softmax(size.rows, size.classes, x_ref);
    check_within(probs_d.to_host(), probs_ref,
                 probability_bound(size.rows, size.classes, x_ref, probs_ref));
    check_within(loss_d.to_host(), ref::cross_entropy(size.rows, size.classes, x_ref, labels),
                 loss_bound(size.rows, size.classes, x_ref, labels));

    // The backward from the device's probs, against the CPU twin on the same probs.
    const std::vector<float> probs = probs_d.to_host();
    std::vector<float> expected(count);
    cpu::softmax_cross_entropy_backward(size.rows, size.classes, probs.data(), labels.data(),
                                        dloss.data(), expected.data());
    cuda::softmax_cross_entropy_backward(size.rows, size.classes, probs_d.get(), labels_d.get(),
                                         dloss_d.get(), dlogits_d.get(), nullptr);
    check_identical(dlogits_d.to_host(), expected);
  }
}

TEST_CASE("cuda softmax is stable for large logits") {
  // Logits near 1000 overflow exp unless the row maximum is subtracted. The reference takes
  // each float's exact offset from 1000.
  const std::int64_t rows = 9, classes = 7, count = rows * classes;
  std::vector<float> shifted = ref::random_uniform(count, -3.0f, 3.0f, 7200);
  for (float& value : shifted) value += 1000.0f;
  Vec offsets(count);
  for (std::int64_t i = 0; i < count; ++i) offsets[i] = static_cast<double>(shifted[i]) - 1000.0;
  const std::vector<std::int32_t> labels = ref::random_labels(rows, classes, 7201);
  DeviceBuffer<float> x_d(shifted), y_d(count), loss_d(rows), probs_d(count);
  DeviceBuffer<std::int32_t> labels_d(labels);

  cuda::softmax_forward(rows, classes, x_d.get(), y_d.get(), nullptr);
  cuda::softmax_cross_entropy_forward(rows, classes, x_d.get(), labels_d.get(), loss_d.get(),
                                      probs_d.get(), nullptr);
  const Vec y_ref = ref::softmax(rows, classes, offsets);
  const Vec allowed = probability_bound(rows, classes, offsets, y_ref);
  check_within(y_d.to_host(), y_ref, allowed);
  check_within(probs_d.to_host(), y_ref, allowed);
  check_within(loss_d.to_host(), ref::cross_entropy(rows, classes, offsets, labels),
               loss_bound(rows, classes, offsets, labels));
}

TEST_CASE("cuda softmax in place matches out of place") {
  const std::int64_t rows = 11, classes = 40, count = rows * classes;
  const std::vector<float> x = ref::random_uniform(count, -5.0f, 5.0f, 7300);
  const std::vector<float> dy = ref::random_uniform(count, -1.0f, 1.0f, 7301);
  const std::vector<std::int32_t> labels = ref::random_labels(rows, classes, 7302);
  const std::vector<float> dloss = ref::random_uniform(rows, -1.0f, 1.0f, 7303);
  DeviceBuffer<float> x_d(x), y_d(count), in_place(x), dy_d(dy), dx_d(count), dy_in_place(dy);
  DeviceBuffer<std::int32_t> labels_d(labels);
  DeviceBuffer<float> loss_d(rows), loss_in_place(rows), dloss_d(dloss), dlogits_d(count);

  cuda::softmax_forward(rows, classes, x_d.get(), y_d.get(), nullptr);
  cuda::softmax_forward(rows, classes, in_place.get(), in_place.get(), nullptr);
  check_identical(in_place.to_host(), y_d.to_host());

  cuda::softmax_backward(rows, classes, y_d.get(), dy_d.get(), dx_d.get(), nullptr);
  cuda::softmax_backward(rows, classes, y_d.get(), dy_in_place.get(), dy_in_place.get(), nullptr);
  check_identical(dy_in_place.to_host(), dx_d.to_host());

  DeviceBuffer<float> probs_d(count), logits_in_place(x);
  cuda::softmax_cross_entropy_forward(rows, classes, x_d.get(), labels_d.get(), loss_d.get(),
                                      probs_d.get(), nullptr);
  cuda::softmax_cross_entropy_forward(rows, classes, logits_in_place.get(), labels_d.get(),
                                      loss_in_place.get(), logits_in_place.get(), nullptr);
  check_identical(logits_in_place.to_host(), probs_d.to_host());
  check_identical(loss_in_place.to_host(), loss_d.to_host());

  cuda::softmax_cross_entropy_backward(rows, classes, probs_d.get(), labels_d.get(), dloss_d.get(),
                                       dlogits_d.get(), nullptr);
  cuda::softmax_cross_entropy_backward(rows, classes, logits_in_place.get(), labels_d.get(),
                                       dloss_d.get(), logits_in_place.get(), nullptr);
  check_identical(logits_in_place.to_host(), dlogits_d.to_host());
}

TEST_CASE("cuda softmax invalid labels give NaN") {
  const std::int64_t rows = 4, classes = 7, count = rows * classes;
  const std::vector<float> logits = ref::random_uniform(count, -3.0f, 3.0f, 7400);
  const std::vector<std::int32_t> labels = {2, -1, 7, 6};
  const std::vector<float> dloss(rows, 1.0f);
  DeviceBuffer<float> logits_d(logits), loss_d(rows), probs_d(count), dloss_d(dloss);
  DeviceBuffer<float> dlogits_d(count);
  DeviceBuffer<std::int32_t> labels_d(labels);
  cuda::softmax_cross_entropy_forward(rows, classes, logits_d.get(), labels_d.get(), loss_d.get(),
                                      probs_d.get(), nullptr);
  cuda::softmax_cross_entropy_backward(rows, classes, probs_d.get(), labels_d.get(), dloss_d.get(),
                                       dlogits_d.get(), nullptr);
  const std::vector<float> loss = loss_d.to_host(), dlogits = dlogits_d.to_host();
  for (std::int64_t row = 0; row < rows; ++row) {
    CAPTURE(row);
    const bool valid = labels[row] >= 0 && labels[row] < classes;
    CHECK(std::isnan(loss[row]) == !valid);
    for (std::int64_t j = 0; j < classes; ++j) {
      CHECK(std::isnan(dlogits[row * classes + j]) == !valid);
    }
  }
}

TEST_CASE("cuda softmax empty and invalid sizes") {
  DeviceBuffer<float> buffer(8);
  DeviceBuffer<std::int32_t> labels(std::vector<std::int32_t>{0});
  CHECK_NOTHROW(cuda::softmax_forward(0, 7, buffer.get(), buffer.get(), nullptr));
  CHECK_NOTHROW(cuda::softmax_cross_entropy_forward(0, 7, buffer.get(), labels.get(), buffer.get(),
                                                    buffer.get(), nullptr));
  CHECK_THROWS_AS(cuda::softmax_forward(1, 0, buffer.get(), buffer.get(), nullptr), Error);
  CHECK_THROWS_AS(cuda::softmax_backward(-1, 7, buffer.get(), buffer.get(), buffer.get(), nullptr),
                  Error);
  CHECK_THROWS_AS(cuda::softmax_cross_entropy_backward(1, 0, buffer.get(), labels.get(),
                                                       buffer.get(), buffer.get(), nullptr),
                  Error);
}

}  // namespace
}  // namespace dsn
