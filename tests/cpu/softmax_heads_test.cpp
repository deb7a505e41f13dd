// CPU multi-head softmax cross-entropy against the double reference per head, central
// differences of the summed weighted loss, and the single-head kernel it must reproduce.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "engine/error.h"
#include "kernels/softmax.h"
#include "kernels/softmax_heads.h"
#include "tests/cpu/tolerance.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::kForward;
using test::kGradient;

// The seven heads of DSN-VGG-Face (six sides and the fusion) over the seven emotion classes, a
// single element, 17 classes and 1000 classes.
const SoftmaxHeads kShapes[] = {{7, 5, 7}, {1, 1, 1}, {3, 2, 17}, {2, 4, 1000}};

// loss (heads, rows) of the double reference, head by head with the shared labels.
Vec reference_loss(const SoftmaxHeads& shape, const Vec& logits,
                   const std::vector<std::int32_t>& labels) {
  Vec loss;
  const std::int64_t head_size = shape.rows * shape.classes;
  for (std::int64_t head = 0; head < shape.heads; ++head) {
    const Vec head_logits(logits.begin() + head * head_size,
                          logits.begin() + (head + 1) * head_size);
    const Vec head_loss = ref::cross_entropy(shape.rows, shape.classes, head_logits, labels);
    loss.insert(loss.end(), head_loss.begin(), head_loss.end());
  }
  return loss;
}

TEST_CASE("softmax heads forward per head") {
  std::uint32_t seed = 4000;
  for (const SoftmaxHeads& shape : kShapes) {
    CAPTURE(shape.heads);
    CAPTURE(shape.rows);
    CAPTURE(shape.classes);
    const std::int64_t count = shape.heads * shape.rows * shape.classes;
    const std::vector<float> logits = ref::random_uniform(count, -3.0f, 3.0f, ++seed);
    const std::vector<std::int32_t> labels =
        ref::random_labels(shape.rows, static_cast<std::int32_t>(shape.classes), seed);
    std::vector<float> loss(shape.heads * shape.rows, -1.0f), probs(count, -1.0f);
    cpu::softmax_heads_cross_entropy_forward(shape, logits.data(), labels.data(), loss.data(),
                                             probs.data());

    const Vec logits_d = ref::to_double(logits);
    DSN_CHECK_CLOSE(loss, reference_loss(shape, logits_d, labels), kForward);
    DSN_CHECK_CLOSE(probs, ref::softmax(shape.heads * shape.rows, shape.classes, logits_d),
                    kForward);
  }
}

TEST_CASE("softmax heads backward matches finite differences") {
  std::uint32_t seed = 4100;
  for (const SoftmaxHeads& shape : {SoftmaxHeads{7, 5, 7}, SoftmaxHeads{3, 2, 17}}) {
    CAPTURE(shape.heads);
    const std::int64_t count = shape.heads * shape.rows * shape.classes;
    const std::vector<float> logits = ref::random_uniform(count, -3.0f, 3.0f, ++seed);
    const std::vector<std::int32_t> labels =
        ref::random_labels(shape.rows, static_cast<std::int32_t>(shape.classes), seed);
    // Per-(head, row) loss gradients, as a weighted mean over the batch would give.
    const std::vector<float> dloss =
        ref::random_uniform(shape.heads * shape.rows, 0.1f, 1.0f, seed + 1);
    std::vector<float> loss(dloss.size()), probs(count), dlogits(count, 3.0f);
    cpu::softmax_heads_cross_entropy_forward(shape, logits.data(), labels.data(), loss.data(),
                                             probs.data());
    cpu::softmax_heads_cross_entropy_backward(shape, probs.data(), labels.data(), dloss.data(),
                                              dlogits.data());

    const Vec dloss_d = ref::to_double(dloss);
    const Vec numeric = ref::numeric_gradient(
        [&](const Vec& v) { return ref::dot(dloss_d, reference_loss(shape, v, labels)); },
        ref::to_double(logits));
    DSN_CHECK_CLOSE(dlogits, numeric, kGradient);
  }
}

TEST_CASE("softmax heads match single head") {
  const SoftmaxHeads shape{4, 3, 7};
  const std::int64_t head_size = shape.rows * shape.classes, count = shape.heads * head_size;
  const std::vector<float> logits = ref::random_uniform(count, -20.0f, 20.0f, 4200);
  const std::vector<std::int32_t> labels = ref::random_labels(shape.rows, 7, 4201);
  const std::vector<float> dloss = ref::random_uniform(shape.heads * shape.rows, -1, 1, 4202);
  std::vector<float> loss(dloss.size()), probs(count), dlogits(count);
  cpu::softmax_heads_cross_entropy_forward(shape, logits.data(), labels.data(), loss.data(),
                                           probs.data());
  cpu::softmax_heads_cross_entropy_backward(shape, probs.data(), labels.data(), dloss.data(),
                                            dlogits.data());
  for (std::int64_t head = 0; head < shape.heads; ++head) {
    CAPTURE(head);
    std::vector<float> head_loss(shape.rows), head_probs(head_size), head_dlogits(head_size);
    cpu::softmax_cross_entropy_forward(shape.rows, shape.classes, logits.data() + head * head_size,
                                       labels.data(), head_loss.data(), head_probs.data());
    cpu::softmax_cross_entropy_backward(shape.rows, shape.classes, head_probs.data(), labels.data(),
                                        dloss.data() + head * shape.rows, head_dlogits.data());
    CHECK(std::vector<float>(loss.begin() + head * shape.rows,
                             loss.begin() + (head + 1) * shape.rows) == head_loss);
    CHECK(std::vector<float>(probs.begin() + head * head_size,
                             probs.begin() + (head + 1) * head_size) == head_probs);
    CHECK(std::vector<float>(dlogits.begin() + head * head_size,
                             dlogits.begin() + (head + 1) * head_size) == head_dlogits);
  }
}

TEST_CASE("softmax heads in place") {
  const SoftmaxHeads shape{3, 4, 7};
  const std::int64_t count = shape.heads * shape.rows * shape.classes;
  const std::vector<float> logits = ref::random_uniform(count, -3.0f, 3.0f, 4300);
  const std::vector<std::int32_t> labels = ref::random_labels(shape.rows, 7, 4301);
  std::vector<float> loss(shape.heads * shape.rows), probs(count);
  std::vector<float> in_place_loss(loss.size()), in_place = logits;
  cpu::softmax_heads_cross_entropy_forward(shape, logits.data(), labels.data(), loss.data(),
                                           probs.data());
  cpu::softmax_heads_cross_entropy_forward(shape, in_place.data(), labels.data(),
                                           in_place_loss.data(), in_place.data());
  CHECK(in_place == probs);
  CHECK(in_place_loss == loss);
}

TEST_CASE("softmax heads reject invalid shapes and labels") {
  CHECK_NOTHROW(validate(SoftmaxHeads{7, 0, 7}));
  CHECK_THROWS_AS(validate(SoftmaxHeads{0, 1, 7}), Error);
  CHECK_THROWS_AS(validate(SoftmaxHeads{1, -1, 7}), Error);
  CHECK_THROWS_AS(validate(SoftmaxHeads{1, 1, 0}), Error);

  const SoftmaxHeads shape{2, 2, 3};
  const std::vector<float> logits(12, 0.0f), dloss(4, 1.0f);
  std::vector<float> loss(4), probs(12), dlogits(12);
  for (const std::int32_t bad : {-1, 3}) {
    CAPTURE(bad);
    const std::vector<std::int32_t> labels = {0, bad};
    CHECK_THROWS_AS(cpu::softmax_heads_cross_entropy_forward(shape, logits.data(), labels.data(),
                                                             loss.data(), probs.data()),
                    Error);
    CHECK_THROWS_AS(cpu::softmax_heads_cross_entropy_backward(shape, probs.data(), labels.data(),
                                                              dloss.data(), dlogits.data()),
                    Error);
  }
}

}  // namespace
}  // namespace dsn
