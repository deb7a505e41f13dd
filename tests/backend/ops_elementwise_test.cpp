// Element-wise and layout ops (relu, dropout, add, scale, concat_channels, crop, reshape,
// flatten) and tensor copies on the CPU and the CUDA backend, forward and backward through
// autograd. The kernels of both backends perform the same float operations on each element, so
// outputs and gradients must match bit for bit. Gradients that autograd accumulates (an input
// used twice) go through Backend::accumulate, also element-wise.
#include <cmath>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include "engine/ops.h"
#include "tests/backend/support.h"
#include "tests/support/reference.h"

namespace dsn::backend_test {
namespace {

// Random values with exact zeros of both signs mixed in, so comparisons with zero are tested.
std::vector<float> with_zeros(std::size_t count, std::uint32_t seed) {
  std::vector<float> values = ref::random_uniform(count, -1.0f, 1.0f, seed);
  for (std::size_t i = 0; i < count; i += 7) values[i] = (i % 2 == 0) ? 0.0f : -0.0f;
  return values;
}

void check_all_same_bits(const BothResults& results) {
  check_same_bits("output", results.cpu.output, results.cuda.output);
  REQUIRE(results.cpu.grads.size() == results.cuda.grads.size());
  for (std::size_t i = 0; i < results.cpu.grads.size(); ++i) {
    CAPTURE(i);
    CHECK(results.cpu.grads[i].empty() == results.cuda.grads[i].empty());
    check_same_bits("gradient", results.cpu.grads[i], results.cuda.grads[i]);
  }
}

TEST_CASE("ops relu matches cpu bitwise") {
  const Shape shape{2, 3, 5, 7};
  const std::vector<float> x = with_zeros(std::size_t(numel(shape)), 4000);
  const std::vector<float> dy = ref::random_uniform(x.size(), -1.0f, 1.0f, 4001);
  const BothResults results = run_on_both(
      {{shape, x}}, [](const std::vector<Tensor>& t) { return ops::relu(t[0]); }, dy);
  check_all_same_bits(results);
  // Independent of the CPU twin: y = max(x, 0) and dx = dy where y > 0.
  for (std::size_t i = 0; i < x.size(); ++i) {
    CAPTURE(i);
    CHECK(results.cuda.output[i] == (x[i] > 0.0f ? x[i] : 0.0f));
    CHECK(results.cuda.grads[0][i] == (x[i] > 0.0f ? dy[i] : 0.0f));
  }
}

TEST_CASE("ops dropout masks match cpu bitwise") {
  // 1001 elements and an offset that is not a multiple of four, so the Philox blocks of four
  // draws start mid-block and end with a partial block.
  const Shape shape{7, 11, 13};
  const std::vector<float> x = ref::random_uniform(std::size_t(numel(shape)), -1.0f, 1.0f, 4010);
  const std::vector<float> dy = ref::random_uniform(x.size(), -1.0f, 1.0f, 4011);
  const float p = 0.3f;
  const BothResults results = run_on_both(
      {{shape, x}},
      [p](const std::vector<Tensor>& t) { return ops::dropout(t[0], p, true, 42, 5); }, dy);
  check_all_same_bits(results);

  // The mask is neither empty nor full, and the backward pass drops the same elements.
  std::size_t dropped = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    CAPTURE(i);
    const bool kept = results.cuda.output[i] != 0.0f;
    CHECK(kept == (results.cuda.grads[0][i] != 0.0f));
    if (!kept) ++dropped;
  }
  CHECK(dropped > 0);
  CHECK(dropped < x.size());
}

TEST_CASE("ops add scale accumulate match cpu bitwise") {
  const Shape shape{2, 3, 4, 5};
  const std::vector<float> a = ref::random_uniform(std::size_t(numel(shape)), -1.0f, 1.0f, 4020);
  const std::vector<float> b = ref::random_uniform(a.size(), -3.0f, 3.0f, 4021);
  const std::vector<float> dy = ref::random_uniform(a.size(), -1.0f, 1.0f, 4022);

  SUBCASE("add") {
    check_all_same_bits(run_on_both(
        {{shape, a}, {shape, b}}, [](const std::vector<Tensor>& t) { return ops::add(t[0], t[1]); },
        dy));
  }
  SUBCASE("scale") {
    check_all_same_bits(run_on_both(
        {{shape, a}}, [](const std::vector<Tensor>& t) { return ops::scale(t[0], -0.37f); }, dy));
  }
  SUBCASE("an input used three times accumulates its gradients") {
    // y = (a + a) + 0.3 a: autograd adds the three incoming gradients with accumulate.
    const BothResults results = run_on_both(
        {{shape, a}},
        [](const std::vector<Tensor>& t) {
          return ops::add(ops::add(t[0], t[0]), ops::scale(t[0], 0.3f));
        },
        dy);
    check_all_same_bits(results);
  }
}

TEST_CASE("ops concat_channels matches cpu bitwise") {
  const std::vector<Shape> shapes = {{2, 1, 3, 5}, {2, 4, 3, 5}, {2, 2, 3, 5}};
  std::vector<HostTensor> inputs;
  std::uint32_t seed = 4030;
  for (const Shape& shape : shapes) {
    inputs.push_back({shape, ref::random_uniform(std::size_t(numel(shape)), -1.0f, 1.0f, seed++)});
  }
  inputs[1].requires_grad = false;  // a gradient must still reach the other inputs
  const std::vector<float> dy = ref::random_uniform(2 * 7 * 3 * 5, -1.0f, 1.0f, seed++);
  const BothResults results = run_on_both(
      inputs, [](const std::vector<Tensor>& t) { return ops::concat_channels(t); }, dy);
  check_all_same_bits(results);
  CHECK(results.cuda.grads[1].empty());
  // Channel 0 of the output is input 0; channel 1 of batch 1 is input 1's channel 0.
  for (std::size_t i = 0; i < 15; ++i) {
    CHECK(results.cuda.output[i] == inputs[0].values[i]);
    CHECK(results.cuda.output[7 * 15 + 15 + i] == inputs[1].values[4 * 15 + i]);
  }
}

TEST_CASE("ops crop matches cpu bitwise") {
  const Shape shape{2, 3, 7, 8};
  const std::vector<float> x = ref::random_uniform(std::size_t(numel(shape)), -1.0f, 1.0f, 4040);
  const std::vector<float> dy = ref::random_uniform(2 * 3 * 4 * 5, -1.0f, 1.0f, 4041);
  const BothResults results = run_on_both(
      {{shape, x}}, [](const std::vector<Tensor>& t) { return ops::crop(t[0], 1, 3, 4, 5); }, dy);
  check_all_same_bits(results);
  CropShape crop;
  crop.n = 2;
  crop.c = 3;
  crop.h = 7;
  crop.w = 8;
  crop.offset_h = 1;
  crop.offset_w = 3;
  crop.out_h = 4;
  crop.out_w = 5;
  check_same_bits("output against the reference", to_float(ref::crop(crop, to_double(x))),
                  results.cuda.output);
}

TEST_CASE("ops reshape flatten match cpu bitwise") {
  const Shape shape{2, 3, 4, 5};
  const std::vector<float> x = ref::random_uniform(std::size_t(numel(shape)), -1.0f, 1.0f, 4050);
  const std::vector<float> dy = ref::random_uniform(x.size(), -1.0f, 1.0f, 4051);
  const BothResults results = run_on_both(
      {{shape, x}},
      [](const std::vector<Tensor>& t) {
        const Tensor flat = ops::flatten(ops::scale(t[0], 2.0f));
        CHECK(flat.shape() == Shape{2, 60});
        return ops::reshape(flat, {6, 4, 5});
      },
      dy);
  check_all_same_bits(results);
  for (std::size_t i = 0; i < x.size(); ++i) {
    CHECK(results.cuda.output[i] == 2.0f * x[i]);
    CHECK(results.cuda.grads[0][i] == 2.0f * dy[i]);
  }
}

TEST_CASE("tensor copies round trip on cuda") {
  const std::vector<float> values = ref::random_uniform(37, -5.0f, 5.0f, 4060);
  const Tensor host = Tensor::from_vector({37}, values);
  const Tensor device = host.to(Device::cuda());
  CHECK(device.device() == Device::cuda());
  const Tensor copy = device.clone();
  CHECK(copy.raw_data() != device.raw_data());
  CHECK(copy.to(Device::cpu()).to_vector() == values);
  CHECK(Tensor::zeros({3, 5}, DType::Float32, Device::cuda()).to_vector() ==
        std::vector<float>(15, 0.0f));
  CHECK(Tensor::full({4}, -2.5f, Device::cuda()).to_vector() == std::vector<float>(4, -2.5f));
  const std::vector<std::int32_t> labels = {3, -1, 6};
  CHECK(Tensor::from_vector({3}, labels, Device::cuda()).to_int_vector() == labels);
}

}  // namespace
}  // namespace dsn::backend_test
