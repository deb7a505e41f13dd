// The plain VGG-Face baseline: unmodified VGG-16 (3x3 pad 1 convolutions with ReLU, 2x2 s2 max
// pools), fc6 and fc7 with ReLU and dropout, and fc8 replaced by a layer to the emotion classes.
//
// Parameter names: conv{b}_{i}.weight/.bias (conv1_1 ... conv5_3), fc6, fc7 and fc8
// .weight/.bias. Convolutions get He-normal weights N(0, sqrt(2 / fan_in)) and zero biases,
// because no VGG-Face weights are available. The classifiers use the fillers of the authors'
// Caffe release: fc6 and fc7 N(0, 0.005) with biases 0.1, fc8 N(0, 0.01) with bias 0.
// Multipliers weight / bias: lr 1 / 2, decay 1 / 0.
#pragma once

#include <vector>

#include "nets/emotion_net.h"

namespace dsn::nets {

class VggFace : public EmotionNet {
 public:
  explicit VggFace(const NetConfig& config);

  // x (N, 3, S, S) -> no side logits, fused_logits (N, classes) from fc8.
  DsnOutput forward(const Tensor& x) override;

 private:
  std::vector<BackboneLayer> layers_;
  std::vector<Conv2d*> convs_;
  Linear* fc6_ = nullptr;
  Linear* fc7_ = nullptr;
  Linear* fc8_ = nullptr;
  Dropout* drop6_ = nullptr;
  Dropout* drop7_ = nullptr;
};

}  // namespace dsn::nets
