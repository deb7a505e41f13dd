// EmotionNet: loss, test-time scores, seeding and the recorded layer helpers; make_net.
//
// Each helper either runs its op or, while a shapes-only recorder is attached, computes the
// output shape from the same shape descriptors the ops validate (Conv2dShape, Pool2dShape,
// CropShape) and returns an uninitialised tensor of that shape. Both paths record the same row.
#include "nets/emotion_net.h"

#include <cmath>

#include <fmt/format.h>

#include "engine/error.h"
#include "kernels/conv2d.h"
#include "kernels/layout.h"
#include "kernels/pool2d.h"
#include "nets/dsn_vgg_face.h"
#include "nets/vgg_face.h"

namespace dsn::nets {
namespace {

// SplitMix64's finaliser: spreads every input bit over the output.
std::uint64_t mix64(std::uint64_t value) {
  value += 0x9e3779b97f4a7c15ULL;
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

// FNV-1a over the bytes of `text`: a hash that is the same on every platform, unlike std::hash.
std::uint64_t fnv1a(const std::string& text) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char byte : text) {
    hash ^= byte;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

std::string window_text(std::int64_t kernel, std::int64_t stride, std::int64_t pad) {
  std::string text = fmt::format("{}x{}", kernel, kernel);
  if (stride != 1) text += fmt::format(" s{}", stride);
  if (pad != 0) text += fmt::format(" p{}", pad);
  return text;
}

}  // namespace

Tensor EmotionNet::loss(const DsnOutput& output, const Tensor& labels) {
  Tensor total = ops::softmax_cross_entropy(output.fused_logits, labels);
  for (const Tensor& logits : output.side_logits) {
    total = ops::add(total, ops::softmax_cross_entropy(logits, labels));
  }
  return total;
}

Tensor EmotionNet::scores(const DsnOutput& output) {
  Tensor total = ops::softmax(output.fused_logits);
  for (const Tensor& logits : output.side_logits) {
    total = ops::add(total, ops::softmax(logits));
  }
  const auto outputs = static_cast<float>(output.side_logits.size() + 1);
  return ops::scale(total, 1.0f / outputs);
}

void EmotionNet::check_input(const Tensor& x) const {
  const std::int64_t size = config_.input_size;
  DSN_CHECK(x.defined() && x.dim() == 4 && x.size(1) == 3 && x.size(2) == size && x.size(3) == size,
            "{}: expected an input of shape (N, 3, {}, {}), got {}; resize the images to the "
            "configured input_size",
            config_.model, size, size, x.defined() ? to_string(x.shape()) : "an undefined tensor");
}

std::uint64_t EmotionNet::derived_seed(const std::string& name) const {
  return mix64(config_.seed ^ mix64(fnv1a(name)));
}

void EmotionNet::init_normal(Parameter& parameter, const std::string& name, float stddev) const {
  init::normal(parameter.value, 0.0f, stddev, derived_seed(name));
}

void EmotionNet::set_multipliers(Parameter& weight, Parameter* bias, float weight_lr,
                                 float bias_lr) {
  weight.lr_mult = weight_lr;
  weight.decay_mult = 1.0f;
  if (bias != nullptr) {
    bias->lr_mult = bias_lr;
    bias->decay_mult = 0.0f;
  }
}

std::vector<Conv2d*> EmotionNet::add_backbone(const std::vector<BackboneLayer>& layers) {
  std::vector<Conv2d*> convs;
  std::int64_t channels = 3;
  for (const BackboneLayer& layer : layers) {
    if (layer.op != BackboneOp::Conv) {
      convs.push_back(nullptr);
      continue;
    }
    Conv2dOptions options;
    options.in_channels = channels;
    options.out_channels = layer.out_channels;
    options.kernel = layer.kernel;
    options.stride = layer.stride;
    options.pad = layer.pad;
    options.relu = true;
    Conv2d& conv = register_module(layer.name, std::make_unique<Conv2d>(options));
    const auto fan_in = static_cast<double>(channels * layer.kernel * layer.kernel);
    init_normal(conv.weight(), layer.name + ".weight", static_cast<float>(std::sqrt(2.0 / fan_in)));
    set_multipliers(conv.weight(), conv.bias(), 1.0f, 2.0f);
    convs.push_back(&conv);
    channels = layer.out_channels;
  }
  return convs;
}

Tensor EmotionNet::run_backbone(const std::vector<BackboneLayer>& layers,
                                const std::vector<Conv2d*>& convs, const Tensor& x,
                                std::vector<Tensor>* taps) {
  part_ = NetPart::Backbone;
  Tensor y = x;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const BackboneLayer& layer = layers[i];
    if (layer.op == BackboneOp::Conv) {
      y = conv(layer.name, *convs[i], y);
    } else {
      y = pool(layer.name, layer.op, pool_params(layer), y);
    }
    if (layer.side > 0 && taps != nullptr) {
      DSN_CHECK(static_cast<std::size_t>(layer.side) < taps->size(),
                "run_backbone: no room for side {} in {} taps", layer.side, taps->size());
      (*taps)[static_cast<std::size_t>(layer.side)] = y;
    }
  }
  return y;
}

void EmotionNet::record(const std::string& name, std::string type, const Tensor& output,
                        Module* layer, std::int64_t macs) {
  if (recorder_ == nullptr) return;
  LayerRow row;
  row.name = name;
  row.type = std::move(type);
  row.output = output.shape();
  row.macs = macs;
  row.part = part_;
  if (layer != nullptr) {
    for (const auto& [parameter_name, parameter] : layer->named_parameters()) {
      row.parameters += parameter->value.numel();
      if (parameter->lr_mult != 0.0f) row.trainable_parameters += parameter->value.numel();
    }
  }
  recorder_->add(std::move(row));
}

Tensor EmotionNet::conv(const std::string& name, Conv2d& layer, const Tensor& x) {
  check_float(x, 4, name + " input");
  const Conv2dOptions& options = layer.options();
  DSN_CHECK(x.size(1) == options.in_channels, "{}: expects {} input channels, input {} has {}",
            name, options.in_channels, to_string(x.shape()), x.size(1));
  Conv2dShape shape;
  shape.n = x.size(0);
  shape.c = x.size(1);
  shape.h = x.size(2);
  shape.w = x.size(3);
  shape.k = options.out_channels;
  shape.r = shape.s = options.kernel;
  shape.stride_h = shape.stride_w = options.stride;
  shape.pad_h = shape.pad_w = options.pad;

  Tensor y;
  if (shapes_only()) {
    validate(shape);
    y = Tensor::empty({shape.n, shape.k, shape.out_h(), shape.out_w()});
  } else {
    y = layer.forward(x);
  }
  record(name,
         fmt::format("conv {}{}", window_text(options.kernel, options.stride, options.pad),
                     options.relu ? " +relu" : ""),
         y, &layer, shape.macs());
  return y;
}

Tensor EmotionNet::pool(const std::string& name, BackboneOp op, const ops::Pool2dParams& params,
                        const Tensor& x) {
  DSN_CHECK(op != BackboneOp::Conv, "{}: pool() called with a convolution", name);
  check_float(x, 4, name + " input");
  const bool max = op == BackboneOp::MaxPool;
  Tensor y;
  if (shapes_only()) {
    Pool2dShape shape;
    shape.n = x.size(0);
    shape.c = x.size(1);
    shape.h = x.size(2);
    shape.w = x.size(3);
    shape.kernel_h = params.kernel_h;
    shape.kernel_w = params.kernel_w;
    shape.stride_h = params.stride_h;
    shape.stride_w = params.stride_w;
    shape.pad_h = params.pad_h;
    shape.pad_w = params.pad_w;
    shape.ceil_mode = params.ceil_mode;
    validate(shape);
    y = Tensor::empty({shape.n, shape.c, shape.out_h(), shape.out_w()});
  } else {
    y = max ? ops::max_pool2d(x, params) : ops::avg_pool2d(x, params);
  }
  record(name,
         fmt::format("{} pool {}", max ? "max" : "avg",
                     window_text(params.kernel_h, params.stride_h, params.pad_h)),
         y, nullptr, 0);
  return y;
}

Tensor EmotionNet::upsample(const std::string& name, BilinearUpsample& layer, const Tensor& x) {
  check_float(x, 4, name + " input");
  const std::int64_t factor = layer.factor();
  // The convolution whose backward-data pass this transposed convolution is. Its MAC count is
  // the count of this layer.
  const Conv2dShape shape =
      transposed_conv_as_conv(x.size(0), x.size(1), x.size(2), x.size(3), x.size(1), 2 * factor,
                              2 * factor, factor, factor, 0, 0);
  const Tensor y =
      shapes_only() ? Tensor::empty({shape.n, shape.c, shape.h, shape.w}) : layer.forward(x);
  record(name, fmt::format("deconv {} (bilinear, frozen)", window_text(2 * factor, factor, 0)), y,
         &layer, shape.macs());
  return y;
}

Tensor EmotionNet::crop(const std::string& name, const Tensor& x, std::int64_t out_h,
                        std::int64_t out_w) {
  check_float(x, 4, name + " input");
  Tensor y;
  if (shapes_only()) {
    CropShape shape;
    shape.n = x.size(0);
    shape.c = x.size(1);
    shape.h = x.size(2);
    shape.w = x.size(3);
    shape.out_h = out_h;
    shape.out_w = out_w;
    validate(shape);
    y = Tensor::empty({shape.n, shape.c, out_h, out_w});
  } else {
    y = ops::crop(x, 0, 0, out_h, out_w);
  }
  record(name, "crop top-left", y, nullptr, 0);
  return y;
}

Tensor EmotionNet::sum(const std::string& name, const std::vector<Tensor>& maps) {
  DSN_CHECK(!maps.empty(), "{}: no maps to sum", name);
  for (const Tensor& map : maps) {
    DSN_CHECK(map.shape() == maps.front().shape(), "{}: cannot sum maps of shapes {} and {}", name,
              to_string(maps.front().shape()), to_string(map.shape()));
  }
  Tensor y = maps.front();
  if (shapes_only()) {
    y = Tensor::empty(maps.front().shape());
  } else {
    for (std::size_t i = 1; i < maps.size(); ++i) y = ops::add(y, maps[i]);
  }
  record(name, fmt::format("sum of {} maps", maps.size()), y, nullptr, 0);
  return y;
}

Tensor EmotionNet::fc(const std::string& name, Linear& layer, const Tensor& x, bool relu) {
  DSN_CHECK(x.defined() && x.dim() >= 2, "{}: expected an input of shape (N, ...), got {}", name,
            x.defined() ? to_string(x.shape()) : "an undefined tensor");
  const Tensor flat = x.dim() == 2 ? x : ops::flatten(x);
  const std::int64_t in = layer.weight().value.size(1), out = layer.weight().value.size(0);
  DSN_CHECK(flat.size(1) == in, "{}: expects {} input features, input {} has {}", name, in,
            to_string(x.shape()), flat.size(1));
  Tensor y;
  if (shapes_only()) {
    y = Tensor::empty({flat.size(0), out});
  } else {
    y = layer.forward(flat);
    if (relu) y = ops::relu(y);
  }
  record(name, relu ? "fc +relu" : "fc", y, &layer, flat.size(0) * in * out);
  return y;
}

Tensor EmotionNet::dropout(const std::string& name, Dropout& layer, const Tensor& x) {
  const Tensor y = shapes_only() ? Tensor::empty(x.shape()) : layer.forward(x);
  record(name, "dropout", y, &layer, 0);
  return y;
}

std::unique_ptr<EmotionNet> make_net(const NetConfig& config) {
  validate_config(config);
  if (config.model == "dsn_vgg_face") return std::make_unique<DsnVggFace>(config);
  if (config.model == "vgg_face") return std::make_unique<VggFace>(config);
  fail(fmt::format("make_net: unknown model '{}'", config.model));
}

}  // namespace dsn::nets
