// CUDA kernel benchmarks: every hand-written kernel family of kernels/cuda on the real layer
// shapes of DSN-VGG-Face, DSN-ResNet-50 and DenseNet-121 at batch 16 (bench/layer_shapes.h).
// cuDNN and cuBLAS run the same shapes in strict FP32 in the same process, and a
// device-to-device copy gives the bandwidth reference of the memory-bound kernels.
// bench/README.md describes the names, the counters and the summary of bench/summarize.py.
//
// Each benchmark allocates and fills its own device buffers, so a failure (an unsupported shape,
// too little memory) marks that benchmark as failed and the run goes on.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench/bench_common.h"
#include "bench/cuda_fixtures.h"
#include "bench/cuda_harness.h"
#include "bench/cuda_vendor.h"
#include "bench/fusion_passes.h"
#include "bench/layer_shapes.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/fusion.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/layout.h"
#include "kernels/cuda/pool2d.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/sgd.h"
#include "kernels/cuda/softmax.h"
#include "kernels/cuda/softmax_heads.h"

namespace dsn::bench {
namespace {

constexpr std::int64_t kBatch = 16;

using vendor::ConvDirection;

cudaStream_t stream() { return device().stream; }

// Runs body, turning an exception into a failed benchmark with its message.
template <typename Body>
void guarded(benchmark::State& state, Body&& body) {
  try {
    body();
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
}

std::string plan_label(const cuda::TilePlan& plan) {
  return fmt::format("{} tile {}x{}x{} splits {}", plan.kernel, plan.tile_m, plan.tile_n,
                     plan.tile_k, plan.splits);
}

// --- Convolution ---------------------------------------------------------------------------

std::int64_t input_count(const Conv2dShape& s) { return s.n * s.c * s.h * s.w; }
std::int64_t weight_count(const Conv2dShape& s) { return s.k * s.c * s.r * s.s; }
std::int64_t output_count(const Conv2dShape& s) { return s.n * s.k * s.out_h() * s.out_w(); }

// The operands of one direction in the launchers' order: forward (x, w) -> y, backward-data
// (dy, w) -> dx, backward-filter (x, dy) -> dw.
struct ConvOperands {
  DeviceArray<float> first, second, out;

  ConvOperands(const Conv2dShape& s, ConvDirection direction) {
    switch (direction) {
      case ConvDirection::Forward:
        first = random_device_floats(input_count(s));
        second = random_device_floats(weight_count(s));
        out = DeviceArray<float>(output_count(s));
        break;
      case ConvDirection::BackwardData:
        first = random_device_floats(output_count(s));
        second = random_device_floats(weight_count(s));
        out = DeviceArray<float>(input_count(s));
        break;
      case ConvDirection::BackwardFilter:
        first = random_device_floats(input_count(s));
        second = random_device_floats(output_count(s));
        out = DeviceArray<float>(weight_count(s));
        break;
    }
  }
};

void conv_handwritten(benchmark::State& state, Conv2dShape s, ConvDirection direction) {
  guarded(state, [&] {
    ConvOperands op(s, direction);
    switch (direction) {
      case ConvDirection::Forward:
        state.SetLabel(plan_label(cuda::plan_conv2d_forward(s)));
        time_on_device(state, [&] {
          cuda::conv2d_forward(s, op.first.get(), op.second.get(), nullptr, op.out.get(), false,
                               stream());
        });
        break;
      case ConvDirection::BackwardData:
        state.SetLabel(plan_label(cuda::plan_conv2d_backward_data(s)));
        time_on_device(state, [&] {
          cuda::conv2d_backward_data(s, op.first.get(), op.second.get(), op.out.get(), stream());
        });
        break;
      case ConvDirection::BackwardFilter:
        state.SetLabel(plan_label(cuda::plan_conv2d_backward_weight(s)));
        time_on_device(state, [&] {
          cuda::conv2d_backward_weight(s, op.first.get(), op.second.get(), op.out.get(), nullptr,
                                       stream());
        });
        break;
    }
  });
  set_rates(state, conv_flops(s), conv_bytes(s));
}

void conv_cudnn(benchmark::State& state, Conv2dShape s, ConvDirection direction) {
  guarded(state, [&] {
    ConvOperands op(s, direction);
    vendor::Convolution convolution(s, direction);
    convolution.prepare(op.first.get(), op.second.get(), op.out.get());
    state.SetLabel(convolution.label());
    time_on_device(state,
                   [&] { convolution.run(op.first.get(), op.second.get(), op.out.get()); });
  });
  set_rates(state, conv_flops(s), conv_bytes(s));
}

// --- Pooling -------------------------------------------------------------------------------

void max_pool(benchmark::State& state, Pool2dShape s, bool backward) {
  const auto in = std::int64_t(pool_input_elements(s));
  const auto out = std::int64_t(pool_output_elements(s));
  guarded(state, [&] {
    const DeviceArray<float> x = random_device_floats(in), dy = random_device_floats(out);
    DeviceArray<float> y(out), dx(in);
    DeviceArray<std::int32_t> argmax(out);
    cuda::max_pool2d_forward(s, x.get(), y.get(), argmax.get(), stream());
    if (backward) {
      time_on_device(state, [&] {
        cuda::max_pool2d_backward(s, dy.get(), argmax.get(), dx.get(), stream());
      });
    } else {
      time_on_device(state, [&] {
        cuda::max_pool2d_forward(s, x.get(), y.get(), argmax.get(), stream());
      });
    }
  });
  // Forward reads x and writes y and argmax; backward reads dy and argmax and writes dx.
  set_rates(state, 0.0, kFloatBytes * double(in + 2 * out));
}

void avg_pool(benchmark::State& state, Pool2dShape s, bool backward) {
  const auto in = std::int64_t(pool_input_elements(s));
  const auto out = std::int64_t(pool_output_elements(s));
  guarded(state, [&] {
    const DeviceArray<float> x = random_device_floats(in), dy = random_device_floats(out);
    DeviceArray<float> y(out), dx(in);
    if (backward) {
      time_on_device(state,
                     [&] { cuda::avg_pool2d_backward(s, dy.get(), dx.get(), stream()); });
    } else {
      time_on_device(state, [&] { cuda::avg_pool2d_forward(s, x.get(), y.get(), stream()); });
    }
  });
  set_rates(state, 0.0, kFloatBytes * double(in + out));
}

void global_avg_pool(benchmark::State& state, Pool2dShape s, bool backward) {
  const std::int64_t hw = s.h * s.w;
  guarded(state, [&] {
    const DeviceArray<float> x = random_device_floats(s.n * s.c * hw),
                             dy = random_device_floats(s.n * s.c);
    DeviceArray<float> y(s.n * s.c), dx(s.n * s.c * hw);
    if (backward) {
      time_on_device(state, [&] {
        cuda::global_avg_pool_backward(s.n, s.c, hw, dy.get(), dx.get(), stream());
      });
    } else {
      time_on_device(state, [&] {
        cuda::global_avg_pool_forward(s.n, s.c, hw, x.get(), y.get(), stream());
      });
    }
  });
  set_rates(state, 0.0, kFloatBytes * double(s.n * s.c * (hw + 1)));
}

// --- Batch norm ----------------------------------------------------------------------------

enum class BatchNormOp { ForwardTrain, ForwardInference, BackwardTrain, BackwardInference };

// Minimum bytes: the forward passes read x and write y, the backward passes read x and dy and
// write dx (the per-channel arrays are negligible).
double batch_norm_bytes(const BatchNormShape& s, BatchNormOp op) {
  const double elements = double(s.n * s.c * s.hw);
  const bool forward = op == BatchNormOp::ForwardTrain || op == BatchNormOp::ForwardInference;
  return kFloatBytes * elements * (forward ? 2.0 : 3.0);
}

void batch_norm_handwritten(benchmark::State& state, BatchNormShape s, BatchNormOp op) {
  guarded(state, [&] {
    BatchNormBuffers b(s);
    cuda::batch_norm_forward_train(s, b.x.get(), b.gamma.get(), b.beta.get(), b.y.get(),
                                   b.save_mean.get(), b.save_inv_std.get(), nullptr, nullptr,
                                   stream());
    time_on_device(state, [&] {
      switch (op) {
        case BatchNormOp::ForwardTrain:
          cuda::batch_norm_forward_train(s, b.x.get(), b.gamma.get(), b.beta.get(), b.y.get(),
                                         b.save_mean.get(), b.save_inv_std.get(),
                                         b.running_mean.get(), b.running_var.get(), stream());
          break;
        case BatchNormOp::ForwardInference:
          cuda::batch_norm_forward_inference(s, b.x.get(), b.gamma.get(), b.beta.get(),
                                             b.running_mean.get(), b.running_var.get(),
                                             b.y.get(), stream());
          break;
        case BatchNormOp::BackwardTrain:
          cuda::batch_norm_backward_train(s, b.x.get(), b.dy.get(), b.gamma.get(),
                                          b.save_mean.get(), b.save_inv_std.get(), b.dx.get(),
                                          b.dgamma.get(), b.dbeta.get(), stream());
          break;
        case BatchNormOp::BackwardInference:
          cuda::batch_norm_backward_inference(s, b.x.get(), b.dy.get(), b.gamma.get(),
                                              b.running_mean.get(), b.running_var.get(),
                                              b.dx.get(), b.dgamma.get(), b.dbeta.get(),
                                              stream());
          break;
      }
    });
  });
  set_rates(state, 0.0, batch_norm_bytes(s, op));
}

// cuDNN has no backward pass for inference mode, so BackwardInference is not registered here.
void batch_norm_cudnn(benchmark::State& state, BatchNormShape s, BatchNormOp op) {
  guarded(state, [&] {
    BatchNormBuffers b(s);
    vendor::BatchNorm norm(s);
    norm.forward_train(b.x.get(), b.gamma.get(), b.beta.get(), b.y.get(), b.save_mean.get(),
                       b.save_inv_std.get(), nullptr, nullptr);
    time_on_device(state, [&] {
      switch (op) {
        case BatchNormOp::ForwardTrain:
          norm.forward_train(b.x.get(), b.gamma.get(), b.beta.get(), b.y.get(),
                             b.save_mean.get(), b.save_inv_std.get(), b.running_mean.get(),
                             b.running_var.get());
          break;
        case BatchNormOp::ForwardInference:
          norm.forward_inference(b.x.get(), b.gamma.get(), b.beta.get(), b.running_mean.get(),
                                 b.running_var.get(), b.y.get());
          break;
        case BatchNormOp::BackwardTrain:
          norm.backward_train(b.x.get(), b.dy.get(), b.gamma.get(), b.save_mean.get(),
                              b.save_inv_std.get(), b.dx.get(), b.dgamma.get(), b.dbeta.get());
          break;
        case BatchNormOp::BackwardInference:
          fail("cuDNN has no batch-norm backward for inference mode");
      }
    });
  });
  set_rates(state, 0.0, batch_norm_bytes(s, op));
}

// --- Element-wise, reductions and layout ---------------------------------------------------

enum class ElementwiseOp {
  Fill,
  ReluForward,
  ReluBackward,
  Add,
  Accumulate,
  Scale,
  Dropout,
  BiasAdd,
  BiasBackward,
  Sum
};

// Floats read plus floats written per element.
double elementwise_traffic(ElementwiseOp op) {
  switch (op) {
    case ElementwiseOp::Fill:
    case ElementwiseOp::BiasBackward:
    case ElementwiseOp::Sum:
      return 1.0;
    case ElementwiseOp::ReluForward:
    case ElementwiseOp::Scale:
    case ElementwiseOp::Dropout:
    case ElementwiseOp::BiasAdd:
      return 2.0;
    case ElementwiseOp::ReluBackward:
    case ElementwiseOp::Add:
    case ElementwiseOp::Accumulate:
      return 3.0;
  }
  return 0.0;
}

// An element-wise op over the (N, C, H * W) output of a convolution layer.
void elementwise(benchmark::State& state, Conv2dShape layer, ElementwiseOp op) {
  const std::int64_t n = layer.n, c = layer.k, hw = layer.out_h() * layer.out_w();
  const std::int64_t count = n * c * hw;
  guarded(state, [&] {
    const DeviceArray<float> a = random_device_floats(count), b = random_device_floats(count),
                             bias = random_device_floats(c);
    DeviceArray<float> y = random_device_floats(count), result(c);
    DropoutParams dropout{0.5f, 1234, 0};
    time_on_device(state, [&] {
      switch (op) {
        case ElementwiseOp::Fill:
          cuda::fill(count, 0.25f, y.get(), stream());
          break;
        case ElementwiseOp::ReluForward:
          cuda::relu_forward(count, a.get(), y.get(), stream());
          break;
        case ElementwiseOp::ReluBackward:
          cuda::relu_backward(count, a.get(), b.get(), y.get(), stream());
          break;
        case ElementwiseOp::Add:
          cuda::add(count, a.get(), b.get(), y.get(), stream());
          break;
        case ElementwiseOp::Accumulate:
          cuda::accumulate(count, a.get(), y.get(), stream());
          break;
        case ElementwiseOp::Scale:
          cuda::scale(count, 0.5f, a.get(), y.get(), stream());
          break;
        case ElementwiseOp::Dropout:
          dropout.offset += std::uint64_t(count);  // a fresh mask per call, as in training
          cuda::dropout(count, dropout, a.get(), y.get(), stream());
          break;
        case ElementwiseOp::BiasAdd:
          cuda::bias_add(n, c, hw, bias.get(), y.get(), stream());
          break;
        case ElementwiseOp::BiasBackward:
          cuda::bias_backward(n, c, hw, a.get(), result.get(), stream());
          break;
        case ElementwiseOp::Sum:
          cuda::sum(count, a.get(), result.get(), stream());
          break;
      }
    });
  });
  set_rates(state, 0.0, kFloatBytes * elementwise_traffic(op) * double(count));
}

// DenseNet's concatenation as the engine runs it: one channel_insert per input, or for the
// backward one channel_slice per input.
void concat(benchmark::State& state, ConcatShape s, bool backward) {
  const std::int64_t total = s.existing + s.added;
  guarded(state, [&] {
    DeviceArray<float> existing = random_device_floats(s.n * s.existing * s.hw);
    DeviceArray<float> added = random_device_floats(s.n * s.added * s.hw);
    DeviceArray<float> joined = random_device_floats(s.n * total * s.hw);
    time_on_device(state, [&] {
      if (backward) {
        cuda::channel_slice(s.n, total, s.existing, s.hw, 0, joined.get(), existing.get(),
                            stream());
        cuda::channel_slice(s.n, total, s.added, s.hw, s.existing, joined.get(), added.get(),
                            stream());
      } else {
        cuda::channel_insert(s.n, s.existing, total, s.hw, 0, existing.get(), joined.get(),
                             stream());
        cuda::channel_insert(s.n, s.added, total, s.hw, s.existing, added.get(), joined.get(),
                             stream());
      }
    });
  });
  set_rates(state, 0.0, 2.0 * kFloatBytes * double(s.n * total * s.hw));
}

void crop(benchmark::State& state, CropShape s, bool backward) {
  const std::int64_t in = s.n * s.c * s.h * s.w, out = s.n * s.c * s.out_h * s.out_w;
  guarded(state, [&] {
    const DeviceArray<float> x = random_device_floats(in), dy = random_device_floats(out);
    DeviceArray<float> y(out), dx(in);
    if (backward) {
      time_on_device(state, [&] { cuda::crop_backward(s, dy.get(), dx.get(), stream()); });
    } else {
      time_on_device(state, [&] { cuda::crop_forward(s, x.get(), y.get(), stream()); });
    }
  });
  // Forward reads and writes the window; backward reads it and writes all of dx.
  set_rates(state, 0.0, kFloatBytes * (backward ? double(in + out) : 2.0 * double(out)));
}

// --- Classifier heads, fusion and SGD ------------------------------------------------------

enum class SoftmaxOp {
  Forward,
  Backward,
  CrossEntropyForward,
  CrossEntropyBackward,
  HeadsForward,
  HeadsBackward
};

// Softmax and cross-entropy over `heads` classifier heads of (batch, classes) logits; the
// single-head ops use the first head.
void softmax_handwritten(benchmark::State& state, SoftmaxHeads s, SoftmaxOp op) {
  const std::int64_t rows = s.rows, classes = s.classes, all = s.heads * rows * classes;
  guarded(state, [&] {
    HeadBuffers b(s);
    time_on_device(state, [&] {
      switch (op) {
        case SoftmaxOp::Forward:
          cuda::softmax_forward(rows, classes, b.logits.get(), b.probs.get(), stream());
          break;
        case SoftmaxOp::Backward:
          cuda::softmax_backward(rows, classes, b.probs.get(), b.dprobs.get(), b.dlogits.get(),
                                 stream());
          break;
        case SoftmaxOp::CrossEntropyForward:
          cuda::softmax_cross_entropy_forward(rows, classes, b.logits.get(), b.labels.get(),
                                              b.loss.get(), b.probs.get(), stream());
          break;
        case SoftmaxOp::CrossEntropyBackward:
          cuda::softmax_cross_entropy_backward(rows, classes, b.probs.get(), b.labels.get(),
                                               b.dloss.get(), b.dlogits.get(), stream());
          break;
        case SoftmaxOp::HeadsForward:
          cuda::softmax_heads_cross_entropy_forward(s, b.logits.get(), b.labels.get(),
                                                    b.loss.get(), b.probs.get(), stream());
          break;
        case SoftmaxOp::HeadsBackward:
          cuda::softmax_heads_cross_entropy_backward(s, b.probs.get(), b.labels.get(),
                                                     b.dloss.get(), b.dlogits.get(), stream());
          break;
      }
    });
  });
  const bool heads = op == SoftmaxOp::HeadsForward || op == SoftmaxOp::HeadsBackward;
  set_rates(state, 0.0, 2.0 * kFloatBytes * double(heads ? all : rows * classes));
}

void softmax_cudnn(benchmark::State& state, SoftmaxHeads s, SoftmaxOp op) {
  guarded(state, [&] {
    HeadBuffers b(s);
    vendor::Softmax softmax(s.rows, s.classes);
    time_on_device(state, [&] {
      if (op == SoftmaxOp::Forward) {
        softmax.forward(b.logits.get(), b.probs.get());
      } else {
        softmax.backward(b.probs.get(), b.dprobs.get(), b.dlogits.get());
      }
    });
  });
  set_rates(state, 0.0, 2.0 * kFloatBytes * double(s.rows * s.classes));
}

void fusion(benchmark::State& state, SideGraph graph, int pass_index, bool backward) {
  double bytes = 0.0;
  guarded(state, [&] {
    FusionMaps maps(graph, kBatch);
    const FusionPass pass = maps.pass(backward, pass_index);
    bytes = fusion_pass_bytes(pass);
    time_on_device(state, [&] {
      if (backward) {
        cuda::fusion_backward(pass, stream());
      } else {
        cuda::fusion_forward(pass, stream());
      }
    });
  });
  set_rates(state, 0.0, bytes);
}

void sgd(benchmark::State& state, std::vector<std::int64_t> tensor_sizes) {
  std::int64_t total = 0;
  guarded(state, [&] {
    SgdBuffers b(tensor_sizes);
    total = b.total;
    const SgdStep step{1e-4f, 0.9f, 5e-4f};
    time_on_device(state, [&] { cuda::sgd_update(b.table, step, stream()); });
  });
  // Reads w, g and v, writes w and v.
  set_rates(state, 0.0, 5.0 * kFloatBytes * double(total));
}

// --- GEMM and copies -----------------------------------------------------------------------

void gemm(benchmark::State& state, GemmShape s, bool cublas) {
  guarded(state, [&] {
    const DeviceArray<float> a = random_device_floats(s.m * s.k),
                             b = random_device_floats(s.k * s.n);
    DeviceArray<float> c(s.m * s.n);
    if (cublas) {
      state.SetLabel("cublas pedantic FP32");
      time_on_device(state, [&] { vendor::gemm(s, a.get(), b.get(), c.get()); });
    } else {
      state.SetLabel(plan_label(cuda::plan_gemm(s)));
      time_on_device(state, [&] { cuda::gemm(s, a.get(), b.get(), c.get(), stream()); });
    }
  });
  set_rates(state, gemm_flops(s), gemm_bytes(s));
}

// The bandwidth reference: cudaMemcpyAsync between two device buffers, counting the bytes read
// and the bytes written.
void memcpy_d2d(benchmark::State& state, std::int64_t bytes) {
  guarded(state, [&] {
    const DeviceArray<unsigned char> source(bytes);
    DeviceArray<unsigned char> target(bytes);
    DSN_CUDA_CHECK(cudaMemsetAsync(source.get(), 1, source.bytes(), stream()));
    time_on_device(state, [&] {
      DSN_CUDA_CHECK(cudaMemcpyAsync(target.get(), source.get(), target.bytes(),
                                     cudaMemcpyDeviceToDevice, stream()));
    });
  });
  set_rates(state, 0.0, 2.0 * double(bytes));
}

// --- Registration --------------------------------------------------------------------------

template <typename Function, typename... Args>
void add(const std::string& name, Function function, Args... args) {
  benchmark::RegisterBenchmark(name.c_str(), function, args...)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}

const char* conv_family(LayerKind kind, ConvDirection direction) {
  if (kind == LayerKind::TransposedConv) {
    // The transposed convolution's forward pass is the backward-data of its convolution, and
    // its backward pass the forward; its frozen bilinear weights get no gradient.
    return direction == ConvDirection::BackwardData ? "tconv_fwd" : "tconv_bwd_data";
  }
  switch (direction) {
    case ConvDirection::Forward:
      return "conv_fwd";
    case ConvDirection::BackwardData:
      return "conv_bwd_data";
    case ConvDirection::BackwardFilter:
      return "conv_bwd_weight";
  }
  return "";
}

void register_convolutions(const std::vector<LayerShape>& layers) {
  for (const LayerShape& layer : layers) {
    std::vector<ConvDirection> directions;
    if (layer.kind == LayerKind::Conv) {
      directions = {ConvDirection::Forward, ConvDirection::BackwardData,
                    ConvDirection::BackwardFilter};
    } else if (layer.kind == LayerKind::TransposedConv) {
      directions = {ConvDirection::BackwardData, ConvDirection::Forward};
    }
    for (ConvDirection direction : directions) {
      const char* family = conv_family(layer.kind, direction);
      add(benchmark_name(family, "handwritten", layer), conv_handwritten, layer.conv, direction);
      add(benchmark_name(family, "cudnn", layer), conv_cudnn, layer.conv, direction);
    }
  }
}

void register_pooling_and_batch_norm(const std::vector<LayerShape>& layers) {
  for (const LayerShape& layer : layers) {
    switch (layer.kind) {
      case LayerKind::MaxPool:
        add(benchmark_name("max_pool_fwd", "handwritten", layer), max_pool, layer.pool, false);
        add(benchmark_name("max_pool_bwd", "handwritten", layer), max_pool, layer.pool, true);
        break;
      case LayerKind::AvgPool:
        add(benchmark_name("avg_pool_fwd", "handwritten", layer), avg_pool, layer.pool, false);
        add(benchmark_name("avg_pool_bwd", "handwritten", layer), avg_pool, layer.pool, true);
        break;
      case LayerKind::GlobalAvgPool:
        add(benchmark_name("global_avg_pool_fwd", "handwritten", layer), global_avg_pool,
            layer.pool, false);
        add(benchmark_name("global_avg_pool_bwd", "handwritten", layer), global_avg_pool,
            layer.pool, true);
        break;
      case LayerKind::BatchNorm: {
        const std::pair<const char*, BatchNormOp> ops[] = {
            {"bn_fwd_train", BatchNormOp::ForwardTrain},
            {"bn_fwd_infer", BatchNormOp::ForwardInference},
            {"bn_bwd_train", BatchNormOp::BackwardTrain},
            {"bn_bwd_infer", BatchNormOp::BackwardInference}};
        for (const auto& [family, op] : ops) {
          add(benchmark_name(family, "handwritten", layer), batch_norm_handwritten,
              layer.batch_norm, op);
          if (op != BatchNormOp::BackwardInference) {
            add(benchmark_name(family, "cudnn", layer), batch_norm_cudnn, layer.batch_norm, op);
          }
        }
        break;
      }
      default:
        break;
    }
  }
}

void register_elementwise_and_layout(const std::vector<LayerShape>& layers) {
  // Activations of four sizes: the largest of DSN-VGG-Face, a deep VGG layer, a ResNet-50
  // stage-2 output and a small DenseNet growth output.
  const std::pair<const char*, const char*> tensors[] = {{"dsn_vgg_face", "conv1_2"},
                                                         {"dsn_vgg_face", "conv4_2"},
                                                         {"dsn_resnet50", "res2a_branch1"},
                                                         {"densenet121", "conv4_1_x2"}};
  const std::pair<const char*, ElementwiseOp> ops[] = {
      {"fill", ElementwiseOp::Fill},
      {"relu_fwd", ElementwiseOp::ReluForward},
      {"relu_bwd", ElementwiseOp::ReluBackward},
      {"add", ElementwiseOp::Add},
      {"accumulate", ElementwiseOp::Accumulate},
      {"scale", ElementwiseOp::Scale},
      {"dropout", ElementwiseOp::Dropout},
      {"bias_add", ElementwiseOp::BiasAdd},
      {"bias_bwd", ElementwiseOp::BiasBackward},
      {"sum", ElementwiseOp::Sum}};
  for (const auto& [network, name] : tensors) {
    const LayerShape& layer = find_layer(layers, network, name);
    for (const auto& [family, op] : ops) {
      add(benchmark_name(family, "handwritten", layer), elementwise, layer.conv, op);
    }
  }
  for (const LayerShape& layer : layers) {
    if (layer.kind == LayerKind::Concat) {
      add(benchmark_name("channel_insert", "handwritten", layer), concat, layer.concat, false);
      add(benchmark_name("channel_slice", "handwritten", layer), concat, layer.concat, true);
    } else if (layer.kind == LayerKind::Crop) {
      add(benchmark_name("crop_fwd", "handwritten", layer), crop, layer.crop, false);
      add(benchmark_name("crop_bwd", "handwritten", layer), crop, layer.crop, true);
    }
  }
}

void register_heads_fusion_sgd(const std::vector<LayerShape>& layers, const ShapeOptions& options) {
  struct Network {
    const char* name;
    std::vector<LayerShape> all_layers;
  };
  const Network networks[] = {
      {"dsn_vgg_face", dsn_vgg_face_layers(options)},
      {"dsn_resnet50", dsn_resnet50_layers(options)},
      {"densenet121", densenet121_layers(options, DenseLayers::Every)}};
  for (const Network& network : networks) {
    const std::int64_t heads =
        std::int64_t(layers_of_kind(network.all_layers, LayerKind::Linear).size());
    const SoftmaxHeads shape{heads, options.batch, options.classes};
    const std::string single = network.name == std::string("densenet121") ? "fc" : "fuse_fc";
    const std::pair<const char*, SoftmaxOp> ops[] = {
        {"softmax_fwd", SoftmaxOp::Forward},
        {"softmax_bwd", SoftmaxOp::Backward},
        {"softmax_ce_fwd", SoftmaxOp::CrossEntropyForward},
        {"softmax_ce_bwd", SoftmaxOp::CrossEntropyBackward}};
    for (const auto& [family, op] : ops) {
      add(benchmark_name(family, "handwritten", network.name, single), softmax_handwritten, shape,
          op);
      if (op == SoftmaxOp::Forward || op == SoftmaxOp::Backward) {
        add(benchmark_name(family, "cudnn", network.name, single), softmax_cudnn, shape, op);
      }
    }
    add(benchmark_name("softmax_heads_fwd", "handwritten", network.name, "all_heads"),
        softmax_handwritten, shape, SoftmaxOp::HeadsForward);
    add(benchmark_name("softmax_heads_bwd", "handwritten", network.name, "all_heads"),
        softmax_handwritten, shape, SoftmaxOp::HeadsBackward);

    add(benchmark_name("sgd", "handwritten", network.name, "all_parameters"), sgd,
        parameter_sizes(network.all_layers));
  }

  for (const auto& [name, graph] : {std::pair{"dsn_vgg_face", dsn_vgg_face_sides(options)},
                                    std::pair{"dsn_resnet50", dsn_resnet50_sides(options)}}) {
    for (bool backward : {false, true}) {
      const std::vector<std::string> pass_names = fusion_pass_names(graph, backward);
      for (std::size_t i = 0; i < pass_names.size(); ++i) {
        add(benchmark_name(backward ? "fusion_bwd" : "fusion_fwd", "handwritten", name,
                           pass_names[i]),
            fusion, graph, int(i), backward);
      }
    }
  }

  for (const LayerShape& layer : layers_of_kind(layers, LayerKind::Linear)) {
    const std::pair<const char*, GemmShape> products[] = {
        {".fwd", layer.linear},
        {".bwd_data", linear_backward_data(layer.linear)},
        {".bwd_weight", linear_backward_weight(layer.linear)}};
    for (const auto& [suffix, shape] : products) {
      add(benchmark_name("gemm", "handwritten", layer.network, layer.name + suffix), gemm, shape,
          false);
      add(benchmark_name("gemm", "cublas", layer.network, layer.name + suffix), gemm, shape,
          true);
    }
  }
}

void register_benchmarks() {
  ShapeOptions options;
  options.batch = kBatch;
  const std::vector<LayerShape> layers = benchmark_layers(options);

  for (std::int64_t mib : {256, 1024}) {
    add(benchmark_name("memcpy_d2d", "cuda", "reference", std::to_string(mib) + "MiB"),
        memcpy_d2d, mib << 20);
  }
  GemmShape square;
  square.m = square.n = square.k = 4096;
  add(benchmark_name("gemm", "handwritten", "reference", "square4096"), gemm, square, false);
  add(benchmark_name("gemm", "cublas", "reference", "square4096"), gemm, square, true);

  register_elementwise_and_layout(layers);
  register_pooling_and_batch_norm(layers);
  register_heads_fusion_sgd(layers, options);
  register_convolutions(layers);
}

// True when the command line requests only the list of benchmark names, which needs no GPU.
bool listing_only(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--benchmark_list_tests" || argument == "--benchmark_list_tests=true") {
      return true;
    }
  }
  return false;
}

}  // namespace
}  // namespace dsn::bench

int main(int argc, char** argv) {
  namespace bench = dsn::bench;
  const bool listing = bench::listing_only(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    bench::register_benchmarks();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "dsn_bench_cuda: %s\n", error.what());
    return 1;
  }

  if (!listing) {
    int devices = 0;
    const cudaError_t status = cudaGetDeviceCount(&devices);
    if (status != cudaSuccess || devices == 0) {
      std::fprintf(stderr,
                   "dsn_bench_cuda: no CUDA device is available (%s), so nothing was "
                   "benchmarked. Run it on a machine with an NVIDIA GPU and driver; "
                   "--benchmark_list_tests lists the benchmarks without one.\n",
                   status != cudaSuccess ? cudaGetErrorString(status) : "no devices found");
      return 0;
    }
    try {
      bench::init_device();
      bench::vendor::init();
      bench::add_device_context();
      bench::vendor::add_context();
      benchmark::AddCustomContext("dsn_batch", std::to_string(bench::kBatch));
    } catch (const std::exception& error) {
      std::fprintf(stderr, "dsn_bench_cuda: device setup failed: %s\n", error.what());
      return 1;
    }
  }

  benchmark::RunSpecifiedBenchmarks();
  bench::vendor::shutdown();
  bench::shutdown_device();
  benchmark::Shutdown();
  return 0;
}
