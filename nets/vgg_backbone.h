// The VGG-16 convolution and pooling layers as data, shared by the two VGG networks, the
// configuration checks and the layer table: building, running and sizing all read this list.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/ops.h"

namespace dsn::nets {

enum class BackboneOp { Conv, MaxPool, AvgPool };

struct BackboneLayer {
  std::string name;  // "conv1_1", "pool1"; also the parameter prefix of a convolution
  BackboneOp op = BackboneOp::Conv;
  std::int64_t out_channels = 0;  // convolutions only
  std::int64_t kernel = 3, stride = 1, pad = 1;
  std::int64_t side = 0;  // the DSN side output fed by this layer's output, 0 for none
};

// VGG-16 with block widths `widths` (5 entries). The plain variant is the original network:
// 3x3 pad 1 convolutions, 2x2 s2 max pools. The DSN variant has the changes of DSS (Hou et al.,
// CVPR 2017) that the DSN release keeps in DSN-VGG-FACE/train_val.prototxt. These are conv1_1
// pad 5, pool4 and pool5 max 3x3 s2 p1, an extra pool5a average 3x3 s1 p1, and side taps on
// conv1_2, conv2_2, conv3_3, conv4_3, conv5_3 (sides 1-5) and pool5a (side 6).
std::vector<BackboneLayer> vgg16_layers(const std::vector<std::int64_t>& widths, bool dsn);

ops::Pool2dParams pool_params(const BackboneLayer& layer);

// Spatial size of each layer's output for a square input of `input_size`, by the same formulas
// as the conv and pooling ops (Caffe ceil rounding for pools).
std::vector<std::int64_t> output_sizes(const std::vector<BackboneLayer>& layers,
                                       std::int64_t input_size);

// Stride of each layer's output grid relative to the input, the product of the strides so far.
std::vector<std::int64_t> output_strides(const std::vector<BackboneLayer>& layers);

}  // namespace dsn::nets
