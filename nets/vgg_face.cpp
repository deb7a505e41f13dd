#include "nets/vgg_face.h"

#include "engine/autograd.h"
#include "engine/error.h"

namespace dsn::nets {

VggFace::VggFace(const NetConfig& config) : EmotionNet(config) {
  validate_config(config);
  DSN_CHECK(config.model == "vgg_face", "VggFace: config model is '{}', expected 'vgg_face'",
            config.model);

  layers_ = vgg16_layers(config.backbone_widths, false);
  convs_ = add_backbone(layers_);

  // fc6's input size: run the backbone without computing anything.
  std::int64_t features = 0;
  {
    LayerRecorder shape_pass(true);
    RecorderScope scope(*this, &shape_pass);
    autograd::NoGradGuard no_grad;
    const Tensor x = Tensor::empty({1, 3, config.input_size, config.input_size});
    features = run_backbone(layers_, convs_, x, nullptr).numel();
  }

  fc6_ = &register_module("fc6", std::make_unique<Linear>(features, config.fc_width));
  drop6_ =
      &register_module("drop6", std::make_unique<Dropout>(config.dropout, derived_seed("drop6")));
  fc7_ = &register_module("fc7", std::make_unique<Linear>(config.fc_width, config.fc_width));
  drop7_ =
      &register_module("drop7", std::make_unique<Dropout>(config.dropout, derived_seed("drop7")));
  fc8_ = &register_module("fc8", std::make_unique<Linear>(config.fc_width, config.num_classes));

  for (auto [layer, name] : {std::pair{fc6_, "fc6"}, std::pair{fc7_, "fc7"}}) {
    init_normal(layer->weight(), std::string(name) + ".weight", 0.005f);
    init::constant(layer->bias()->value, 0.1f);
    set_multipliers(layer->weight(), layer->bias(), 1.0f, 2.0f);
  }
  init_normal(fc8_->weight(), "fc8.weight", 0.01f);
  set_multipliers(fc8_->weight(), fc8_->bias(), 1.0f, 2.0f);
}

DsnOutput VggFace::forward(const Tensor& x) {
  check_input(x);
  Tensor y = run_backbone(layers_, convs_, x, nullptr);
  part_ = NetPart::Heads;
  y = fc("fc6", *fc6_, y, true);
  y = dropout("drop6", *drop6_, y);
  y = fc("fc7", *fc7_, y, true);
  y = dropout("drop7", *drop7_, y);
  DsnOutput output;
  output.fused_logits = fc("fc8", *fc8_, y, false);
  return output;
}

}  // namespace dsn::nets
