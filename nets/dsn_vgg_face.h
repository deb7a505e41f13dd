// DSN-VGG-Face (Fan, Lam, Li, ICMI 2018): a VGG-16 backbone with the DSS modifications and six
// deeply supervised side outputs joined by short connections, `paper` preset.
//
// Graph (sides m = 1..6, side 6 deepest):
// - Supervision block on the tap of side m: k x k conv to W channels + ReLU, then a 1x1 conv to
//   one channel, giving the score map A(m). (k, W) = (7, C), (5, C), (5, C/2), (5, C/2), (3, C/4),
//   (3, C/4) for sides 6, 5, 4, 3, 2, 1.
// - Short connections (DSS topology, r = 1): R(m) = A(m) + sum over the sources i of m of
//   crop(up_f(R(i))), where sides 4 and 3 take sources 6 and 5, sides 2 and 1 take 6, 5, 4 and 3,
//   and sides 6 and 5 take none. up_f is a frozen bilinear transposed conv (kernel 2f, stride f,
//   pad 0), f = stride(i) / stride(m) from the backbone strides, and crop keeps the top-left
//   window of R(m)'s size.
// - Side logits: a fully connected layer from the flattened R(m) to the classes.
// - Fusion: the sum of every R(m) upsampled to side 1's grid (f = stride(m) / stride(1)) and
//   cropped to the input size, then a fully connected layer to the classes. Side 1's map is 8
//   pixels larger than the input (conv1_1 pad 5), so it is cropped without upsampling.
// Head sizes follow from the graph: at construction a shapes-only pass measures every R(m) and
// the fused map, so any valid input size builds the same code.
//
// Parameter names (dotted, the checkpoint keys):
//   conv{b}_{i}.weight/.bias   backbone, VGG-16 names (conv1_1 ... conv5_3)
//   side{m}.conv.weight/.bias  k x k supervision conv of side m
//   side{m}.score.weight/.bias 1x1 conv to the score map A(m)
//   side{m}.fc.weight/.bias    side classifier
//   up{i}_to_{m}.weight        frozen upsampling of R(i) onto side m's grid
//   up{i}_to_fuse.weight       frozen upsampling of R(i) for the fusion
//   fuse_fc.weight/.bias       fused classifier
//
// Initialisation and multipliers follow the authors' Caffe release (file
// DSN-VGG-FACE/train_val.prototxt of github.com/LuyuProgram/DSN). Supervision, score and FC
// weights are N(0, 0.01) with zero biases. The backbone would start from VGG-Face weights, and
// without them it gets He-normal weights N(0, sqrt(2 / fan_in)) and zero biases from
// NetConfig::seed. Learning-rate multipliers weight / bias: backbone, supervision convs and FC
// heads 1 / 2, score convs 0.1 / 0.2, upsampling 0. Weight decay multipliers: 1 for weights, 0
// for biases.
// NOTE: with the He-normal backbone and 0-255 inputs, the initial logits at 224 x 224 reach
// hundreds (a loss near 1200 on random inputs, against 14 on the small config), because the
// head fillers were chosen for a pretrained backbone. Whether SGD at the reference learning rates
// is stable from this start is untested.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "nets/emotion_net.h"

namespace dsn::nets {

// One side output's trainable layers: supervision conv, score conv and classifier.
class SideOutput : public Module {
 public:
  SideOutput(std::int64_t in_channels, std::int64_t width, std::int64_t kernel);
  Conv2d& conv() { return *conv_; }
  Conv2d& score() { return *score_; }
  Linear& fc();
  // Creates the classifier once the flattened map size is known.
  Linear& add_fc(std::int64_t in_features, std::int64_t classes);

 private:
  Conv2d* conv_;
  Conv2d* score_;
  Linear* fc_ = nullptr;
};

class DsnVggFace : public EmotionNet {
 public:
  static constexpr std::int64_t kSides = 6;

  // Throws dsn::Error for an invalid configuration and for preset "release" (not implemented).
  explicit DsnVggFace(const NetConfig& config);

  // x (N, 3, S, S) -> six side logits (sides 1..6) and the fused logits, each (N, classes).
  DsnOutput forward(const Tensor& x) override;

  // Backbone stride of side m's map relative to the input, m = 1..6.
  std::int64_t side_stride(std::int64_t side) const;

 private:
  struct Connection {
    std::int64_t source;  // the side i whose refined map is upsampled
    BilinearUpsample* up;
  };

  // Refined maps R(1..6) at index 1..6 (index 0 unused) from the backbone taps.
  std::vector<Tensor> refined_maps(const std::vector<Tensor>& taps);
  // Sum of the refined maps on the input's grid, (N, 1, height, width).
  Tensor fused_map(const std::vector<Tensor>& refined, std::int64_t height, std::int64_t width);

  std::vector<BackboneLayer> layers_;
  std::vector<Conv2d*> convs_;
  std::array<std::int64_t, kSides + 1> strides_{};
  std::array<SideOutput*, kSides + 1> sides_{};
  std::array<std::vector<Connection>, kSides + 1> incoming_;  // short connections into side m
  std::vector<Connection> to_fuse_;                           // upsampling of sides 2..6
  Linear* fuse_fc_ = nullptr;
};

}  // namespace dsn::nets
