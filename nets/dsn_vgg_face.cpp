// DSN-VGG-Face, `paper` preset: construction (layers, initialisation, head sizes from a
// shapes-only pass) and the forward pass. The graph is described in dsn_vgg_face.h.
#include "nets/dsn_vgg_face.h"

#include <fmt/format.h>

#include "engine/autograd.h"
#include "engine/error.h"

namespace dsn::nets {
namespace {

struct SideSpec {
  std::int64_t side;
  std::int64_t kernel;                // supervision conv k x k, pad k / 2
  std::int64_t width_divisor;         // W = C / width_divisor
  std::vector<std::int64_t> sources;  // sides whose refined maps feed this one
};

// Supervision blocks and short connections of DSN-VGG-Face, deepest side first (the order in
// which refined maps become available).
const std::vector<SideSpec>& side_specs() {
  static const std::vector<SideSpec> specs = {
      {6, 7, 1, {}},     {5, 5, 1, {}},           {4, 5, 2, {6, 5}},
      {3, 5, 2, {6, 5}}, {2, 3, 4, {6, 5, 4, 3}}, {1, 3, 4, {6, 5, 4, 3}},
  };
  return specs;
}

constexpr float kHeadStd = 0.01f;

}  // namespace

SideOutput::SideOutput(std::int64_t in_channels, std::int64_t width, std::int64_t kernel) {
  Conv2dOptions conv;
  conv.in_channels = in_channels;
  conv.out_channels = width;
  conv.kernel = kernel;
  conv.pad = kernel / 2;
  conv.relu = true;
  conv_ = &register_module("conv", std::make_unique<Conv2d>(conv));

  Conv2dOptions score;
  score.in_channels = width;
  score.out_channels = 1;
  score.kernel = 1;
  score_ = &register_module("score", std::make_unique<Conv2d>(score));
}

Linear& SideOutput::fc() {
  DSN_CHECK(fc_ != nullptr, "SideOutput::fc: the classifier has not been created yet");
  return *fc_;
}

Linear& SideOutput::add_fc(std::int64_t in_features, std::int64_t classes) {
  DSN_CHECK(fc_ == nullptr, "SideOutput::add_fc: the classifier exists already");
  fc_ = &register_module("fc", std::make_unique<Linear>(in_features, classes));
  return *fc_;
}

DsnVggFace::DsnVggFace(const NetConfig& config) : EmotionNet(config) {
  validate_config(config);
  DSN_CHECK(config.model == "dsn_vgg_face",
            "DsnVggFace: config model is '{}', expected "
            "'dsn_vgg_face'",
            config.model);
  if (config.preset == "release") {
    fail(
        "DsnVggFace: preset 'release' (learned 1x1 merge and fusion convolutions, fused-only "
        "test scores) is not implemented yet; use preset 'paper'");
  }

  // Backbone, and the channels and stride of each side's tap.
  layers_ = vgg16_layers(config.backbone_widths, true);
  convs_ = add_backbone(layers_);
  const std::vector<std::int64_t> layer_strides = output_strides(layers_);
  std::array<std::int64_t, kSides + 1> tap_channels{};
  std::int64_t channels = 3;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i].op == BackboneOp::Conv) channels = layers_[i].out_channels;
    if (layers_[i].side > 0) {
      tap_channels[static_cast<std::size_t>(layers_[i].side)] = channels;
      strides_[static_cast<std::size_t>(layers_[i].side)] = layer_strides[i];
    }
  }

  // Side outputs, deepest first, each preceded by the upsampling of its sources.
  const auto make_upsample = [&](std::int64_t source, std::int64_t target,
                                 const std::string& name) {
    const std::int64_t ratio = side_stride(source) / side_stride(target);
    DSN_CHECK(ratio >= 2 && ratio * side_stride(target) == side_stride(source),
              "DsnVggFace: side {} (stride {}) cannot be upsampled onto side {} (stride {})",
              source, side_stride(source), target, side_stride(target));
    return Connection{source, &register_module(name, std::make_unique<BilinearUpsample>(ratio))};
  };
  for (const SideSpec& spec : side_specs()) {
    const auto m = static_cast<std::size_t>(spec.side);
    for (std::int64_t source : spec.sources) {
      incoming_[m].push_back(
          make_upsample(source, spec.side, fmt::format("up{}_to_{}", source, spec.side)));
    }
    const std::string name = fmt::format("side{}", spec.side);
    sides_[m] = &register_module(
        name, std::make_unique<SideOutput>(tap_channels[m], config.side_width / spec.width_divisor,
                                           spec.kernel));
    SideOutput& side = *sides_[m];
    init_normal(side.conv().weight(), name + ".conv.weight", kHeadStd);
    set_multipliers(side.conv().weight(), side.conv().bias(), 1.0f, 2.0f);
    init_normal(side.score().weight(), name + ".score.weight", kHeadStd);
    set_multipliers(side.score().weight(), side.score().bias(), 0.1f, 0.2f);
  }
  for (std::int64_t source = kSides; source >= 2; --source) {
    to_fuse_.push_back(make_upsample(source, 1, fmt::format("up{}_to_fuse", source)));
  }

  // Head sizes: run the graph up to the classifiers without computing anything.
  std::vector<Tensor> refined;
  Tensor fused;
  {
    LayerRecorder shape_pass(true);
    RecorderScope scope(*this, &shape_pass);
    autograd::NoGradGuard no_grad;
    const Tensor x = Tensor::empty({1, 3, config.input_size, config.input_size});
    std::vector<Tensor> taps(kSides + 1);
    run_backbone(layers_, convs_, x, &taps);
    refined = refined_maps(taps);
    fused = fused_map(refined, config.input_size, config.input_size);
  }
  for (std::int64_t m = 1; m <= kSides; ++m) {
    Linear& fc = sides_[static_cast<std::size_t>(m)]->add_fc(
        refined[static_cast<std::size_t>(m)].numel(), config.num_classes);
    init_normal(fc.weight(), fmt::format("side{}.fc.weight", m), kHeadStd);
    set_multipliers(fc.weight(), fc.bias(), 1.0f, 2.0f);
  }
  fuse_fc_ =
      &register_module("fuse_fc", std::make_unique<Linear>(fused.numel(), config.num_classes));
  init_normal(fuse_fc_->weight(), "fuse_fc.weight", kHeadStd);
  set_multipliers(fuse_fc_->weight(), fuse_fc_->bias(), 1.0f, 2.0f);
}

std::int64_t DsnVggFace::side_stride(std::int64_t side) const {
  DSN_CHECK(side >= 1 && side <= kSides, "DsnVggFace: side {} is not in 1..{}", side, kSides);
  return strides_[static_cast<std::size_t>(side)];
}

std::vector<Tensor> DsnVggFace::refined_maps(const std::vector<Tensor>& taps) {
  part_ = NetPart::Heads;
  std::vector<Tensor> refined(kSides + 1);
  for (const SideSpec& spec : side_specs()) {
    const auto m = static_cast<std::size_t>(spec.side);
    const std::string name = fmt::format("side{}", spec.side);
    SideOutput& side = *sides_[m];
    const Tensor hidden = conv(name + ".conv", side.conv(), taps[m]);
    const Tensor score = conv(name + ".score", side.score(), hidden);  // A(m), (N, 1, H_m, W_m)
    if (incoming_[m].empty()) {
      refined[m] = score;
      continue;
    }
    std::vector<Tensor> terms = {score};
    for (const Connection& connection : incoming_[m]) {
      const Tensor up =
          upsample(fmt::format("up{}_to_{}", connection.source, spec.side), *connection.up,
                   refined[static_cast<std::size_t>(connection.source)]);
      terms.push_back(crop(fmt::format("up{}_to_{}.crop", connection.source, spec.side), up,
                           score.size(2), score.size(3)));
    }
    refined[m] = sum(name + ".refine", terms);
  }
  return refined;
}

Tensor DsnVggFace::fused_map(const std::vector<Tensor>& refined, std::int64_t height,
                             std::int64_t width) {
  part_ = NetPart::Heads;
  std::vector<Tensor> terms = {crop("side1.crop", refined[1], height, width)};
  for (const Connection& connection : to_fuse_) {
    const Tensor up = upsample(fmt::format("up{}_to_fuse", connection.source), *connection.up,
                               refined[static_cast<std::size_t>(connection.source)]);
    terms.push_back(crop(fmt::format("up{}_to_fuse.crop", connection.source), up, height, width));
  }
  return sum("fuse", terms);
}

DsnOutput DsnVggFace::forward(const Tensor& x) {
  check_input(x);
  std::vector<Tensor> taps(kSides + 1);
  run_backbone(layers_, convs_, x, &taps);
  const std::vector<Tensor> refined = refined_maps(taps);
  const Tensor fused = fused_map(refined, x.size(2), x.size(3));

  DsnOutput output;
  for (std::int64_t m = 1; m <= kSides; ++m) {
    const auto index = static_cast<std::size_t>(m);
    output.side_logits.push_back(
        fc(fmt::format("side{}.fc", m), sides_[index]->fc(), refined[index], false));
  }
  output.fused_logits = fc("fuse_fc", *fuse_fc_, fused, false);
  return output;
}

}  // namespace dsn::nets
