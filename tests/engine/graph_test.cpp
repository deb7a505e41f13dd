// Autograd graph semantics: fan-out accumulation, diamonds, shared parameters, grad mode,
// explicit root gradients, accumulation across backward calls, release of the graph, and
// parameters that do not require gradients. Expected gradients are worked out by hand.
#include <cstdint>
#include <memory>
#include <vector>

#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/tensor.h"

namespace dsn {
namespace {

Tensor leaf(const Shape& shape, const std::vector<float>& values) {
  Tensor tensor = Tensor::from_vector(shape, values);
  tensor.set_requires_grad(true);
  return tensor;
}

}  // namespace

TEST_CASE("tensor used twice accumulates") {
  Tensor x = leaf({3}, {1, -2, 3});
  autograd::backward(ops::sum(ops::add(x, x)));
  REQUIRE(x.grad().defined());
  CHECK(x.grad().to_vector() == std::vector<float>{2, 2, 2});
}

TEST_CASE("diamond graph sums both paths") {
  // y = relu(2x) + (-3x); dL/dx = 2 [x > 0] - 3.
  Tensor x = leaf({4}, {1, -1, 0.5f, -0.25f});
  const Tensor a = ops::relu(ops::scale(x, 2.0f));
  const Tensor b = ops::scale(x, -3.0f);
  autograd::backward(ops::sum(ops::add(a, b)));
  CHECK(x.grad().to_vector() == std::vector<float>{-1, -3, -1, -3});
}

TEST_CASE("parameter shared by two branches") {
  // L = sum(x1 w^T) + sum(x2 w^T), so dL/dw[o][i] = sum_b x1[b][i] + sum_b x2[b][i] for every o.
  Tensor w = leaf({2, 3}, {0.5f, -1, 2, 1, 0, -0.5f});
  const Tensor x1 = Tensor::from_vector({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  const Tensor x2 = Tensor::from_vector({1, 3}, std::vector<float>{-1, 0.5f, 2});
  const Tensor loss =
      ops::add(ops::sum(ops::linear(x1, w, Tensor())), ops::sum(ops::linear(x2, w, Tensor())));
  autograd::backward(loss);
  CHECK(w.grad().to_vector() == std::vector<float>{4, 7.5f, 11, 4, 7.5f, 11});
}

TEST_CASE("NoGradGuard records nothing") {
  Tensor x = leaf({2}, {1, 2});
  CHECK(autograd::grad_enabled());
  Tensor y;
  {
    autograd::NoGradGuard guard;
    CHECK_FALSE(autograd::grad_enabled());
    {
      autograd::NoGradGuard nested;
      CHECK_FALSE(autograd::grad_enabled());
    }
    CHECK_FALSE(autograd::grad_enabled());  // the inner guard restores the outer state
    y = ops::sum(ops::scale(x, 2.0f));
  }
  CHECK(autograd::grad_enabled());
  CHECK_FALSE(y.requires_grad());
  CHECK(y.impl()->grad_fn == nullptr);
  CHECK_THROWS_WITH_AS(autograd::backward(y),
                       doctest::Contains("the root does not require a gradient"), Error);
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("NoGradGuard covers every op") {
  Tensor x = leaf({2, 2, 3, 3}, std::vector<float>(36, 0.5f));
  Tensor w = leaf({2, 2, 2, 2}, std::vector<float>(16, 0.25f));
  Tensor gamma = leaf({2}, {1, 1});
  Tensor beta = leaf({2}, {0, 0});
  Tensor running_mean = Tensor::zeros({2});
  Tensor running_var = Tensor::full({2}, 1.0f);
  const Tensor labels = Tensor::from_vector({2}, std::vector<std::int32_t>{0, 1});
  const ops::Pool2dParams pool;

  autograd::NoGradGuard guard;
  const Tensor logits = ops::flatten(ops::global_avg_pool2d(x));
  const std::vector<Tensor> outputs = {
      ops::conv2d(x, w, Tensor(), {}, true),
      ops::conv_transpose2d(x, w, Tensor(), {}),
      ops::max_pool2d(x, pool),
      ops::avg_pool2d(x, pool),
      logits,
      ops::batch_norm(x, gamma, beta, running_mean, running_var, ops::BatchNormMode::Train),
      ops::relu(x),
      ops::dropout(x, 0.5f, true, 1, 0),
      ops::linear(logits, leaf({3, 2}, {1, 2, 3, 4, 5, 6}), Tensor()),
      ops::add(x, x),
      ops::scale(x, 2.0f),
      ops::concat_channels({x, x}),
      ops::crop(x, 1, 1, 2, 2),
      ops::reshape(x, {4, 9}),
      ops::softmax(logits),
      ops::softmax_cross_entropy(logits, labels),
      ops::sum(x),
      ops::mean(x),
  };
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    CAPTURE(i);
    CHECK_FALSE(outputs[i].requires_grad());
    CHECK(outputs[i].impl()->grad_fn == nullptr);
  }
}

TEST_CASE("ops on constants record nothing") {
  const Tensor x = Tensor::from_vector({2}, std::vector<float>{1, 2});
  const Tensor y = ops::relu(ops::scale(x, 3.0f));
  CHECK_FALSE(y.requires_grad());
  CHECK(y.impl()->grad_fn == nullptr);
}

TEST_CASE("non-scalar root needs explicit gradient") {
  Tensor x = leaf({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor y = ops::scale(x, 3.0f);
  CHECK_THROWS_WITH_AS(autograd::backward(y),
                       doctest::Contains("a root of shape (2, 3) needs an explicit gradient"),
                       Error);
  CHECK_THROWS_WITH_AS(autograd::backward(y, Tensor::zeros({3, 2})),
                       doctest::Contains("has shape (3, 2), expected (2, 3)"), Error);
  CHECK_FALSE(x.grad().defined());

  const std::vector<float> g = {1, -1, 0.5f, 2, 0, -3};
  autograd::backward(y, Tensor::from_vector({2, 3}, g));
  CHECK(x.grad().to_vector() == std::vector<float>{3, -3, 1.5f, 6, 0, -9});
}

TEST_CASE("grads accumulate until zero_grad") {
  Tensor x = leaf({2}, {1, 2});
  autograd::backward(ops::sum(ops::scale(x, 2.0f)));
  autograd::backward(ops::sum(ops::scale(x, 3.0f)));
  CHECK(x.grad().to_vector() == std::vector<float>{5, 5});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  autograd::backward(ops::sum(ops::scale(x, -1.0f)));
  CHECK(x.grad().to_vector() == std::vector<float>{-1, -1});
}

TEST_CASE("backward releases the graph") {
  Tensor x = leaf({1, 1, 3, 3}, {1, -2, 3, -4, 5, -6, 7, -8, 9});
  Tensor w = leaf({1, 1, 2, 2}, {1, 0.5f, -1, 2});
  std::weak_ptr<TensorImpl> saved_activation;
  std::weak_ptr<Node> node;
  Tensor loss;
  {
    // conv2d keeps its input; relu keeps nothing but its node.
    const Tensor hidden = ops::relu(ops::scale(x, 2.0f));
    saved_activation = hidden.impl_ptr();
    const Tensor y = ops::conv2d(hidden, w, Tensor(), {});
    node = y.impl()->grad_fn;
    loss = ops::sum(y);
  }
  CHECK_FALSE(saved_activation.expired());
  CHECK_FALSE(node.expired());
  autograd::backward(loss);
  CHECK(saved_activation.expired());
  CHECK(node.expired());
  CHECK(x.grad().defined());
  CHECK(w.grad().defined());
}

TEST_CASE("second backward through a released graph throws") {
  Tensor x = leaf({2}, {1, 2});
  const Tensor loss = ops::sum(ops::scale(x, 2.0f));
  autograd::backward(loss);
  CHECK_THROWS_WITH_AS(autograd::backward(loss), doctest::Contains("already released"), Error);
  CHECK(x.grad().to_vector() == std::vector<float>{2, 2});
}

TEST_CASE("frozen inputs get no gradient") {
  Tensor x = leaf({1, 2, 3, 3}, std::vector<float>(18, 0.5f));
  const Tensor frozen_weight = Tensor::full({1, 2, 2, 2}, 0.25f);  // requires_grad false
  Tensor bias = leaf({1}, {0.1f});
  autograd::backward(ops::sum(ops::conv2d(x, frozen_weight, bias, {})));
  CHECK_FALSE(frozen_weight.grad().defined());
  REQUIRE(x.grad().defined());
  REQUIRE(bias.grad().defined());
  // Four 2x2 windows over 3x3: the centre pixel is in all four, corners in one.
  const std::vector<float> dx = x.grad().to_vector();
  CHECK(dx[0] == doctest::Approx(0.25));
  CHECK(dx[4] == doctest::Approx(1.0));
  CHECK(bias.grad().item() == doctest::Approx(4.0));
}

}  // namespace dsn
