// Modules: named parameters and buffers in a tree, train and eval modes, and the standard
// layers. Parameter names are dotted paths ("conv1_1.weight") and are the keys of checkpoints.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "engine/tensor.h"

namespace dsn {

// A trainable tensor and its optimiser settings. Multipliers scale the base learning rate and
// weight decay, as Caffe's lr_mult and decay_mult do.
struct Parameter {
  Tensor value;
  float lr_mult = 1.0f;
  float decay_mult = 1.0f;
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter of this module and its children, keyed by dotted name, in registration
  // order.
  std::vector<std::pair<std::string, Parameter*>> named_parameters();
  // Buffers (batch-norm running statistics) of this module and its children.
  std::vector<std::pair<std::string, Tensor*>> named_buffers();
  // Parameters and buffers together: what a checkpoint stores.
  std::vector<std::pair<std::string, Tensor*>> state();

  // Training mode for this module and its children. Modules start in training mode.
  virtual void train(bool training = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void zero_grad();

  // Moves every parameter and buffer of this module and its children to `device`, keeping
  // names, multipliers and requires_grad. Accumulated gradients are dropped.
  void to(Device device);

 protected:
  Parameter& register_parameter(const std::string& name, Tensor value, float lr_mult = 1.0f,
                                float decay_mult = 1.0f);
  Tensor& register_buffer(const std::string& name, Tensor value);
  // Each register_* call throws dsn::Error when `name` is already a parameter, buffer or child
  // of this module, since checkpoints and optimisers key everything by the dotted name.
  template <typename M>
  M& register_module(const std::string& name, std::unique_ptr<M> module) {
    check_unique_name(name);
    M& reference = *module;
    children_.emplace_back(name, std::move(module));
    return reference;
  }

 private:
  void check_unique_name(const std::string& name) const;

  bool training_ = true;
  std::vector<std::pair<std::string, std::unique_ptr<Parameter>>> parameters_;
  std::vector<std::pair<std::string, std::unique_ptr<Tensor>>> buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
};

// Deterministic initialisers: the same seed gives the same values on every platform (the draws
// come from Philox, not from a standard-library distribution).
namespace init {
void normal(Tensor& tensor, float mean, float stddev, std::uint64_t seed);
void constant(Tensor& tensor, float value);
// Weights (C, C, 2f, 2f) of a transposed convolution that upsamples by f with bilinear
// interpolation, channel c to channel c only: Caffe's "bilinear" filler, which gives the same
// weights as FCN's upsample_filt when f is even.
void bilinear_upsampling(Tensor& tensor);
}  // namespace init

// Layers.

struct Conv2dOptions {
  std::int64_t in_channels = 1, out_channels = 1;
  std::int64_t kernel = 3, stride = 1, pad = 0;
  bool bias = true;
  bool relu = false;  // fused ReLU after the convolution
};

class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dOptions& options);
  Tensor forward(const Tensor& x);
  Parameter& weight() { return *weight_; }
  Parameter* bias() { return bias_; }
  const Conv2dOptions& options() const { return options_; }

 private:
  Conv2dOptions options_;
  Parameter* weight_;
  Parameter* bias_ = nullptr;
};

// A fixed bilinear upsampling by `factor`: a one-channel transposed convolution with kernel
// 2 * factor, stride factor, pad 0 and frozen weights (lr_mult 0), as in HED and DSS.
class BilinearUpsample : public Module {
 public:
  explicit BilinearUpsample(std::int64_t factor);
  Tensor forward(const Tensor& x);
  std::int64_t factor() const { return factor_; }

 private:
  std::int64_t factor_;
  Parameter* weight_;
};

class Linear : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x);
  Parameter& weight() { return *weight_; }
  Parameter* bias() { return bias_; }

 private:
  Parameter* weight_;
  Parameter* bias_ = nullptr;
};

class BatchNorm2d : public Module {
 public:
  // A frozen layer always uses its running statistics and does not learn gamma and beta.
  explicit BatchNorm2d(std::int64_t channels, bool frozen = false, double momentum = 0.1,
                       double eps = 1e-5);
  Tensor forward(const Tensor& x);

 private:
  bool frozen_;
  double momentum_, eps_;
  Parameter* gamma_;
  Parameter* beta_;
  Tensor* running_mean_;
  Tensor* running_var_;
};

class Dropout : public Module {
 public:
  Dropout(float p, std::uint64_t seed);
  Tensor forward(const Tensor& x);

 private:
  float p_;
  std::uint64_t seed_;
  std::uint64_t offset_ = 0;  // advances by the element count of every training call
};

}  // namespace dsn
