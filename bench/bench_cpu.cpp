// CPU kernel benchmarks (dsn::cpu, kernels/cpu): convolution in all three directions (im2col
// and OpenBLAS), transposed convolution, pooling, batch norm and GEMM. They run on a subset of
// the real layers of the three networks at batch 2, about a minute on two cores. Times are
// wall-clock because the kernels use OpenMP and OpenBLAS threads (bench/README.md).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "bench/layer_shapes.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/gemm.h"
#include "kernels/pool2d.h"

namespace dsn::bench {
namespace {

constexpr std::int64_t kBatch = 2;

// Runs fn once outside the timing (a failure marks the benchmark as failed), then once per
// iteration.
template <typename Fn>
void run_timed(benchmark::State& state, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
    return;
  }
  for (auto _ : state) {
    fn();
    benchmark::ClobberMemory();
  }
}

std::int64_t input_count(const Conv2dShape& s) { return s.n * s.c * s.h * s.w; }
std::int64_t weight_count(const Conv2dShape& s) { return s.k * s.c * s.r * s.s; }
std::int64_t output_count(const Conv2dShape& s) { return s.n * s.k * s.out_h() * s.out_w(); }

// y = conv(x, w); for a transposed convolution this is its backward pass.
void conv_forward(benchmark::State& state, Conv2dShape s) {
  const std::vector<float> x = random_floats(input_count(s), 1), w = random_floats(weight_count(s), 2);
  std::vector<float> y(static_cast<std::size_t>(output_count(s)));
  run_timed(state, [&] { cpu::conv2d_forward(s, x.data(), w.data(), nullptr, y.data()); });
  set_rates(state, conv_flops(s), conv_bytes(s));
}

// dx from dy and w; for a transposed convolution this is its forward pass.
void conv_backward_data(benchmark::State& state, Conv2dShape s) {
  const std::vector<float> dy = random_floats(output_count(s), 3),
                           w = random_floats(weight_count(s), 2);
  std::vector<float> dx(static_cast<std::size_t>(input_count(s)));
  run_timed(state, [&] { cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data()); });
  set_rates(state, conv_flops(s), conv_bytes(s));
}

void conv_backward_weight(benchmark::State& state, Conv2dShape s) {
  const std::vector<float> x = random_floats(input_count(s), 1),
                           dy = random_floats(output_count(s), 3);
  std::vector<float> dw(static_cast<std::size_t>(weight_count(s)));
  run_timed(state,
            [&] { cpu::conv2d_backward_weight(s, x.data(), dy.data(), dw.data(), nullptr); });
  set_rates(state, conv_flops(s), conv_bytes(s));
}

void max_pool_forward(benchmark::State& state, Pool2dShape s) {
  const std::vector<float> x = random_floats(s.n * s.c * s.h * s.w, 4);
  std::vector<float> y(static_cast<std::size_t>(pool_output_elements(s)));
  std::vector<std::int32_t> argmax(y.size());
  run_timed(state, [&] { cpu::max_pool2d_forward(s, x.data(), y.data(), argmax.data()); });
  set_rates(state, 0.0,
            kFloatBytes * (pool_input_elements(s) + 2.0 * pool_output_elements(s)));
}

void max_pool_backward(benchmark::State& state, Pool2dShape s) {
  const std::vector<float> x = random_floats(s.n * s.c * s.h * s.w, 4);
  std::vector<float> y(static_cast<std::size_t>(pool_output_elements(s)));
  std::vector<std::int32_t> argmax(y.size());
  cpu::max_pool2d_forward(s, x.data(), y.data(), argmax.data());
  const std::vector<float> dy = random_floats(static_cast<std::int64_t>(y.size()), 5);
  std::vector<float> dx(x.size());
  run_timed(state, [&] { cpu::max_pool2d_backward(s, dy.data(), argmax.data(), dx.data()); });
  set_rates(state, 0.0,
            kFloatBytes * (pool_input_elements(s) + 2.0 * pool_output_elements(s)));
}

void avg_pool_forward(benchmark::State& state, Pool2dShape s) {
  const std::vector<float> x = random_floats(s.n * s.c * s.h * s.w, 4);
  std::vector<float> y(static_cast<std::size_t>(pool_output_elements(s)));
  run_timed(state, [&] { cpu::avg_pool2d_forward(s, x.data(), y.data()); });
  set_rates(state, 0.0, kFloatBytes * (pool_input_elements(s) + pool_output_elements(s)));
}

void avg_pool_backward(benchmark::State& state, Pool2dShape s) {
  const std::vector<float> dy =
      random_floats(static_cast<std::int64_t>(pool_output_elements(s)), 5);
  std::vector<float> dx(static_cast<std::size_t>(pool_input_elements(s)));
  run_timed(state, [&] { cpu::avg_pool2d_backward(s, dy.data(), dx.data()); });
  set_rates(state, 0.0, kFloatBytes * (pool_input_elements(s) + pool_output_elements(s)));
}

// Inputs and outputs of one batch-norm layer, with the saved statistics of a training forward.
struct BatchNormData {
  std::vector<float> x, dy, gamma, beta, running_mean, running_var;
  std::vector<float> y, dx, dgamma, dbeta, save_mean, save_inv_std;

  explicit BatchNormData(const BatchNormShape& s)
      : x(random_floats(s.n * s.c * s.hw, 6)),
        dy(random_floats(s.n * s.c * s.hw, 7)),
        gamma(random_floats(s.c, 8, 0.5f, 1.5f)),
        beta(random_floats(s.c, 9)),
        running_mean(random_floats(s.c, 10)),
        running_var(random_floats(s.c, 11, 0.5f, 1.5f)),
        y(x.size()),
        dx(x.size()),
        dgamma(gamma.size()),
        dbeta(gamma.size()),
        save_mean(gamma.size()),
        save_inv_std(gamma.size()) {
    cpu::batch_norm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(),
                                  save_mean.data(), save_inv_std.data(), nullptr, nullptr);
  }
};

double batch_norm_elements(const BatchNormShape& s) { return double(s.n * s.c * s.hw); }

void batch_norm_forward_train(benchmark::State& state, BatchNormShape s) {
  BatchNormData d(s);
  run_timed(state, [&] {
    cpu::batch_norm_forward_train(s, d.x.data(), d.gamma.data(), d.beta.data(), d.y.data(),
                                  d.save_mean.data(), d.save_inv_std.data(),
                                  d.running_mean.data(), d.running_var.data());
  });
  set_rates(state, 0.0, 2.0 * kFloatBytes * batch_norm_elements(s));
}

void batch_norm_forward_inference(benchmark::State& state, BatchNormShape s) {
  BatchNormData d(s);
  run_timed(state, [&] {
    cpu::batch_norm_forward_inference(s, d.x.data(), d.gamma.data(), d.beta.data(),
                                      d.running_mean.data(), d.running_var.data(), d.y.data());
  });
  set_rates(state, 0.0, 2.0 * kFloatBytes * batch_norm_elements(s));
}

void batch_norm_backward_train(benchmark::State& state, BatchNormShape s) {
  BatchNormData d(s);
  run_timed(state, [&] {
    cpu::batch_norm_backward_train(s, d.x.data(), d.dy.data(), d.gamma.data(),
                                   d.save_mean.data(), d.save_inv_std.data(), d.dx.data(),
                                   d.dgamma.data(), d.dbeta.data());
  });
  set_rates(state, 0.0, 3.0 * kFloatBytes * batch_norm_elements(s));
}

void batch_norm_backward_inference(benchmark::State& state, BatchNormShape s) {
  BatchNormData d(s);
  run_timed(state, [&] {
    cpu::batch_norm_backward_inference(s, d.x.data(), d.dy.data(), d.gamma.data(),
                                       d.running_mean.data(), d.running_var.data(), d.dx.data(),
                                       d.dgamma.data(), d.dbeta.data());
  });
  set_rates(state, 0.0, 3.0 * kFloatBytes * batch_norm_elements(s));
}

void gemm(benchmark::State& state, GemmShape s) {
  const std::vector<float> a = random_floats(s.m * s.k, 12), b = random_floats(s.k * s.n, 13);
  std::vector<float> c(static_cast<std::size_t>(s.m * s.n));
  run_timed(state, [&] { cpu::gemm(s, a.data(), b.data(), c.data()); });
  set_rates(state, gemm_flops(s), gemm_bytes(s));
}

template <typename Shape>
void add(const std::string& name, void (*function)(benchmark::State&, Shape), const Shape& shape) {
  benchmark::RegisterBenchmark(name.c_str(), function, shape)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

void register_benchmarks() {
  ShapeOptions options;
  options.batch = kBatch;
  std::vector<LayerShape> layers = dsn_vgg_face_layers(options);
  for (auto more : {dsn_resnet50_layers(options),
                    densenet121_layers(options, DenseLayers::Representative)}) {
    layers.insert(layers.end(), more.begin(), more.end());
  }

  // One of each kind of convolution: the padded first layer, 3x3 layers at three depths, the
  // 7x7 supervision conv, a 1x1 score conv, strided and bottleneck 1x1 convs.
  const std::vector<std::pair<const char*, const char*>> convs = {
      {"dsn_vgg_face", "conv1_1"},       {"dsn_vgg_face", "conv3_2"},
      {"dsn_vgg_face", "conv5_1"},       {"dsn_vgg_face", "side6.conv"},
      {"dsn_vgg_face", "side1.score"},   {"dsn_resnet50", "conv1"},
      {"dsn_resnet50", "res3a_branch2a"}, {"dsn_resnet50", "res4b_branch2b"},
      {"densenet121", "conv3_6_x1"},     {"densenet121", "conv4_12_x2"},
  };
  for (const auto& [network, name] : convs) {
    const LayerShape& layer = find_layer(layers, network, name);
    add(benchmark_name("conv_fwd", "cpu", layer), conv_forward, layer.conv);
    add(benchmark_name("conv_bwd_data", "cpu", layer), conv_backward_data, layer.conv);
    add(benchmark_name("conv_bwd_weight", "cpu", layer), conv_backward_weight, layer.conv);
  }
  const LayerShape& upsample = find_layer(layers, "dsn_vgg_face", "up2_to_fuse");
  add(benchmark_name("tconv_fwd", "cpu", upsample), conv_backward_data, upsample.conv);
  add(benchmark_name("tconv_bwd_data", "cpu", upsample), conv_forward, upsample.conv);

  for (const char* name : {"pool1", "pool4"}) {
    const LayerShape& layer = find_layer(layers, "dsn_vgg_face", name);
    add(benchmark_name("max_pool_fwd", "cpu", layer), max_pool_forward, layer.pool);
    add(benchmark_name("max_pool_bwd", "cpu", layer), max_pool_backward, layer.pool);
  }
  for (const auto& [network, name] :
       {std::pair{"dsn_vgg_face", "pool5a"}, std::pair{"densenet121", "pool2"}}) {
    const LayerShape& layer = find_layer(layers, network, name);
    add(benchmark_name("avg_pool_fwd", "cpu", layer), avg_pool_forward, layer.pool);
    add(benchmark_name("avg_pool_bwd", "cpu", layer), avg_pool_backward, layer.pool);
  }

  for (const auto& [network, name] :
       {std::pair{"dsn_resnet50", "bn2a_branch2c"}, std::pair{"densenet121", "conv4_12_x1_bn"}}) {
    const LayerShape& layer = find_layer(layers, network, name);
    add(benchmark_name("bn_fwd_train", "cpu", layer), batch_norm_forward_train, layer.batch_norm);
    add(benchmark_name("bn_fwd_infer", "cpu", layer), batch_norm_forward_inference,
        layer.batch_norm);
    add(benchmark_name("bn_bwd_train", "cpu", layer), batch_norm_backward_train,
        layer.batch_norm);
    add(benchmark_name("bn_bwd_infer", "cpu", layer), batch_norm_backward_inference,
        layer.batch_norm);
  }

  const LayerShape& head = find_layer(layers, "dsn_vgg_face", "fuse_fc");
  add(benchmark_name("gemm", "cpu", head.network, head.name + ".fwd"), gemm, head.linear);
  add(benchmark_name("gemm", "cpu", head.network, head.name + ".bwd_data"), gemm,
      linear_backward_data(head.linear));
  add(benchmark_name("gemm", "cpu", head.network, head.name + ".bwd_weight"), gemm,
      linear_backward_weight(head.linear));
  GemmShape square;
  square.m = square.n = square.k = 1024;
  add(benchmark_name("gemm", "cpu", "reference", "square1024"), gemm, square);
}

}  // namespace
}  // namespace dsn::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("dsn_batch", std::to_string(dsn::bench::kBatch));
  benchmark::AddCustomContext("dsn_timing", "wall clock, one call per iteration");
  try {
    dsn::bench::register_benchmarks();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "dsn_bench_cpu: %s\n", error.what());
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
