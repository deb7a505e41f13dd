// Tensor basics: factories, host copies, views, shape checks and their messages, and the error
// for a device without a backend.
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/tensor.h"

namespace dsn {

TEST_CASE("from_vector and to_vector round trip") {
  const std::vector<float> values = {1.5f, -2.0f, 0.0f, 3.25f, 1e-30f, -7.0f};
  const Tensor t = Tensor::from_vector({2, 3}, values);
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.dim() == 2);
  CHECK(t.numel() == 6);
  CHECK(t.dtype() == DType::Float32);
  CHECK(t.device() == Device::cpu());
  CHECK(t.bytes() == 24);
  CHECK(t.to_vector() == values);

  const std::vector<std::int32_t> ints = {3, -4, 2147483647};
  const Tensor i = Tensor::from_vector({3}, ints);
  CHECK(i.dtype() == DType::Int32);
  CHECK(i.to_int_vector() == ints);

  CHECK_THROWS_WITH_AS(Tensor::from_vector({2, 2}, values),
                       doctest::Contains("from_vector: 6 values for shape (2, 2)"), Error);
  CHECK_THROWS_WITH_AS(i.to_vector(), doctest::Contains("to_vector: expected float32, got int32"),
                       Error);
  CHECK_THROWS_WITH_AS(t.to_int_vector(),
                       doctest::Contains("to_int_vector: expected int32, got float32"), Error);
}

TEST_CASE("factories fill values") {
  CHECK(Tensor::zeros({2, 2}).to_vector() == std::vector<float>(4, 0.0f));
  CHECK(Tensor::zeros({3}, DType::Int32).to_int_vector() == std::vector<std::int32_t>(3, 0));
  CHECK(Tensor::full({3}, -0.5f).to_vector() == std::vector<float>(3, -0.5f));
  CHECK(Tensor::zeros({0, 4}).numel() == 0);
  CHECK(Tensor::zeros({}).numel() == 1);  // a rank-0 tensor has one element
  CHECK_THROWS_WITH_AS(Tensor::empty({2, -1}), doctest::Contains("negative extent"), Error);
}

TEST_CASE("size, item and data checks") {
  const Tensor t = Tensor::zeros({2, 3, 4});
  CHECK(t.size(0) == 2);
  CHECK(t.size(-1) == 4);
  CHECK(t.size(-3) == 2);
  CHECK_THROWS_WITH_AS(t.size(3), doctest::Contains("dimension 3 out of range for shape (2, 3, 4)"),
                       Error);
  CHECK_THROWS_AS(t.size(-4), Error);
  CHECK_THROWS_WITH_AS(t.item(), doctest::Contains("item() of a tensor of shape (2, 3, 4)"), Error);
  CHECK(Tensor::full({1, 1}, 2.5f).item() == 2.5f);
  CHECK_THROWS_WITH_AS(t.data<std::int32_t>(),
                       doctest::Contains("expected a int32 tensor, got float32 of shape (2, 3, 4)"),
                       Error);

  const Tensor undefined;
  CHECK_FALSE(undefined.defined());
  CHECK_FALSE(undefined.requires_grad());
  CHECK_THROWS_WITH_AS(undefined.shape(), doctest::Contains("undefined tensor"), Error);
}

TEST_CASE("view shares storage and checks counts") {
  Tensor t = Tensor::from_vector({2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5});
  Tensor v = t.view({3, 2});
  CHECK(v.shape() == Shape{3, 2});
  CHECK(v.to_vector() == t.to_vector());
  v.data<float>()[5] = 50.0f;
  CHECK(t.to_vector()[5] == 50.0f);
  CHECK(t.shape() == Shape{2, 3});
  CHECK_THROWS_WITH_AS(t.view({4, 2}), doctest::Contains("cannot view shape (2, 3) as (4, 2)"),
                       Error);

  // clone copies; detach shares storage without history.
  Tensor c = t.clone();
  c.data<float>()[0] = -1.0f;
  CHECK(t.to_vector()[0] == 0.0f);
  t.set_requires_grad(true);
  Tensor d = t.detach();
  CHECK_FALSE(d.requires_grad());
  d.data<float>()[1] = 10.0f;
  CHECK(t.to_vector()[1] == 10.0f);
}

TEST_CASE("check_shape and check_float messages") {
  const Tensor t = Tensor::zeros({2, 3});
  CHECK_NOTHROW(check_shape(t, {2, 3}, "conv1 weight"));
  CHECK_THROWS_WITH_AS(check_shape(t, {3, 2}, "conv1 weight"),
                       doctest::Contains("conv1 weight has shape (2, 3), expected (3, 2)"), Error);
  CHECK_THROWS_WITH_AS(check_shape(Tensor(), {1}, "fc bias"),
                       doctest::Contains("fc bias is undefined, expected shape (1)"), Error);
  CHECK_NOTHROW(check_float(t, 2, "logits"));
  CHECK_THROWS_WITH_AS(check_float(t, 4, "input"),
                       doctest::Contains("input must have 4 dimensions, got shape (2, 3)"), Error);
  CHECK_THROWS_WITH_AS(check_float(Tensor::zeros({2}, DType::Int32), 1, "labels"),
                       doctest::Contains("labels must be float32, got int32"), Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({2}, DType::Int32).set_requires_grad(true),
                       doctest::Contains("only float32 tensors can require gradients"), Error);
}

TEST_CASE("missing device backend is a clear error") {
  CHECK(backend_for(Device::cpu()).name() == "cpu");
  CHECK(&backend_for(Device::cpu()) == &cpu_backend());
  CHECK(to_string(Device::cuda(1)) == "cuda:1");
  CHECK_THROWS_WITH_AS(backend_for(Device::cuda()),
                       doctest::Contains("no backend for cuda:0 is linked into this program"),
                       Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({2}, DType::Float32, Device::cuda()),
                       doctest::Contains("install_backend"), Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({2}).to(Device::cuda()),
                       doctest::Contains("no backend for cuda:0"), Error);
  CHECK_THROWS_WITH_AS(register_backend(&cpu_backend()),
                       doctest::Contains("only a CUDA backend can be added, got one for cpu"),
                       Error);
}

}  // namespace dsn
