// Modules: parameter and buffer naming, train and eval switching, batch-norm running statistics
// checked against hand-computed numbers, frozen layers, and the deterministic initialisers.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/module.h"
#include "engine/ops.h"
#include "kernels/philox.h"

namespace dsn {
namespace {

// conv -> bn -> dropout -> head, plus a parameter of its own registered after the children.
class Block : public Module {
 public:
  Block() {
    Conv2dOptions options;
    options.in_channels = 2;
    options.out_channels = 3;
    options.kernel = 3;
    options.pad = 1;
    options.relu = true;
    conv = &register_module("conv", std::make_unique<Conv2d>(options));
    bn = &register_module("bn", std::make_unique<BatchNorm2d>(3));
    dropout = &register_module("dropout", std::make_unique<Dropout>(0.5f, 7));
    head = &register_module("head", std::make_unique<Linear>(3, 2, false));
    register_parameter("gain", Tensor::full({1}, 1.0f), 2.0f, 0.5f);
  }

  Conv2d* conv;
  BatchNorm2d* bn;
  Dropout* dropout;
  Linear* head;
};

class Network : public Module {
 public:
  Network() {
    block = &register_module("block", std::make_unique<Block>());
    up = &register_module("up", std::make_unique<BilinearUpsample>(2));
  }

  Block* block;
  BilinearUpsample* up;
};

template <typename T>
std::vector<std::string> names_of(const std::vector<std::pair<std::string, T>>& entries) {
  std::vector<std::string> names;
  for (const auto& entry : entries) names.push_back(entry.first);
  return names;
}

Tensor* buffer(Module& module, const std::string& name) {
  for (auto& [buffer_name, tensor] : module.named_buffers()) {
    if (buffer_name == name) return tensor;
  }
  FAIL("no buffer named ", name);
  return nullptr;
}

}  // namespace

TEST_CASE("named_parameters names and order") {
  Network network;
  // A module's own parameters come before its children's, children in registration order.
  CHECK(names_of(network.named_parameters()) ==
        std::vector<std::string>{"block.gain", "block.conv.weight", "block.conv.bias",
                                 "block.bn.weight", "block.bn.bias", "block.head.weight",
                                 "up.weight"});
  CHECK(names_of(network.named_buffers()) ==
        std::vector<std::string>{"block.bn.running_mean", "block.bn.running_var"});
  CHECK(names_of(network.state()) ==
        std::vector<std::string>{"block.gain", "block.conv.weight", "block.conv.bias",
                                 "block.bn.weight", "block.bn.bias", "block.head.weight",
                                 "up.weight", "block.bn.running_mean", "block.bn.running_var"});

  const auto parameters = network.named_parameters();
  CHECK(parameters[0].second->lr_mult == 2.0f);
  CHECK(parameters[0].second->decay_mult == 0.5f);
  CHECK(parameters[1].second->value.shape() == Shape{3, 2, 3, 3});
  CHECK(parameters[2].second->value.shape() == Shape{3});
  CHECK(parameters[3].second->decay_mult == 0.0f);  // batch-norm scale is not decayed
  CHECK(parameters[5].second->value.shape() == Shape{2, 3});
  CHECK(parameters[6].second->lr_mult == 0.0f);
  CHECK(parameters[6].second->value.shape() == Shape{1, 1, 4, 4});
  // The entries point at the live tensors.
  CHECK(&parameters[1].second->value == &network.block->conv->weight().value);
}

namespace {

class Clash : public Module {
 public:
  explicit Clash(int kind) {
    register_parameter("weight", Tensor::zeros({1}));
    if (kind == 0) register_parameter("weight", Tensor::zeros({2}));
    if (kind == 1) register_buffer("weight", Tensor::zeros({2}));
    if (kind == 2) register_module("weight", std::make_unique<Linear>(1, 1));
  }
};

}  // namespace

TEST_CASE("register rejects duplicate names") {
  for (int kind = 0; kind < 3; ++kind) {
    CAPTURE(kind);
    CHECK_THROWS_WITH_AS(Clash{kind}, doctest::Contains("the name 'weight' is already registered"),
                         Error);
  }
  CHECK_NOTHROW(Clash{3});
}

TEST_CASE("train and eval reach every child") {
  Network network;
  CHECK(network.is_training());
  network.eval();
  CHECK_FALSE(network.is_training());
  CHECK_FALSE(network.block->is_training());
  CHECK_FALSE(network.block->bn->is_training());
  CHECK_FALSE(network.block->dropout->is_training());
  network.train();
  CHECK(network.block->dropout->is_training());
  CHECK(network.up->is_training());
}

TEST_CASE("zero_grad clears every parameter") {
  Block block;
  Tensor x = Tensor::full({2, 3}, 1.0f);
  autograd::backward(ops::sum(block.head->forward(x)));
  REQUIRE(block.head->weight().value.grad().defined());
  block.zero_grad();
  CHECK_FALSE(block.head->weight().value.grad().defined());
}

TEST_CASE("Dropout module in train and eval") {
  const std::vector<float> values = {1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12};
  const Tensor x = Tensor::from_vector({3, 4}, values);
  Dropout dropout(0.5f, 1234);

  dropout.eval();
  CHECK(dropout.forward(x).to_vector() == values);

  // In training, each call draws the next x.numel() elements of the (seed, offset) stream.
  dropout.train();
  std::vector<std::vector<bool>> masks;
  for (std::uint64_t call = 0; call < 2; ++call) {
    CAPTURE(call);
    const std::vector<float> y = dropout.forward(x).to_vector();
    std::vector<bool> mask;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const bool keep = philox_uniform(1234, call * values.size(), i) >= 0.5f;
      CHECK(y[i] == (keep ? values[i] * 2.0f : 0.0f));
      mask.push_back(keep);
    }
    masks.push_back(mask);
  }
  // Guards the check above: with this seed the two calls draw different masks.
  CHECK(masks[0] != masks[1]);

  dropout.eval();
  CHECK(dropout.forward(x).to_vector() == values);
}

TEST_CASE("BatchNorm2d running statistics by hand") {
  // One channel, x = {1, 2, 3, 6}: mean 3, biased variance 14 / 4 = 3.5, unbiased 14 / 3.
  BatchNorm2d bn(1);
  const Tensor x = Tensor::from_vector({2, 1, 1, 2}, std::vector<float>{1, 2, 3, 6});
  Tensor& running_mean = *buffer(bn, "running_mean");
  Tensor& running_var = *buffer(bn, "running_var");
  CHECK(running_mean.to_vector() == std::vector<float>{0});
  CHECK(running_var.to_vector() == std::vector<float>{1});

  const std::vector<float> y = bn.forward(x).to_vector();
  const double batch_std = std::sqrt(3.5 + 1e-5);
  CHECK(y[0] == doctest::Approx(-2.0 / batch_std).epsilon(1e-5));
  CHECK(y[1] == doctest::Approx(-1.0 / batch_std).epsilon(1e-5));
  CHECK(y[2] == doctest::Approx(0.0).epsilon(1e-5));
  CHECK(y[3] == doctest::Approx(3.0 / batch_std).epsilon(1e-5));
  // momentum 0.1: mean 0.9 * 0 + 0.1 * 3; variance 0.9 * 1 + 0.1 * 14 / 3.
  CHECK(running_mean.item() == doctest::Approx(0.3).epsilon(1e-6));
  CHECK(running_var.item() == doctest::Approx(1.3666667).epsilon(1e-6));

  bn.eval();
  const std::vector<float> y_eval = bn.forward(x).to_vector();
  const double running_std = std::sqrt(1.3666667 + 1e-5);
  CHECK(y_eval[0] == doctest::Approx((1 - 0.3) / running_std).epsilon(1e-5));
  CHECK(y_eval[3] == doctest::Approx((6 - 0.3) / running_std).epsilon(1e-5));
  CHECK(running_mean.item() == doctest::Approx(0.3).epsilon(1e-6));  // eval leaves them alone

  bn.train();
  bn.forward(x);
  // 0.9 * 0.3 + 0.1 * 3 and 0.9 * 1.3666667 + 0.1 * 4.6666667.
  CHECK(running_mean.item() == doctest::Approx(0.57).epsilon(1e-6));
  CHECK(running_var.item() == doctest::Approx(1.6966667).epsilon(1e-6));
}

TEST_CASE("BatchNorm2d frozen uses running statistics") {
  BatchNorm2d bn(1, true);
  for (auto& [name, parameter] : bn.named_parameters()) {
    CAPTURE(name);
    CHECK(parameter->lr_mult == 0.0f);
    CHECK_FALSE(parameter->value.requires_grad());
  }
  *buffer(bn, "running_mean") = Tensor::from_vector({1}, std::vector<float>{0.5f});
  *buffer(bn, "running_var") = Tensor::from_vector({1}, std::vector<float>{4.0f});

  Tensor x = Tensor::from_vector({2, 1, 1, 2}, std::vector<float>{1, 2, 3, 6});
  x.set_requires_grad(true);
  CHECK(bn.is_training());
  const Tensor y = bn.forward(x);
  const double running_std = std::sqrt(4.0 + 1e-5);
  CHECK(y.to_vector()[0] == doctest::Approx(0.5 / running_std).epsilon(1e-6));
  CHECK(y.to_vector()[3] == doctest::Approx(5.5 / running_std).epsilon(1e-6));
  CHECK(buffer(bn, "running_mean")->item() == 0.5f);
  CHECK(buffer(bn, "running_var")->item() == 4.0f);

  autograd::backward(ops::sum(y));
  for (float value : x.grad().to_vector()) {
    CHECK(value == doctest::Approx(1.0 / running_std).epsilon(1e-6));
  }
  for (auto& [name, parameter] : bn.named_parameters()) {
    CAPTURE(name);
    CHECK_FALSE(parameter->value.grad().defined());
  }
}

TEST_CASE("init::normal is deterministic") {
  const std::int64_t count = 100000;
  Tensor a = Tensor::zeros({count});
  Tensor b = Tensor::zeros({count});
  Tensor c = Tensor::zeros({count});
  init::normal(a, 0.5f, 2.0f, 42);
  init::normal(b, 0.5f, 2.0f, 42);
  init::normal(c, 0.5f, 2.0f, 43);
  const std::vector<float> va = a.to_vector(), vb = b.to_vector(), vc = c.to_vector();
  CHECK(va == vb);
  std::int64_t same = 0;
  for (std::size_t i = 0; i < va.size(); ++i) same += va[i] == vc[i] ? 1 : 0;
  CHECK(same < 10);

  // Bounds of five standard errors for n = 1e5 draws of N(0.5, 2^2): the mean's standard error
  // is 2 / sqrt(n), the standard deviation's about 2 / sqrt(2 n), a fraction p's
  // sqrt(p (1 - p) / n).
  double total = 0.0, squares = 0.0;
  std::int64_t within_one = 0, within_two = 0;
  for (float value : va) {
    total += value;
    squares += static_cast<double>(value) * value;
    within_one += std::abs(value - 0.5) < 2.0 ? 1 : 0;
    within_two += std::abs(value - 0.5) < 4.0 ? 1 : 0;
  }
  const double n = static_cast<double>(count);
  const double mean = total / n;
  const double stddev = std::sqrt(squares / n - mean * mean);
  CHECK(std::abs(mean - 0.5) < 5 * 2.0 / std::sqrt(n));
  CHECK(std::abs(stddev - 2.0) < 5 * 2.0 / std::sqrt(2 * n));
  CHECK(std::abs(within_one / n - 0.682689) < 5 * std::sqrt(0.682689 * 0.317311 / n));
  CHECK(std::abs(within_two / n - 0.954500) < 5 * std::sqrt(0.954500 * 0.045500 / n));
}

namespace {

// The FCN upsampling filter: factor f = (K + 1) / 2, centre f - 0.5 for even K, and weight
// (1 - |i - centre| / f) (1 - |j - centre| / f).
double bilinear_weight(std::int64_t kernel, std::int64_t i, std::int64_t j) {
  const double factor = static_cast<double>((kernel + 1) / 2);
  const double centre = factor - 0.5;
  return (1 - std::abs(i - centre) / factor) * (1 - std::abs(j - centre) / factor);
}

}  // namespace

TEST_CASE("init::bilinear_upsampling closed form") {
  for (const std::int64_t kernel : {4, 8}) {
    CAPTURE(kernel);
    const std::int64_t channels = 2;
    Tensor w = Tensor::full({channels, channels, kernel, kernel}, 7.0f);
    init::bilinear_upsampling(w);
    const std::vector<float> values = w.to_vector();
    for (std::int64_t out = 0; out < channels; ++out) {
      for (std::int64_t in = 0; in < channels; ++in) {
        for (std::int64_t i = 0; i < kernel; ++i) {
          for (std::int64_t j = 0; j < kernel; ++j) {
            const double expected = out == in ? bilinear_weight(kernel, i, j) : 0.0;
            const float got =
                values[static_cast<std::size_t>(((out * channels + in) * kernel + i) * kernel + j)];
            CHECK(got == doctest::Approx(expected).epsilon(1e-7));
          }
        }
      }
    }
  }
  // Kernel 4: the one-dimensional taps are 1/4, 3/4, 3/4, 1/4.
  Tensor w4 = Tensor::zeros({1, 1, 4, 4});
  init::bilinear_upsampling(w4);
  CHECK(w4.to_vector()[0] == doctest::Approx(0.0625));
  CHECK(w4.to_vector()[5] == doctest::Approx(0.5625));
  CHECK(w4.to_vector()[1] == doctest::Approx(0.1875));

  Tensor ints = Tensor::zeros({1, 1, 4, 4}, DType::Int32);
  CHECK_THROWS_WITH_AS(init::bilinear_upsampling(ints),
                       doctest::Contains("expected float32 weights, got int32"), Error);
  Tensor int_vector = Tensor::zeros({4}, DType::Int32);
  CHECK_THROWS_WITH_AS(init::normal(int_vector, 0.0f, 1.0f, 1),
                       doctest::Contains("expected a float32 tensor, got int32"), Error);

  Tensor bad = Tensor::zeros({2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(init::bilinear_upsampling(bad),
                       doctest::Contains("expected weights (C, C, K, K), got (2, 3, 4, 4)"), Error);
}

TEST_CASE("BilinearUpsample keeps constants in the interior") {
  struct Case {
    std::int64_t factor, h, w;
  };
  for (const Case& c : {Case{2, 4, 5}, Case{4, 3, 3}, Case{8, 2, 3}}) {
    CAPTURE(c.factor);
    BilinearUpsample up(c.factor);
    Tensor x = Tensor::full({1, 1, c.h, c.w}, 3.0f);
    x.set_requires_grad(true);
    const Tensor y = up.forward(x);
    // Kernel 2f, stride f, pad 0: output (H - 1) f + 2f = (H + 1) f.
    const std::int64_t out_h = (c.h + 1) * c.factor, out_w = (c.w + 1) * c.factor;
    REQUIRE(y.shape() == Shape{1, 1, out_h, out_w});
    const std::vector<float> values = y.to_vector();
    // Rows and columns [f, H f) see two input taps whose weights sum to one.
    for (std::int64_t i = c.factor; i < c.h * c.factor; ++i) {
      for (std::int64_t j = c.factor; j < c.w * c.factor; ++j) {
        CHECK(values[static_cast<std::size_t>(i * out_w + j)] == doctest::Approx(3.0));
      }
    }
    // The corner gets one tap of each filter axis: 3 w[0][0].
    CHECK(values[0] == doctest::Approx(3.0 * bilinear_weight(2 * c.factor, 0, 0)));

    // The weights are frozen: the input gets a gradient, the filter none.
    autograd::backward(ops::sum(y));
    CHECK(x.grad().defined());
    auto parameters = up.named_parameters();
    REQUIRE(parameters.size() == 1);
    CHECK(parameters[0].first == "weight");
    CHECK_FALSE(parameters[0].second->value.requires_grad());
    CHECK_FALSE(parameters[0].second->value.grad().defined());
  }
}

}  // namespace dsn
