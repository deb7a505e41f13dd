// CPU softmax and softmax cross-entropy against the double reference and central differences
// of it, plus large logits (shift invariance) and label validation.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "engine/error.h"
#include "kernels/softmax.h"
#include "tests/cpu/tolerance.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::kForward;
using test::kGradient;

struct Size {
  std::int64_t rows, classes;
};

// 7 classes is the emotion label count of the AFEW data set; 1 class and 1 row are edge cases.
const Size kSizes[] = {{5, 7}, {1, 1}, {3, 17}, {1, 1000}};

TEST_CASE("softmax forward and backward") {
  std::uint32_t seed = 3000;
  for (const Size size : kSizes) {
    CAPTURE(size.rows);
    CAPTURE(size.classes);
    const std::int64_t count = size.rows * size.classes;
    const std::vector<float> x = ref::random_uniform(count, -3.0f, 3.0f, ++seed);
    const std::vector<float> g = ref::random_uniform(count, -1.0f, 1.0f, seed + 50);
    std::vector<float> y(count), dx(count, 4.0f);
    cpu::softmax_forward(size.rows, size.classes, x.data(), y.data());
    DSN_CHECK_CLOSE(y, ref::softmax(size.rows, size.classes, ref::to_double(x)), kForward);

    cpu::softmax_backward(size.rows, size.classes, y.data(), g.data(), dx.data());
    const Vec g_d = ref::to_double(g);
    const Vec numeric = ref::numeric_gradient(
        [&](const Vec& v) { return ref::dot(g_d, ref::softmax(size.rows, size.classes, v)); },
        ref::to_double(x));
    DSN_CHECK_CLOSE(dx, numeric, kGradient);
  }
}

// softmax(x + 1000) = softmax(x); without the row maximum subtracted, exp(1000) overflows.
TEST_CASE("softmax is stable for large logits") {
  const std::int64_t rows = 3, classes = 7;
  const std::vector<float> x = ref::random_uniform(rows * classes, -3.0f, 3.0f, 3100);
  std::vector<float> shifted(x.size()), y(x.size()), loss(rows), probs(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) shifted[i] = x[i] + 1000.0f;
  // The reference input is the exact offset of each shifted float from 1000, because the
  // kernel receives the rounded floats.
  Vec offsets(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) offsets[i] = static_cast<double>(shifted[i]) - 1000.0;

  cpu::softmax_forward(rows, classes, shifted.data(), y.data());
  DSN_CHECK_CLOSE(y, ref::softmax(rows, classes, offsets), kForward);

  const std::vector<std::int32_t> labels = {0, 6, 3};
  cpu::softmax_cross_entropy_forward(rows, classes, shifted.data(), labels.data(), loss.data(),
                                     probs.data());
  DSN_CHECK_CLOSE(loss, ref::cross_entropy(rows, classes, offsets, labels), kForward);
}

TEST_CASE("softmax cross-entropy forward and backward") {
  std::uint32_t seed = 3200;
  for (const Size size : kSizes) {
    CAPTURE(size.rows);
    CAPTURE(size.classes);
    const std::int64_t count = size.rows * size.classes;
    const std::vector<float> logits = ref::random_uniform(count, -3.0f, 3.0f, ++seed);
    const std::vector<std::int32_t> labels =
        ref::random_labels(size.rows, static_cast<std::int32_t>(size.classes), seed + 50);
    const std::vector<float> dloss = ref::random_uniform(size.rows, 0.1f, 2.0f, seed + 100);
    const Vec logits_d = ref::to_double(logits);

    std::vector<float> loss(size.rows), probs(count), dlogits(count, 4.0f);
    cpu::softmax_cross_entropy_forward(size.rows, size.classes, logits.data(), labels.data(),
                                       loss.data(), probs.data());
    DSN_CHECK_CLOSE(loss, ref::cross_entropy(size.rows, size.classes, logits_d, labels), kForward);
    DSN_CHECK_CLOSE(probs, ref::softmax(size.rows, size.classes, logits_d), kForward);

    cpu::softmax_cross_entropy_backward(size.rows, size.classes, probs.data(), labels.data(),
                                        dloss.data(), dlogits.data());
    const Vec dloss_d = ref::to_double(dloss);
    const Vec numeric = ref::numeric_gradient(
        [&](const Vec& v) {
          return ref::dot(dloss_d, ref::cross_entropy(size.rows, size.classes, v, labels));
        },
        logits_d);
    DSN_CHECK_CLOSE(dlogits, numeric, kGradient);
  }
}

TEST_CASE("softmax cross-entropy rejects labels out of range") {
  const std::int64_t rows = 3, classes = 7;
  const std::vector<float> logits(rows * classes, 0.0f);
  std::vector<float> loss(rows), probs(rows * classes), dlogits(rows * classes);
  const std::vector<float> dloss(rows, 1.0f);

  const std::vector<std::int32_t> too_large = {0, 1, 7};
  CHECK_THROWS_WITH_AS(
      cpu::softmax_cross_entropy_forward(rows, classes, logits.data(), too_large.data(),
                                         loss.data(), probs.data()),
      doctest::Contains("label 7 of row 2"), Error);
  const std::vector<std::int32_t> negative = {0, -1, 2};
  CHECK_THROWS_WITH_AS(
      cpu::softmax_cross_entropy_backward(rows, classes, probs.data(), negative.data(),
                                          dloss.data(), dlogits.data()),
      doctest::Contains("label -1 of row 1"), Error);
}

}  // namespace
}  // namespace dsn
