// CUDA multi-head softmax cross-entropy. The forward is checked against the double references
// head by head, within the float accumulation bound of kernels/cuda/softmax.cu, and every head
// against the single-head CUDA kernel bit for bit. The backward must match the CPU twin bit for
// bit. Invalid labels give NaN.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda/softmax.h"
#include "kernels/cuda/softmax_heads.h"
#include "kernels/softmax_heads.h"
#include "tests/cuda/device_buffer.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::DeviceBuffer;

const double kUnit = std::ldexp(1.0, -24);

// The seven heads of DSN-VGG-Face (six sides and the fusion) over seven classes at batch 5 and
// 16, and wider rows that make the lanes loop.
const SoftmaxHeads kShapes[] = {{7, 5, 7}, {7, 16, 7}, {3, 4, 33}, {2, 3, 1000}, {1, 1, 1}};

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

// Checks the probabilities and losses of every stacked row (head * rows + row) against the
// double references within twice the bound of kernels/cuda/softmax.cu, reporting the worst
// element of each.
void check_forward(const SoftmaxHeads& shape, const std::vector<float>& logits,
                   const std::vector<std::int32_t>& labels, const std::vector<float>& loss,
                   const std::vector<float>& probs) {
  const std::int64_t stacked = shape.heads * shape.rows, classes = shape.classes;
  const Vec x = ref::to_double(logits);
  const Vec probs_ref = ref::softmax(stacked, classes, x);
  std::vector<std::int32_t> stacked_labels;
  for (std::int64_t head = 0; head < shape.heads; ++head) {
    stacked_labels.insert(stacked_labels.end(), labels.begin(), labels.end());
  }
  const Vec loss_ref = ref::cross_entropy(stacked, classes, x, stacked_labels);

  double worst_probability = 0.0, worst_loss = 0.0;
  for (std::int64_t row = 0; row < stacked; ++row) {
    const auto begin = x.begin() + row * classes, end = begin + classes;
    const double max = *std::max_element(begin, end), min = *std::min_element(begin, end);
    const double factor = 2.0 * (classes + 2.0 * (max - min) + 10.0) * kUnit;
    for (std::int64_t j = row * classes; j < (row + 1) * classes; ++j) {
      const double ratio = std::abs(probs[j] - probs_ref[j]) / (factor * probs_ref[j] + 1e-38);
      worst_probability = std::max(worst_probability, std::isnan(ratio) ? INFINITY : ratio);
    }
    const double log_sum = loss_ref[row] + (x[row * classes + stacked_labels[row]] - max);
    const double allowed =
        factor * (1.0 + std::abs(log_sum) + std::abs(x[row * classes + stacked_labels[row]] - max));
    const double ratio = std::abs(loss[row] - loss_ref[row]) / allowed;
    worst_loss = std::max(worst_loss, std::isnan(ratio) ? INFINITY : ratio);
  }
  CHECK_MESSAGE(
      worst_probability <= 1.0,
      fmt::format("worst probability error is {:.3g} times the bound", worst_probability));
  CHECK_MESSAGE(worst_loss <= 1.0,
                fmt::format("worst loss error is {:.3g} times the bound", worst_loss));
}

TEST_CASE("cuda softmax heads forward and backward") {
  std::uint32_t seed = 8000;
  for (const SoftmaxHeads& shape : kShapes) {
    CAPTURE(shape.heads);
    CAPTURE(shape.rows);
    CAPTURE(shape.classes);
    const std::int64_t count = shape.heads * shape.rows * shape.classes;
    const std::vector<float> logits = ref::random_uniform(count, -8.0f, 8.0f, ++seed);
    const std::vector<std::int32_t> labels =
        ref::random_labels(shape.rows, static_cast<std::int32_t>(shape.classes), seed);
    const std::vector<float> dloss =
        ref::random_uniform(shape.heads * shape.rows, -1.0f, 1.0f, seed + 100);
    DeviceBuffer<float> logits_d(logits), loss_d(shape.heads * shape.rows), probs_d(count);
    DeviceBuffer<float> dloss_d(dloss), dlogits_d(count);
    DeviceBuffer<std::int32_t> labels_d(labels);

    cuda::softmax_heads_cross_entropy_forward(shape, logits_d.get(), labels_d.get(), loss_d.get(),
                                              probs_d.get(), nullptr);
    const std::vector<float> probs = probs_d.to_host();
    check_forward(shape, logits, labels, loss_d.to_host(), probs);

    std::vector<float> expected(count);
    cpu::softmax_heads_cross_entropy_backward(shape, probs.data(), labels.data(), dloss.data(),
                                              expected.data());
    cuda::softmax_heads_cross_entropy_backward(shape, probs_d.get(), labels_d.get(), dloss_d.get(),
                                               dlogits_d.get(), nullptr);
    check_identical(dlogits_d.to_host(), expected);
  }
}

TEST_CASE("cuda softmax heads match single head") {
  const SoftmaxHeads shape{7, 6, 7};
  const std::int64_t head_size = shape.rows * shape.classes, count = shape.heads * head_size;
  const std::vector<float> logits = ref::random_uniform(count, -10.0f, 10.0f, 8100);
  const std::vector<std::int32_t> labels = ref::random_labels(shape.rows, 7, 8101);
  DeviceBuffer<float> logits_d(logits), loss_d(shape.heads * shape.rows), probs_d(count);
  DeviceBuffer<std::int32_t> labels_d(labels);
  cuda::softmax_heads_cross_entropy_forward(shape, logits_d.get(), labels_d.get(), loss_d.get(),
                                            probs_d.get(), nullptr);
  const std::vector<float> loss = loss_d.to_host(), probs = probs_d.to_host();

  DeviceBuffer<float> head_loss(shape.rows), head_probs(head_size);
  for (std::int64_t head = 0; head < shape.heads; ++head) {
    CAPTURE(head);
    cuda::softmax_cross_entropy_forward(shape.rows, shape.classes,
                                        logits_d.get() + head * head_size, labels_d.get(),
                                        head_loss.get(), head_probs.get(), nullptr);
    check_identical(head_loss.to_host(),
                    std::vector<float>(loss.begin() + head * shape.rows,
                                       loss.begin() + (head + 1) * shape.rows));
    check_identical(head_probs.to_host(),
                    std::vector<float>(probs.begin() + head * head_size,
                                       probs.begin() + (head + 1) * head_size));
  }
}

TEST_CASE("cuda softmax heads invalid labels") {
  const SoftmaxHeads shape{3, 3, 5};
  const std::int64_t count = shape.heads * shape.rows * shape.classes;
  const std::vector<float> logits = ref::random_uniform(count, -3.0f, 3.0f, 8200);
  const std::vector<std::int32_t> labels = {4, 5, -2};
  DeviceBuffer<float> logits_d(logits), loss_d(shape.heads * shape.rows), probs_d(count);
  DeviceBuffer<float> dloss_d(std::vector<float>(shape.heads * shape.rows, 1.0f));
  DeviceBuffer<float> dlogits_d(count);
  DeviceBuffer<std::int32_t> labels_d(labels);
  cuda::softmax_heads_cross_entropy_forward(shape, logits_d.get(), labels_d.get(), loss_d.get(),
                                            probs_d.get(), nullptr);
  cuda::softmax_heads_cross_entropy_backward(shape, probs_d.get(), labels_d.get(), dloss_d.get(),
                                             dlogits_d.get(), nullptr);

  const std::vector<float> loss = loss_d.to_host(), dlogits = dlogits_d.to_host();
  for (std::int64_t head = 0; head < shape.heads; ++head) {
    for (std::int64_t row = 0; row < shape.rows; ++row) {
      CAPTURE(head);
      CAPTURE(row);
      const bool valid = row == 0;
      const std::int64_t stacked = head * shape.rows + row;
      CHECK(std::isnan(loss[stacked]) == !valid);
      CHECK(std::isnan(dlogits[stacked * shape.classes]) == !valid);
    }
  }

  CHECK_THROWS_AS(
      cuda::softmax_heads_cross_entropy_forward({0, 3, 5}, logits_d.get(), labels_d.get(),
                                                loss_d.get(), probs_d.get(), nullptr),
      Error);
  CHECK_NOTHROW(cuda::softmax_heads_cross_entropy_backward(
      {7, 0, 5}, probs_d.get(), labels_d.get(), dloss_d.get(), dlogits_d.get(), nullptr));
}

}  // namespace
}  // namespace dsn
