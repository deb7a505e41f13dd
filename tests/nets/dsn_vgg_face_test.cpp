// DSN-VGG-Face on the small configuration: parameter names, shapes and multipliers, output
// shapes, the loss and Eq. 5 scores against double-precision references, gradients reaching
// exactly the trainable parameters, and the short-connection topology seen through gradients.
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "nets/dsn_vgg_face.h"
#include "tests/nets/support.h"

namespace dsn::nets {
namespace {

const std::vector<std::int32_t> kLabels = {3, 5};

std::map<std::string, Parameter*> parameters_by_name(Module& net) {
  std::map<std::string, Parameter*> result;
  for (const auto& [name, parameter] : net.named_parameters()) result[name] = parameter;
  return result;
}

bool has_nonzero_grad(const Parameter& parameter) {
  const Tensor grad = parameter.value.grad();
  if (!grad.defined()) return false;
  for (float value : grad.to_vector()) {
    if (value != 0.0f) return true;
  }
  return false;
}

// Inputs on the scale of 0-255 images minus the mean.
Tensor small_input() {
  return test::random_tensor({2, 3, 64, 64}, -120.0f, 120.0f, 7);
}

Tensor labels() {
  return Tensor::from_vector({2}, kLabels);
}

// The names the documentation in nets/dsn_vgg_face.h promises, written out by hand.
std::set<std::string> expected_names() {
  std::set<std::string> names;
  const char* convs[] = {"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1",
                         "conv3_2", "conv3_3", "conv4_1", "conv4_2", "conv4_3",
                         "conv5_1", "conv5_2", "conv5_3"};
  for (const char* conv : convs) {
    names.insert(std::string(conv) + ".weight");
    names.insert(std::string(conv) + ".bias");
  }
  for (int m = 1; m <= 6; ++m) {
    for (const char* layer : {"conv", "score", "fc"}) {
      names.insert("side" + std::to_string(m) + "." + layer + ".weight");
      names.insert("side" + std::to_string(m) + "." + layer + ".bias");
    }
  }
  const char* ups[] = {"up6_to_4",    "up5_to_4",   "up6_to_3",    "up5_to_3",    "up6_to_2",
                       "up5_to_2",    "up4_to_2",   "up3_to_2",    "up6_to_1",    "up5_to_1",
                       "up4_to_1",    "up3_to_1",   "up6_to_fuse", "up5_to_fuse", "up4_to_fuse",
                       "up3_to_fuse", "up2_to_fuse"};
  for (const char* up : ups) names.insert(std::string(up) + ".weight");
  names.insert("fuse_fc.weight");
  names.insert("fuse_fc.bias");
  return names;
}

TEST_CASE("dsn parameter names and shapes") {
  DsnVggFace net(test::small_dsn_config());
  const auto parameters = parameters_by_name(net);
  std::set<std::string> names;
  for (const auto& [name, parameter] : parameters) names.insert(name);
  CHECK(names == expected_names());

  // Small config: C = 8, backbone widths 4, 8, 8, 16, 16, side 1's map 72 x 72 (64 + 8).
  CHECK(parameters.at("conv1_1.weight")->value.shape() == Shape{4, 3, 3, 3});
  CHECK(parameters.at("conv5_3.weight")->value.shape() == Shape{16, 16, 3, 3});
  CHECK(parameters.at("side6.conv.weight")->value.shape() == Shape{8, 16, 7, 7});
  CHECK(parameters.at("side4.conv.weight")->value.shape() == Shape{4, 16, 5, 5});
  CHECK(parameters.at("side1.conv.weight")->value.shape() == Shape{2, 4, 3, 3});
  CHECK(parameters.at("side3.score.weight")->value.shape() == Shape{1, 4, 1, 1});
  CHECK(parameters.at("side1.fc.weight")->value.shape() == Shape{7, 72 * 72});
  CHECK(parameters.at("fuse_fc.weight")->value.shape() == Shape{7, 64 * 64});
  CHECK(parameters.at("up6_to_1.weight")->value.shape() == Shape{1, 1, 64, 64});
  CHECK(parameters.at("up5_to_4.weight")->value.shape() == Shape{1, 1, 4, 4});
}

TEST_CASE("dsn multipliers") {
  DsnVggFace net(test::small_dsn_config());
  const auto parameters = parameters_by_name(net);
  struct Case {
    const char* name;
    float lr_mult, decay_mult;
  };
  const Case cases[] = {
      {"conv1_1.weight", 1.0f, 1.0f},     {"conv1_1.bias", 2.0f, 0.0f},
      {"side6.conv.weight", 1.0f, 1.0f},  {"side6.conv.bias", 2.0f, 0.0f},
      {"side3.score.weight", 0.1f, 1.0f}, {"side3.score.bias", 0.2f, 0.0f},
      {"side2.fc.weight", 1.0f, 1.0f},    {"side2.fc.bias", 2.0f, 0.0f},
      {"fuse_fc.weight", 1.0f, 1.0f},     {"fuse_fc.bias", 2.0f, 0.0f},
      {"up6_to_1.weight", 0.0f, 0.0f},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    CHECK(parameters.at(c.name)->lr_mult == doctest::Approx(c.lr_mult));
    CHECK(parameters.at(c.name)->decay_mult == doctest::Approx(c.decay_mult));
  }
  for (const auto& [name, parameter] : parameters) {
    CAPTURE(name);
    const bool frozen = name.rfind("up", 0) == 0;
    CHECK((parameter->lr_mult == 0.0f) == frozen);
    if (name.size() > 5 && name.substr(name.size() - 5) == ".bias") {
      CHECK(parameter->decay_mult == 0.0f);
    }
  }
}

TEST_CASE("dsn initialisation is seeded") {
  NetConfig config = test::small_dsn_config();
  DsnVggFace first(config), second(config);
  config.seed = 2;
  DsnVggFace other(config);
  const auto a = parameters_by_name(first);
  const auto b = parameters_by_name(second);
  const auto c = parameters_by_name(other);
  for (const char* name : {"conv3_1.weight", "side2.conv.weight", "fuse_fc.weight"}) {
    CAPTURE(name);
    CHECK(a.at(name)->value.to_vector() == b.at(name)->value.to_vector());
    CHECK(a.at(name)->value.to_vector() != c.at(name)->value.to_vector());
  }
  // Biases start at 0.
  for (float value : a.at("side2.conv.bias")->value.to_vector()) CHECK(value == 0.0f);
}

TEST_CASE("dsn forward shapes") {
  DsnVggFace net(test::small_dsn_config());
  const DsnOutput output = net.forward(small_input());
  REQUIRE(output.side_logits.size() == 6);
  for (const Tensor& logits : output.side_logits) CHECK(logits.shape() == Shape{2, 7});
  CHECK(output.fused_logits.shape() == Shape{2, 7});

  const std::string message = test::error_message([&] {
    net.forward(test::random_tensor({2, 3, 60, 60}, 0.0f, 1.0f, 1));
  });
  CHECK_MESSAGE(test::contains(message, "(N, 3, 64, 64)"), message);
}

TEST_CASE("dsn loss is the sum of seven cross-entropies") {
  DsnVggFace net(test::small_dsn_config());
  const DsnOutput output = net.forward(small_input());
  const Tensor loss = net.loss(output, labels());
  CHECK(loss.numel() == 1);

  double by_hand = test::cross_entropy(output.fused_logits, kLabels);
  double by_op = ops::softmax_cross_entropy(output.fused_logits, labels()).item();
  for (const Tensor& logits : output.side_logits) {
    by_hand += test::cross_entropy(logits, kLabels);
    by_op += ops::softmax_cross_entropy(logits, labels()).item();
  }
  CHECK(loss.item() == doctest::Approx(by_hand).epsilon(1e-5));
  CHECK(loss.item() == doctest::Approx(by_op).epsilon(1e-6));
  // With N(0, 0.01) heads the logits are not all zero, so the loss is not simply 7 log 7.
  CHECK(by_hand > 0.0);
}

TEST_CASE("dsn scores follow Eq. 5") {
  DsnVggFace net(test::small_dsn_config());
  net.eval();
  autograd::NoGradGuard no_grad;
  const DsnOutput output = net.forward(small_input());
  const Tensor scores = net.scores(output);
  REQUIRE(scores.shape() == Shape{2, 7});
  const std::vector<float> values = scores.to_vector();
  for (std::size_t row = 0; row < 2; ++row) {
    CAPTURE(row);
    // (P_fuse + sum of the six P_side) / 7, in double.
    std::vector<double> expected = test::softmax_row(output.fused_logits.to_vector(), row, 7);
    for (const Tensor& logits : output.side_logits) {
      const std::vector<double> p = test::softmax_row(logits.to_vector(), row, 7);
      for (std::size_t k = 0; k < 7; ++k) expected[k] += p[k];
    }
    double row_sum = 0.0;
    for (std::size_t k = 0; k < 7; ++k) {
      CHECK(values[row * 7 + k] == doctest::Approx(expected[k] / 7.0).epsilon(1e-5));
      row_sum += values[row * 7 + k];
    }
    CHECK(row_sum == doctest::Approx(1.0).epsilon(1e-6));
  }
}

TEST_CASE("dsn backward reaches every trainable parameter") {
  DsnVggFace net(test::small_dsn_config());
  const Tensor loss = net.loss(net.forward(small_input()), labels());
  autograd::backward(loss);
  for (const auto& [name, parameter] : net.named_parameters()) {
    CAPTURE(name);
    if (parameter->lr_mult == 0.0f) {
      CHECK_FALSE(parameter->value.grad().defined());
    } else {
      CHECK(has_nonzero_grad(*parameter));
    }
  }
}

// The short connections, read from the reference table: side m's loss reaches side m and the
// sides feeding it, and no other side. Sides 4 and 3 are fed by 6 and 5, sides 2 and 1 by 6, 5,
// 4 and 3. The fused loss reaches every side's convolutions but no side classifier.
TEST_CASE("dsn short connections seen through gradients") {
  const std::map<int, std::set<int>> reached = {
      {6, {6}},
      {5, {5}},
      {4, {4, 5, 6}},
      {3, {3, 5, 6}},
      {2, {2, 3, 4, 5, 6}},
      {1, {1, 3, 4, 5, 6}},
  };
  DsnVggFace net(test::small_dsn_config());
  const Tensor x = small_input();
  for (const auto& [loss_side, sides] : reached) {
    CAPTURE(loss_side);
    net.zero_grad();
    const DsnOutput output = net.forward(x);
    autograd::backward(ops::softmax_cross_entropy(
        output.side_logits[static_cast<std::size_t>(loss_side - 1)], labels()));
    const auto parameters = parameters_by_name(net);
    for (int m = 1; m <= 6; ++m) {
      CAPTURE(m);
      const std::string side = "side" + std::to_string(m);
      const bool expected = sides.count(m) > 0;
      CHECK(has_nonzero_grad(*parameters.at(side + ".score.weight")) == expected);
      CHECK(has_nonzero_grad(*parameters.at(side + ".conv.weight")) == expected);
      CHECK(has_nonzero_grad(*parameters.at(side + ".fc.weight")) == (m == loss_side));
    }
    CHECK_FALSE(has_nonzero_grad(*parameters.at("fuse_fc.weight")));
  }

  net.zero_grad();
  const DsnOutput output = net.forward(x);
  autograd::backward(ops::softmax_cross_entropy(output.fused_logits, labels()));
  const auto parameters = parameters_by_name(net);
  for (int m = 1; m <= 6; ++m) {
    CAPTURE(m);
    const std::string side = "side" + std::to_string(m);
    CHECK(has_nonzero_grad(*parameters.at(side + ".score.weight")));
    CHECK_FALSE(has_nonzero_grad(*parameters.at(side + ".fc.weight")));
  }
  CHECK(has_nonzero_grad(*parameters.at("fuse_fc.weight")));
}

TEST_CASE("dsn side strides") {
  DsnVggFace net(test::small_dsn_config());
  const std::int64_t expected[] = {0, 1, 2, 4, 8, 16, 32};
  for (int m = 1; m <= 6; ++m) CHECK(net.side_stride(m) == expected[m]);
}

TEST_CASE("dsn runs at its minimum input size") {
  NetConfig config = test::small_dsn_config();
  config.input_size = 33;
  DsnVggFace net(config);
  const DsnOutput output = net.forward(test::random_tensor({1, 3, 33, 33}, -100.0f, 100.0f, 3));
  CHECK(output.side_logits.size() == 6);
  CHECK(output.fused_logits.shape() == Shape{1, 7});
}

}  // namespace
}  // namespace dsn::nets
