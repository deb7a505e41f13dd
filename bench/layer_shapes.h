// The layer shapes of DSN-VGG-Face (`paper` preset), DSN-ResNet-50 and DenseNet-121 at a given
// batch and input size, plus small awkward shapes, as data shared by the benchmarks and tests.
//
// Each list contains the network's layers in forward order. Convolutions include the
// supervision k x k and 1x1 score convolutions of the side outputs, and the frozen bilinear
// upsamplings appear as the convolution whose backward-data they are (transposed_conv_as_conv).
// Pooling, batch norm, the top-left crops of the side maps, DenseNet's channel concatenations
// and the fully connected heads complete the lists. distinct_layers() merges layers of equal
// shape and counts them in `repeats`.
// Names follow the Caffe definitions of the networks, with '/' replaced by '_' so that a name
// fits one path component of a benchmark name ("conv2_1/x1" becomes "conv2_1_x1").
//
// Header-only (inline functions), so a test executable can include it without linking a bench
// library. It needs dsn_kernels_cpu for Pool2dShape::out_h and transposed_conv_as_conv.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/gemm.h"
#include "kernels/layout.h"
#include "kernels/pool2d.h"

namespace dsn::bench {

enum class LayerKind {
  Conv,            // conv: y = conv(x, w) (+ bias)
  TransposedConv,  // conv: the convolution whose backward-data is the transposed convolution
  MaxPool,         // pool
  AvgPool,         // pool
  GlobalAvgPool,   // pool, with the kernel covering the whole map
  BatchNorm,       // batch_norm
  Crop,            // crop
  Concat,          // concat
  Linear,          // linear
};

// DenseNet's concatenation of the running feature map (N, existing, H, W) and a layer's new
// channels (N, added, H, W) into (N, existing + added, H, W).
struct ConcatShape {
  std::int64_t n = 1, existing = 1, added = 1, hw = 1;
};

struct LayerShape {
  std::string network;  // "dsn_vgg_face", "dsn_resnet50", "densenet121" or "awkward"
  std::string name;     // Caffe layer name, e.g. "conv1_1", "res3a_branch2a", "up6_to_fuse"
  LayerKind kind = LayerKind::Conv;
  Conv2dShape conv;  // Conv and TransposedConv
  bool bias = false;  // Conv: the layer has a bias term
  Pool2dShape pool;   // MaxPool, AvgPool, GlobalAvgPool
  BatchNormShape batch_norm;
  CropShape crop;
  ConcatShape concat;
  // Linear: the forward product y (N, out) = x (N, in) W^T with W (out, in): m = N, n = out,
  // k = in, trans_b.
  GemmShape linear;
  int repeats = 1;  // layers of the list with this shape, after distinct_layers()
};

struct ShapeOptions {
  std::int64_t batch = 16;
  std::int64_t input_size = 224;
  std::int64_t side_width = 256;  // C, the width of the deepest supervision blocks
  std::int64_t classes = 7;
};

// One side output of a deeply supervised network. Its score map A(m) and refined map R(m) are
// (N, 1, size, size), at `stride` input pixels per map pixel. `sources` are the sides whose
// refined maps are upsampled onto this one (the short connections).
struct SideOutputShape {
  int side = 0;
  std::int64_t size = 0;
  std::int64_t stride = 1;
  std::vector<int> sources;
};

// The side outputs of a network, deepest first (the order in which refined maps exist), and the
// size of the fused map (the input size).
struct SideGraph {
  std::vector<SideOutputShape> sides;
  std::int64_t fused_size = 0;

  const SideOutputShape& side(int index) const {
    for (const SideOutputShape& s : sides) {
      if (s.side == index) return s;
    }
    fail("SideGraph: no side " + std::to_string(index));
  }
};

namespace detail {

// Appends layers to a list while tracking nothing but names and shapes.
class LayerListBuilder {
 public:
  LayerListBuilder(std::string network, std::int64_t batch)
      : network_(std::move(network)), batch_(batch) {}

  // Adds a square convolution of x (N, c, size, size) and returns its output size.
  std::int64_t conv(const std::string& name, std::int64_t c, std::int64_t size, std::int64_t k,
                    std::int64_t kernel, std::int64_t stride, std::int64_t pad, bool bias) {
    LayerShape layer = make(name, LayerKind::Conv);
    layer.conv.n = batch_;
    layer.conv.c = c;
    layer.conv.h = layer.conv.w = size;
    layer.conv.k = k;
    layer.conv.r = layer.conv.s = kernel;
    layer.conv.stride_h = layer.conv.stride_w = stride;
    layer.conv.pad_h = layer.conv.pad_w = pad;
    layer.bias = bias;
    layers_.push_back(layer);
    return layer.conv.out_h();
  }

  // Adds Caffe's bilinear upsampling of a (N, 1, size, size) map by `factor` (kernel 2f,
  // stride f, pad 0) and returns the upsampled size (size + 1) f.
  std::int64_t upsample(const std::string& name, std::int64_t size, std::int64_t factor) {
    LayerShape layer = make(name, LayerKind::TransposedConv);
    layer.conv = transposed_conv_as_conv(batch_, 1, size, size, 1, 2 * factor, 2 * factor, factor,
                                         factor, 0, 0);
    layers_.push_back(layer);
    return (size + 1) * factor;
  }

  std::int64_t pool(const std::string& name, LayerKind kind, std::int64_t c, std::int64_t size,
                    std::int64_t kernel, std::int64_t stride, std::int64_t pad, bool ceil_mode) {
    LayerShape layer = make(name, kind);
    layer.pool.n = batch_;
    layer.pool.c = c;
    layer.pool.h = layer.pool.w = size;
    layer.pool.kernel_h = layer.pool.kernel_w = kernel;
    layer.pool.stride_h = layer.pool.stride_w = stride;
    layer.pool.pad_h = layer.pool.pad_w = pad;
    layer.pool.ceil_mode = ceil_mode;
    layers_.push_back(layer);
    return layer.pool.out_h();
  }

  void batch_norm(const std::string& name, std::int64_t c, std::int64_t size) {
    LayerShape layer = make(name, LayerKind::BatchNorm);
    layer.batch_norm.n = batch_;
    layer.batch_norm.c = c;
    layer.batch_norm.hw = size * size;
    layers_.push_back(layer);
  }

  // Top-left window of size out x out of a (N, 1, size, size) map.
  void crop(const std::string& name, std::int64_t size, std::int64_t out) {
    LayerShape layer = make(name, LayerKind::Crop);
    layer.crop.n = batch_;
    layer.crop.c = 1;
    layer.crop.h = layer.crop.w = size;
    layer.crop.out_h = layer.crop.out_w = out;
    layers_.push_back(layer);
  }

  void concat(const std::string& name, std::int64_t existing, std::int64_t added,
              std::int64_t size) {
    LayerShape layer = make(name, LayerKind::Concat);
    layer.concat = ConcatShape{batch_, existing, added, size * size};
    layers_.push_back(layer);
  }

  void linear(const std::string& name, std::int64_t in, std::int64_t out) {
    LayerShape layer = make(name, LayerKind::Linear);
    layer.linear.trans_b = true;
    layer.linear.m = batch_;
    layer.linear.n = out;
    layer.linear.k = in;
    layers_.push_back(layer);
  }

  std::vector<LayerShape> take() { return std::move(layers_); }

 private:
  LayerShape make(const std::string& name, LayerKind kind) const {
    LayerShape layer;
    layer.network = network_;
    layer.name = name;
    layer.kind = kind;
    return layer;
  }

  std::string network_;
  std::int64_t batch_;
  std::vector<LayerShape> layers_;
};

// A supervision block: k x k convolution (pad k / 2) of width C / width_divisor on a backbone
// tap, then the 1x1 score convolution to one channel.
struct SideSpec {
  int side;
  std::int64_t kernel;
  std::int64_t width_divisor;
  std::vector<int> sources;
};

struct Tap {
  std::int64_t channels = 0, size = 0, stride = 1;
};

// Adds the side outputs, short connections, fusion and heads of a deeply supervised network.
// taps[m] is the backbone output that feeds side m. Upsampling factors are ratios of strides;
// the fused map is at stride 1, where a side of stride 1 is cropped without upsampling.
inline SideGraph add_side_outputs(LayerListBuilder& builder, const std::vector<SideSpec>& specs,
                                  const std::vector<Tap>& taps, const ShapeOptions& options) {
  SideGraph graph;
  graph.fused_size = options.input_size;
  for (const SideSpec& spec : specs) {
    const Tap& tap = taps[static_cast<std::size_t>(spec.side)];
    const std::string side = "side" + std::to_string(spec.side);
    const std::int64_t width = options.side_width / spec.width_divisor;
    builder.conv(side + ".conv", tap.channels, tap.size, width, spec.kernel, 1, spec.kernel / 2,
                 true);
    builder.conv(side + ".score", width, tap.size, 1, 1, 1, 0, true);
    for (int source : spec.sources) {
      const Tap& from = taps[static_cast<std::size_t>(source)];
      const std::string name = "up" + std::to_string(source) + "_to_" + std::to_string(spec.side);
      const std::int64_t up = builder.upsample(name, from.size, from.stride / tap.stride);
      builder.crop(name + ".crop", up, tap.size);
    }
    graph.sides.push_back(SideOutputShape{spec.side, tap.size, tap.stride, spec.sources});
  }
  for (const SideSpec& spec : specs) {
    const Tap& tap = taps[static_cast<std::size_t>(spec.side)];
    const std::string source = std::to_string(spec.side);
    if (tap.stride == 1) {
      builder.crop("side" + source + ".crop", tap.size, options.input_size);
    } else {
      const std::int64_t up = builder.upsample("up" + source + "_to_fuse", tap.size, tap.stride);
      builder.crop("up" + source + "_to_fuse.crop", up, options.input_size);
    }
  }
  for (const SideSpec& spec : specs) {
    const Tap& tap = taps[static_cast<std::size_t>(spec.side)];
    builder.linear("side" + std::to_string(spec.side) + ".fc", tap.size * tap.size,
                   options.classes);
  }
  builder.linear("fuse_fc", options.input_size * options.input_size, options.classes);
  return graph;
}

// VGG-16 with the changes of DSS (Hou et al., CVPR 2017): conv1_1 pads by 5, pool4 and pool5
// are 3x3 stride 2 pad 1, and pool5a (average 3x3 stride 1 pad 1) feeds side 6. Supervision
// blocks and short connections as in the DSN-VGG-Face release (Fan, Lam and Li, ICMI 2018).
inline std::vector<SideSpec> dsn_vgg_face_side_specs() {
  return {{6, 7, 1, {}},     {5, 5, 1, {}},           {4, 5, 2, {6, 5}},
          {3, 5, 2, {6, 5}}, {2, 3, 4, {6, 5, 4, 3}}, {1, 3, 4, {6, 5, 4, 3}}};
}

inline std::vector<SideSpec> dsn_resnet50_side_specs() {
  return {{5, 7, 1, {}},     {4, 5, 1, {}},    {3, 5, 2, {5, 4}},
          {2, 5, 2, {5, 4}}, {1, 3, 4, {5, 4, 3, 2}}};
}

inline SideGraph build_dsn_vgg_face(LayerListBuilder& b, const ShapeOptions& o) {
  constexpr std::int64_t kWidths[5] = {64, 128, 256, 512, 512};
  constexpr int kConvsPerBlock[5] = {2, 2, 3, 3, 3};
  std::vector<Tap> taps(7);
  std::int64_t size = o.input_size, channels = 3, stride = 1;
  for (int block = 1; block <= 5; ++block) {
    const std::int64_t width = kWidths[block - 1];
    for (int i = 1; i <= kConvsPerBlock[block - 1]; ++i) {
      const std::int64_t pad = block == 1 && i == 1 ? 5 : 1;
      const std::string name = "conv" + std::to_string(block) + "_" + std::to_string(i);
      size = b.conv(name, channels, size, width, 3, 1, pad, true);
      channels = width;
    }
    taps[static_cast<std::size_t>(block)] = Tap{channels, size, stride};
    const bool overlapping = block >= 4;
    size = b.pool("pool" + std::to_string(block), LayerKind::MaxPool, channels, size,
                  overlapping ? 3 : 2, 2, overlapping ? 1 : 0, true);
    stride *= 2;
  }
  size = b.pool("pool5a", LayerKind::AvgPool, channels, size, 3, 1, 1, true);
  taps[6] = Tap{channels, size, stride};
  return add_side_outputs(b, dsn_vgg_face_side_specs(), taps, o);
}

// ResNet-50 v1 as in Caffe (KaimingHe/deep-residual-networks): the stride 2 of stages 3 to 5
// sits in the first 1x1 convolution (branch2a) and the projection (branch1), convolutions have
// no bias, and each is followed by batch norm.
inline SideGraph build_dsn_resnet50(LayerListBuilder& b, const ShapeOptions& o) {
  struct Stage {
    int index;
    int blocks;
    std::int64_t mid, out, stride;
  };
  constexpr Stage kStages[4] = {
      {2, 3, 64, 256, 1}, {3, 4, 128, 512, 2}, {4, 6, 256, 1024, 2}, {5, 3, 512, 2048, 2}};
  std::vector<Tap> taps(6);
  std::int64_t size = b.conv("conv1", 3, o.input_size, 64, 7, 2, 3, false);
  b.batch_norm("bn_conv1", 64, size);
  taps[1] = Tap{64, size, 2};
  size = b.pool("pool1", LayerKind::MaxPool, 64, size, 3, 2, 0, true);
  std::int64_t channels = 64, stride = 4;
  for (const Stage& stage : kStages) {
    for (int j = 0; j < stage.blocks; ++j) {
      const std::string block = std::to_string(stage.index) + char('a' + j);
      const std::int64_t first_stride = j == 0 ? stage.stride : 1;
      if (j == 0) {
        const std::int64_t out = b.conv("res" + block + "_branch1", channels, size, stage.out, 1,
                                        first_stride, 0, false);
        b.batch_norm("bn" + block + "_branch1", stage.out, out);
      }
      const std::int64_t inner = b.conv("res" + block + "_branch2a", channels, size, stage.mid, 1,
                                        first_stride, 0, false);
      b.batch_norm("bn" + block + "_branch2a", stage.mid, inner);
      b.conv("res" + block + "_branch2b", stage.mid, inner, stage.mid, 3, 1, 1, false);
      b.batch_norm("bn" + block + "_branch2b", stage.mid, inner);
      b.conv("res" + block + "_branch2c", stage.mid, inner, stage.out, 1, 1, 0, false);
      b.batch_norm("bn" + block + "_branch2c", stage.out, inner);
      size = inner;
      channels = stage.out;
    }
    stride *= stage.stride;
    taps[static_cast<std::size_t>(stage.index)] = Tap{channels, size, stride};
  }
  return add_side_outputs(b, dsn_resnet50_side_specs(), taps, o);
}

}  // namespace detail

// Every layer of DSN-VGG-Face in the `paper` preset, which has none of the release's learned
// merge and fusion convolutions. The list has 13 backbone convolutions with bias, 5 max pools
// and pool5a, 6 supervision blocks (k x k conv and 1x1 score conv), the bilinear upsamplings
// and crops of the short connections and of the fusion, and the 7 fully connected heads.
inline std::vector<LayerShape> dsn_vgg_face_layers(const ShapeOptions& options = {}) {
  detail::LayerListBuilder builder("dsn_vgg_face", options.batch);
  detail::build_dsn_vgg_face(builder, options);
  return builder.take();
}

inline SideGraph dsn_vgg_face_sides(const ShapeOptions& options = {}) {
  detail::LayerListBuilder builder("dsn_vgg_face", options.batch);
  return detail::build_dsn_vgg_face(builder, options);
}

// Every layer of DSN-ResNet-50: 53 convolutions and their batch norms, pool1, 5 supervision
// blocks with their upsamplings, crops and heads.
inline std::vector<LayerShape> dsn_resnet50_layers(const ShapeOptions& options = {}) {
  detail::LayerListBuilder builder("dsn_resnet50", options.batch);
  detail::build_dsn_resnet50(builder, options);
  return builder.take();
}

inline SideGraph dsn_resnet50_sides(const ShapeOptions& options = {}) {
  detail::LayerListBuilder builder("dsn_resnet50", options.batch);
  return detail::build_dsn_resnet50(builder, options);
}

// The selection of DenseNet-121 dense layers that densenet121_layers lists.
enum class DenseLayers {
  Every,           // all 58: each 1x1 bottleneck has its own input width, 64 + 32 i and so on
  Representative,  // the first, middle ((L + 1) / 2) and last of each block of L layers
};

// DenseNet-121 (Huang et al., CVPR 2017) as in the DSN release's Caffe definition. conv1 7x7/2
// and batch norm and a max pool 3x3/2 pad 1 come first. Dense blocks of 6, 12, 24 and 16 layers
// follow (batch norm, 1x1 conv to 128, batch norm, 3x3 conv to 32, concatenation), with
// transitions between them (batch norm, 1x1 conv halving the channels, average pool 2x2/2).
// Last come a batch norm, the global average pool and the 7-way fully connected classifier.
// Convolutions have no bias, and the 3x3 growth convolutions of a block all have one shape.
// NOTE: pool1 uses floor rounding, giving 56 (and 28, 14, 7 after the transitions) as PyTorch's
// DenseNet-121 does. Caffe's ceil rounding of the same pooling parameters would give 57.
inline std::vector<LayerShape> densenet121_layers(const ShapeOptions& options = {},
                                                  DenseLayers selection = DenseLayers::Every) {
  constexpr int kLayersPerBlock[4] = {6, 12, 24, 16};
  constexpr std::int64_t kGrowth = 32, kBottleneck = 128;
  detail::LayerListBuilder b("densenet121", options.batch);
  std::int64_t size = b.conv("conv1", 3, options.input_size, 64, 7, 2, 3, false);
  b.batch_norm("conv1_bn", 64, size);
  size = b.pool("pool1", LayerKind::MaxPool, 64, size, 3, 2, 1, false);
  std::int64_t channels = 64;
  for (int block = 2; block <= 5; ++block) {
    const int count = kLayersPerBlock[block - 2];
    for (int i = 1; i <= count; ++i) {
      const bool listed = selection == DenseLayers::Every || i == 1 ||
                          i == (count + 1) / 2 || i == count;
      const std::string name = "conv" + std::to_string(block) + "_" + std::to_string(i);
      if (listed) {
        b.batch_norm(name + "_x1_bn", channels, size);
        b.conv(name + "_x1", channels, size, kBottleneck, 1, 1, 0, false);
        b.batch_norm(name + "_x2_bn", kBottleneck, size);
        b.conv(name + "_x2", kBottleneck, size, kGrowth, 3, 1, 1, false);
        b.concat("concat_" + std::to_string(block) + "_" + std::to_string(i), channels, kGrowth,
                 size);
      }
      channels += kGrowth;
    }
    const std::string name = "conv" + std::to_string(block) + "_blk";
    b.batch_norm(name + "_bn", channels, size);
    if (block < 5) {
      b.conv(name, channels, size, channels / 2, 1, 1, 0, false);
      channels /= 2;
      size = b.pool("pool" + std::to_string(block), LayerKind::AvgPool, channels, size, 2, 2, 0,
                    true);
    }
  }
  b.pool("pool5", LayerKind::GlobalAvgPool, channels, size, size, 1, 0, true);
  b.linear("fc", channels, options.classes);
  return b.take();
}

// Small shapes that break tiling assumptions: odd sizes, channels that are not a multiple of a
// tile, stride 2, 1x1, padding larger than 1, batch 1 and 3, a transposed convolution whose
// output is cropped. The batch comes from the shape, not from ShapeOptions.
inline std::vector<LayerShape> awkward_layers() {
  std::vector<LayerShape> layers;
  const auto add_conv = [&layers](const std::string& name, Conv2dShape shape) {
    LayerShape layer;
    layer.network = "awkward";
    layer.name = name;
    layer.conv = shape;
    layers.push_back(layer);
  };
  // Fields: n, c, h, w, k, r, s, stride_h, stride_w, pad_h, pad_w.
  add_conv("odd_3x3_s2", {3, 5, 17, 13, 7, 3, 3, 2, 2, 1, 1});
  add_conv("single_1x1", {1, 3, 9, 11, 1, 1, 1, 1, 1, 0, 0});
  add_conv("wide_5x5", {2, 33, 15, 15, 65, 5, 5, 1, 1, 2, 2});
  add_conv("narrow_out_3x3", {3, 130, 7, 7, 31, 3, 3, 1, 1, 1, 1});
  add_conv("pad5_3x3", {2, 3, 20, 20, 8, 3, 3, 1, 1, 5, 5});
  add_conv("odd_7x7_s2", {1, 3, 23, 23, 9, 7, 7, 2, 2, 3, 3});
  add_conv("strided_1x1", {2, 24, 13, 13, 40, 1, 1, 2, 2, 0, 0});
  add_conv("rect_3x5", {1, 7, 10, 19, 11, 3, 5, 1, 2, 1, 2});

  LayerShape up;
  up.network = "awkward";
  up.name = "upsample_f8";
  up.kind = LayerKind::TransposedConv;
  up.conv = transposed_conv_as_conv(3, 1, 5, 7, 1, 16, 16, 8, 8, 0, 0);
  layers.push_back(up);

  const auto add_pool = [&layers](const std::string& name, LayerKind kind, Pool2dShape shape) {
    LayerShape layer;
    layer.network = "awkward";
    layer.name = name;
    layer.kind = kind;
    layer.pool = shape;
    layers.push_back(layer);
  };
  // Fields: n, c, h, w, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, ceil_mode.
  add_pool("max_odd_ceil", LayerKind::MaxPool, {3, 5, 29, 27, 3, 3, 2, 2, 1, 1, true});
  add_pool("max_2x2_odd", LayerKind::MaxPool, {1, 3, 15, 9, 2, 2, 2, 2, 0, 0, true});
  add_pool("avg_3x3_s1", LayerKind::AvgPool, {2, 7, 8, 11, 3, 3, 1, 1, 1, 1, true});
  add_pool("avg_floor", LayerKind::AvgPool, {3, 4, 13, 13, 2, 2, 2, 2, 0, 0, false});

  LayerShape norm;
  norm.network = "awkward";
  norm.name = "bn_odd";
  norm.kind = LayerKind::BatchNorm;
  norm.batch_norm.n = 3;
  norm.batch_norm.c = 5;
  norm.batch_norm.hw = 7 * 9;
  layers.push_back(norm);
  return layers;
}

// Returns true when two layers compute the same operation on the same shapes.
inline bool same_shape(const LayerShape& a, const LayerShape& b) {
  if (a.kind != b.kind) return false;
  const auto conv_key = [](const Conv2dShape& s) {
    return std::vector<std::int64_t>{s.n,        s.c,        s.h,     s.w,    s.k,   s.r,
                                     s.s,        s.stride_h, s.stride_w, s.pad_h, s.pad_w};
  };
  const auto pool_key = [](const Pool2dShape& s) {
    return std::vector<std::int64_t>{s.n,        s.c,        s.h,     s.w,    s.kernel_h,
                                     s.kernel_w, s.stride_h, s.stride_w, s.pad_h, s.pad_w,
                                     s.ceil_mode ? 1 : 0};
  };
  switch (a.kind) {
    case LayerKind::Conv:
      return conv_key(a.conv) == conv_key(b.conv) && a.bias == b.bias;
    case LayerKind::TransposedConv:
      return conv_key(a.conv) == conv_key(b.conv);
    case LayerKind::MaxPool:
    case LayerKind::AvgPool:
    case LayerKind::GlobalAvgPool:
      return pool_key(a.pool) == pool_key(b.pool);
    case LayerKind::BatchNorm:
      return a.batch_norm.n == b.batch_norm.n && a.batch_norm.c == b.batch_norm.c &&
             a.batch_norm.hw == b.batch_norm.hw;
    case LayerKind::Crop:
      return a.crop.n == b.crop.n && a.crop.c == b.crop.c && a.crop.h == b.crop.h &&
             a.crop.w == b.crop.w && a.crop.offset_h == b.crop.offset_h &&
             a.crop.offset_w == b.crop.offset_w && a.crop.out_h == b.crop.out_h &&
             a.crop.out_w == b.crop.out_w;
    case LayerKind::Concat:
      return a.concat.n == b.concat.n && a.concat.existing == b.concat.existing &&
             a.concat.added == b.concat.added && a.concat.hw == b.concat.hw;
    case LayerKind::Linear:
      return a.linear.m == b.linear.m && a.linear.n == b.linear.n && a.linear.k == b.linear.k;
  }
  return false;
}

// Keeps the first layer of each shape, in list order, with `repeats` set to the number of
// layers of that shape (the sum of their repeats).
inline std::vector<LayerShape> distinct_layers(const std::vector<LayerShape>& layers) {
  std::vector<LayerShape> result;
  for (const LayerShape& layer : layers) {
    auto found = std::find_if(result.begin(), result.end(),
                              [&layer](const LayerShape& kept) {
                                return kept.network == layer.network && same_shape(kept, layer);
                              });
    if (found == result.end()) {
      result.push_back(layer);
    } else {
      found->repeats += layer.repeats;
    }
  }
  return result;
}

// Returns the layers of one kind.
inline std::vector<LayerShape> layers_of_kind(const std::vector<LayerShape>& layers,
                                              LayerKind kind) {
  std::vector<LayerShape> result;
  std::copy_if(layers.begin(), layers.end(), std::back_inserter(result),
               [kind](const LayerShape& layer) { return layer.kind == kind; });
  return result;
}

// The benchmark set: the distinct shapes of DSN-VGG-Face and DSN-ResNet-50 (every layer
// represented), DenseNet-121's representative dense layers, and the awkward shapes.
inline std::vector<LayerShape> benchmark_layers(const ShapeOptions& options = {}) {
  std::vector<LayerShape> all = distinct_layers(dsn_vgg_face_layers(options));
  const auto append = [&all](const std::vector<LayerShape>& more) {
    all.insert(all.end(), more.begin(), more.end());
  };
  append(distinct_layers(dsn_resnet50_layers(options)));
  append(distinct_layers(densenet121_layers(options, DenseLayers::Representative)));
  append(awkward_layers());
  return all;
}

}  // namespace dsn::bench
