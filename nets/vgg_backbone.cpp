#include "nets/vgg_backbone.h"

#include <fmt/format.h>

#include "engine/error.h"
#include "kernels/conv2d.h"
#include "kernels/pool2d.h"

namespace dsn::nets {

std::vector<BackboneLayer> vgg16_layers(const std::vector<std::int64_t>& widths, bool dsn) {
  DSN_CHECK(widths.size() == 5, "vgg16_layers: expected 5 block widths, got {}", widths.size());
  constexpr std::int64_t kConvsPerBlock[5] = {2, 2, 3, 3, 3};

  std::vector<BackboneLayer> layers;
  for (std::int64_t block = 1; block <= 5; ++block) {
    const std::int64_t convs = kConvsPerBlock[block - 1];
    for (std::int64_t i = 1; i <= convs; ++i) {
      BackboneLayer conv;
      conv.name = fmt::format("conv{}_{}", block, i);
      conv.op = BackboneOp::Conv;
      conv.out_channels = widths[static_cast<std::size_t>(block - 1)];
      conv.kernel = 3;
      conv.stride = 1;
      // DSS pads conv1_1 by 5, so conv1's maps are 8 pixels larger than the input.
      conv.pad = dsn && block == 1 && i == 1 ? 5 : 1;
      conv.side = dsn && i == convs ? block : 0;
      layers.push_back(conv);
    }
    BackboneLayer pool;
    pool.name = fmt::format("pool{}", block);
    pool.op = BackboneOp::MaxPool;
    const bool overlapping = dsn && block >= 4;
    pool.kernel = overlapping ? 3 : 2;
    pool.stride = 2;
    pool.pad = overlapping ? 1 : 0;
    layers.push_back(pool);
  }
  if (dsn) {
    BackboneLayer pool5a;
    pool5a.name = "pool5a";
    pool5a.op = BackboneOp::AvgPool;
    pool5a.kernel = 3;
    pool5a.stride = 1;
    pool5a.pad = 1;
    pool5a.side = 6;
    layers.push_back(pool5a);
  }
  return layers;
}

ops::Pool2dParams pool_params(const BackboneLayer& layer) {
  ops::Pool2dParams params;
  params.kernel_h = params.kernel_w = layer.kernel;
  params.stride_h = params.stride_w = layer.stride;
  params.pad_h = params.pad_w = layer.pad;
  params.ceil_mode = true;
  return params;
}

std::vector<std::int64_t> output_sizes(const std::vector<BackboneLayer>& layers,
                                       std::int64_t input_size) {
  std::vector<std::int64_t> sizes;
  std::int64_t size = input_size;
  for (const BackboneLayer& layer : layers) {
    if (layer.op == BackboneOp::Conv) {
      Conv2dShape shape;
      shape.h = shape.w = size;
      shape.r = shape.s = layer.kernel;
      shape.stride_h = shape.stride_w = layer.stride;
      shape.pad_h = shape.pad_w = layer.pad;
      size = shape.out_h();
    } else {
      Pool2dShape shape;
      shape.h = shape.w = size;
      shape.kernel_h = shape.kernel_w = layer.kernel;
      shape.stride_h = shape.stride_w = layer.stride;
      shape.pad_h = shape.pad_w = layer.pad;
      shape.ceil_mode = true;
      size = shape.out_h();
    }
    sizes.push_back(size);
  }
  return sizes;
}

std::vector<std::int64_t> output_strides(const std::vector<BackboneLayer>& layers) {
  std::vector<std::int64_t> strides;
  std::int64_t stride = 1;
  for (const BackboneLayer& layer : layers) {
    stride *= layer.stride;
    strides.push_back(stride);
  }
  return strides;
}

}  // namespace dsn::nets
