#include "engine/module.h"

#include <cmath>
#include <numbers>

#include "engine/backend.h"
#include "engine/error.h"
#include "kernels/philox.h"

namespace dsn {

std::vector<std::pair<std::string, Parameter*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Parameter*>> result;
  for (auto& [name, parameter] : parameters_) result.emplace_back(name, parameter.get());
  for (auto& [child_name, child] : children_) {
    for (auto& [name, parameter] : child->named_parameters()) {
      result.emplace_back(child_name + "." + name, parameter);
    }
  }
  return result;
}

std::vector<std::pair<std::string, Tensor*>> Module::named_buffers() {
  std::vector<std::pair<std::string, Tensor*>> result;
  for (auto& [name, buffer] : buffers_) result.emplace_back(name, buffer.get());
  for (auto& [child_name, child] : children_) {
    for (auto& [name, buffer] : child->named_buffers()) {
      result.emplace_back(child_name + "." + name, buffer);
    }
  }
  return result;
}

std::vector<std::pair<std::string, Tensor*>> Module::state() {
  std::vector<std::pair<std::string, Tensor*>> result;
  for (auto& [name, parameter] : named_parameters()) result.emplace_back(name, &parameter->value);
  for (auto& entry : named_buffers()) result.push_back(entry);
  return result;
}

void Module::train(bool training) {
  training_ = training;
  for (auto& [name, child] : children_) child->train(training);
}

void Module::to(Device device) {
  for (auto& [name, parameter] : named_parameters()) {
    const bool requires_grad = parameter->value.requires_grad();
    parameter->value = parameter->value.to(device).detach();
    parameter->value.set_requires_grad(requires_grad);
  }
  for (auto& [name, buffer] : named_buffers()) *buffer = buffer->to(device).detach();
}

void Module::zero_grad() {
  for (auto& [name, parameter] : named_parameters()) parameter->value.zero_grad();
}

void Module::check_unique_name(const std::string& name) const {
  const auto taken = [&name](const auto& entries) {
    for (const auto& entry : entries) {
      if (entry.first == name) return true;
    }
    return false;
  };
  DSN_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_),
            "Module: the name '{}' is already registered in this module; parameters, buffers and "
            "child modules need distinct names",
            name);
}

Parameter& Module::register_parameter(const std::string& name, Tensor value, float lr_mult,
                                      float decay_mult) {
  check_unique_name(name);
  value.set_requires_grad(lr_mult != 0.0f);
  auto parameter = std::make_unique<Parameter>(Parameter{std::move(value), lr_mult, decay_mult});
  Parameter& reference = *parameter;
  parameters_.emplace_back(name, std::move(parameter));
  return reference;
}

Tensor& Module::register_buffer(const std::string& name, Tensor value) {
  check_unique_name(name);
  auto buffer = std::make_unique<Tensor>(std::move(value));
  Tensor& reference = *buffer;
  buffers_.emplace_back(name, std::move(buffer));
  return reference;
}

namespace init {

void normal(Tensor& tensor, float mean, float stddev, std::uint64_t seed) {
  DSN_CHECK(tensor.dtype() == DType::Float32, "init::normal: expected a float32 tensor, got {}",
            to_string(tensor.dtype()));
  // Box-Muller on pairs of Philox uniforms; u1 is moved to (0, 1] so log(u1) is finite.
  std::vector<float> values(static_cast<std::size_t>(tensor.numel()));
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double u1 = 1.0 - philox_uniform(seed, 0, 2 * i);
    const double u2 = philox_uniform(seed, 0, 2 * i + 1);
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    values[i] = static_cast<float>(mean + stddev * z);
  }
  backend_for(tensor.device()).copy_from_host(tensor.raw_data(), values.data(), tensor.bytes());
}

void constant(Tensor& tensor, float value) {
  backend_for(tensor.device()).fill(tensor.numel(), value, tensor.data<float>());
}

void bilinear_upsampling(Tensor& tensor) {
  DSN_CHECK(tensor.dim() == 4 && tensor.size(0) == tensor.size(1) &&
                tensor.size(2) == tensor.size(3),
            "bilinear_upsampling: expected weights (C, C, K, K), got {}",
            to_string(tensor.shape()));
  DSN_CHECK(tensor.dtype() == DType::Float32,
            "bilinear_upsampling: expected float32 weights, got {}", to_string(tensor.dtype()));
  const std::int64_t channels = tensor.size(0), kernel = tensor.size(2);
  // Caffe's bilinear filler: f = ceil(K / 2), centre c = (2f - 1 - f % 2) / (2f), weight
  // (1 - |i / f - c|) (1 - |j / f - c|). For K = 2f with f even this is exact bilinear
  // interpolation by f.
  const std::int64_t f = (kernel + 1) / 2;
  const double center = static_cast<double>(2 * f - 1 - f % 2) / (2.0 * f);
  std::vector<float> values(static_cast<std::size_t>(tensor.numel()), 0.0f);
  for (std::int64_t c = 0; c < channels; ++c) {
    for (std::int64_t i = 0; i < kernel; ++i) {
      for (std::int64_t j = 0; j < kernel; ++j) {
        const double weight = (1.0 - std::abs(static_cast<double>(i) / f - center)) *
                              (1.0 - std::abs(static_cast<double>(j) / f - center));
        values[static_cast<std::size_t>(((c * channels + c) * kernel + i) * kernel + j)] =
            static_cast<float>(weight);
      }
    }
  }
  backend_for(tensor.device()).copy_from_host(tensor.raw_data(), values.data(), tensor.bytes());
}

}  // namespace init

Conv2d::Conv2d(const Conv2dOptions& options) : options_(options) {
  Tensor weight = Tensor::zeros(
      {options.out_channels, options.in_channels, options.kernel, options.kernel});
  weight_ = &register_parameter("weight", weight);
  if (options.bias) bias_ = &register_parameter("bias", Tensor::zeros({options.out_channels}));
}

Tensor Conv2d::forward(const Tensor& x) {
  const ops::Conv2dParams params{options_.stride, options_.stride, options_.pad, options_.pad};
  return ops::conv2d(x, weight_->value, bias_ ? bias_->value : Tensor(), params, options_.relu);
}

BilinearUpsample::BilinearUpsample(std::int64_t factor) : factor_(factor) {
  DSN_CHECK(factor >= 2, "BilinearUpsample: factor must be at least 2, got {}", factor);
  Tensor weight = Tensor::zeros({1, 1, 2 * factor, 2 * factor});
  init::bilinear_upsampling(weight);
  weight_ = &register_parameter("weight", weight, 0.0f, 0.0f);
}

Tensor BilinearUpsample::forward(const Tensor& x) {
  return ops::conv_transpose2d(x, weight_->value, Tensor(), {factor_, factor_, 0, 0});
}

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias) {
  weight_ = &register_parameter("weight", Tensor::zeros({out_features, in_features}));
  if (bias) bias_ = &register_parameter("bias", Tensor::zeros({out_features}));
}

Tensor Linear::forward(const Tensor& x) {
  return ops::linear(x, weight_->value, bias_ ? bias_->value : Tensor());
}

BatchNorm2d::BatchNorm2d(std::int64_t channels, bool frozen, double momentum, double eps)
    : frozen_(frozen), momentum_(momentum), eps_(eps) {
  const float lr_mult = frozen ? 0.0f : 1.0f;
  gamma_ = &register_parameter("weight", Tensor::full({channels}, 1.0f), lr_mult, 0.0f);
  beta_ = &register_parameter("bias", Tensor::zeros({channels}), lr_mult, 0.0f);
  running_mean_ = &register_buffer("running_mean", Tensor::zeros({channels}));
  running_var_ = &register_buffer("running_var", Tensor::full({channels}, 1.0f));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  const auto mode = is_training() && !frozen_ ? ops::BatchNormMode::Train
                                              : ops::BatchNormMode::Inference;
  return ops::batch_norm(x, gamma_->value, beta_->value, *running_mean_, *running_var_, mode,
                         momentum_, eps_);
}

Dropout::Dropout(float p, std::uint64_t seed) : p_(p), seed_(seed) {}

Tensor Dropout::forward(const Tensor& x) {
  Tensor y = ops::dropout(x, p_, is_training(), seed_, offset_);
  if (is_training()) offset_ += static_cast<std::uint64_t>(x.numel());
  return y;
}

}  // namespace dsn
