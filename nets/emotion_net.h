// The interface shared by every emotion-recognition network, so programs can hold any of them:
// forward to side and fused logits, the training loss and the test-time class probabilities.
// The networks build their forward passes from the layer helpers declared here. Each helper runs
// one layer and, while a LayerRecorder is attached, appends its row to the layer table.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/module.h"
#include "engine/tensor.h"
#include "nets/config.h"
#include "nets/summary.h"
#include "nets/vgg_backbone.h"

namespace dsn::nets {

struct DsnOutput {
  std::vector<Tensor> side_logits;  // sides 1..M in order, each (N, classes); empty for M = 0
  Tensor fused_logits;              // (N, classes); the only output of a network without sides
};

class EmotionNet : public Module {
 public:
  explicit EmotionNet(NetConfig config) : config_(std::move(config)) {}

  // x (N, 3, S, S): RGB, 0-255 minus NetConfig::mean, S = NetConfig::input_size.
  virtual DsnOutput forward(const Tensor& x) = 0;

  // Sum of the softmax cross-entropies of every side and of the fused logits (loss weights 1),
  // each the mean over the batch; labels int32 (N). Returns a tensor of shape ().
  virtual Tensor loss(const DsnOutput& output, const Tensor& labels);

  // Test-time class probabilities (N, classes): (P_fuse + sum_m P_side(m)) / (1 + M), where P is
  // the softmax of each output (Eq. 5 of Fan, Lam and Li, ICMI 2018). With M = 0 this is the
  // softmax of the fused logits.
  virtual Tensor scores(const DsnOutput& output);

  const NetConfig& config() const { return config_; }

  // Attaches a recorder for the next forward passes, or detaches with nullptr.
  void set_recorder(LayerRecorder* recorder) { recorder_ = recorder; }

 protected:
  // Layer helpers: run one layer (or only compute its output shape while a shapes-only
  // recorder is attached) and record its row. `part_` selects the table section.
  Tensor conv(const std::string& name, Conv2d& layer, const Tensor& x);
  Tensor pool(const std::string& name, BackboneOp op, const ops::Pool2dParams& params,
              const Tensor& x);
  Tensor upsample(const std::string& name, BilinearUpsample& layer, const Tensor& x);
  // Top-left window of size out_h x out_w (offset 0, as the Crop layers of the DSN release).
  Tensor crop(const std::string& name, const Tensor& x, std::int64_t out_h, std::int64_t out_w);
  // Element-wise sum of maps of equal shape.
  Tensor sum(const std::string& name, const std::vector<Tensor>& maps);
  // Fully connected layer on x flattened to (N, features), then ReLU when `relu` is true.
  Tensor fc(const std::string& name, Linear& layer, const Tensor& x, bool relu);
  Tensor dropout(const std::string& name, Dropout& layer, const Tensor& x);

  // Registers one Conv2d per convolution of `layers` under the layer's name ("conv1_1"), with
  // fused ReLU, He-normal weights (std sqrt(2 / fan_in)), zero biases and Caffe multipliers
  // lr 1 / 2 and decay 1 / 0 for weight / bias. Returns them in layer order.
  std::vector<Conv2d*> add_backbone(const std::vector<BackboneLayer>& layers);
  // Runs the backbone; taps[m] receives the output of the layer feeding side m (taps must have
  // room for every side index in `layers`). Returns the last layer's output.
  Tensor run_backbone(const std::vector<BackboneLayer>& layers, const std::vector<Conv2d*>& convs,
                      const Tensor& x, std::vector<Tensor>* taps);

  // Checks x against (N, 3, input_size, input_size).
  void check_input(const Tensor& x) const;

  // A random stream seed derived from NetConfig::seed and a parameter or layer name, so each
  // gets its own stream and the values do not depend on registration order.
  std::uint64_t derived_seed(const std::string& name) const;
  // Draws `parameter` from N(0, stddev) with derived_seed(name).
  void init_normal(Parameter& parameter, const std::string& name, float stddev) const;
  // Sets lr_mult and decay_mult of a layer's weight and bias (bias decay is always 0).
  static void set_multipliers(Parameter& weight, Parameter* bias, float weight_lr, float bias_lr);

  bool shapes_only() const { return recorder_ != nullptr && recorder_->shapes_only(); }

  NetPart part_ = NetPart::Backbone;

 private:
  void record(const std::string& name, std::string type, const Tensor& output, Module* layer,
              std::int64_t macs);

  NetConfig config_;
  LayerRecorder* recorder_ = nullptr;
};

// Attaches a recorder to a network for the lifetime of the scope.
class RecorderScope {
 public:
  RecorderScope(EmotionNet& net, LayerRecorder* recorder) : net_(net) {
    net_.set_recorder(recorder);
  }
  ~RecorderScope() { net_.set_recorder(nullptr); }
  RecorderScope(const RecorderScope&) = delete;
  RecorderScope& operator=(const RecorderScope&) = delete;

 private:
  EmotionNet& net_;
};

// Builds the network named by config.model after validate_config(). Throws dsn::Error for a
// configuration that is invalid or not implemented (the DSN `release` preset).
std::unique_ptr<EmotionNet> make_net(const NetConfig& config);

}  // namespace dsn::nets
