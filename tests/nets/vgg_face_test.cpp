// The plain VGG-Face baseline on a narrow configuration: names, output, loss and scores against
// double-precision references, gradients, dropout in training mode only.
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "nets/vgg_face.h"
#include "tests/nets/support.h"

namespace dsn::nets {
namespace {

const std::vector<std::int32_t> kLabels = {0, 6};

Tensor small_input() {
  return test::random_tensor({2, 3, 32, 32}, -120.0f, 120.0f, 11);
}

TEST_CASE("vgg_face names and classifier sizes") {
  VggFace net(test::small_vgg_config());
  std::set<std::string> names;
  for (const auto& [name, parameter] : net.named_parameters()) {
    names.insert(name);
    CAPTURE(name);
    CHECK(parameter->lr_mult != 0.0f);
  }
  CHECK(names.size() == 13 * 2 + 3 * 2);
  CHECK(names.count("conv5_3.bias") == 1);
  CHECK(names.count("fc8.weight") == 1);
  const auto parameters = net.named_parameters();
  for (const auto& [name, parameter] : parameters) {
    // 32 x 32 input: five 2x2 pools leave 1 x 1 x 16 features for fc6.
    if (name == "fc6.weight") CHECK(parameter->value.shape() == Shape{16, 16});
    if (name == "fc8.weight") CHECK(parameter->value.shape() == Shape{7, 16});
    if (name == "fc6.bias") {
      for (float value : parameter->value.to_vector()) CHECK(value == doctest::Approx(0.1));
    }
  }
}

TEST_CASE("vgg_face loss and scores") {
  VggFace net(test::small_vgg_config());
  net.eval();
  const DsnOutput output = net.forward(small_input());
  CHECK(output.side_logits.empty());
  REQUIRE(output.fused_logits.shape() == Shape{2, 7});

  const Tensor loss = net.loss(output, Tensor::from_vector({2}, kLabels));
  CHECK(loss.item() ==
        doctest::Approx(test::cross_entropy(output.fused_logits, kLabels)).epsilon(1e-5));

  const std::vector<float> scores = net.scores(output).to_vector();
  const std::vector<float> logits = output.fused_logits.to_vector();
  for (std::size_t row = 0; row < 2; ++row) {
    const std::vector<double> expected = test::softmax_row(logits, row, 7);
    for (std::size_t k = 0; k < 7; ++k) {
      CHECK(scores[row * 7 + k] == doctest::Approx(expected[k]).epsilon(1e-5));
    }
  }
}

TEST_CASE("vgg_face dropout only in training") {
  VggFace net(test::small_vgg_config());
  const Tensor x = small_input();
  net.eval();
  autograd::NoGradGuard no_grad;
  const std::vector<float> first = net.forward(x).fused_logits.to_vector();
  const std::vector<float> second = net.forward(x).fused_logits.to_vector();
  CHECK(first == second);
  net.train();
  const std::vector<float> trained = net.forward(x).fused_logits.to_vector();
  CHECK(trained != first);
}

TEST_CASE("vgg_face backward reaches every parameter") {
  VggFace net(test::small_vgg_config());
  const DsnOutput output = net.forward(small_input());
  autograd::backward(net.loss(output, Tensor::from_vector({2}, kLabels)));
  for (const auto& [name, parameter] : net.named_parameters()) {
    CAPTURE(name);
    const Tensor grad = parameter->value.grad();
    REQUIRE(grad.defined());
    bool nonzero = false;
    for (float value : grad.to_vector()) nonzero = nonzero || value != 0.0f;
    CHECK(nonzero);
  }
}

}  // namespace
}  // namespace dsn::nets
