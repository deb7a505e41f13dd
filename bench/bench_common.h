// Helpers shared by the CPU and CUDA benchmark programs: benchmark names, the operation and
// byte counts behind the rate counters, and random inputs.
//
// Names follow "<family>/<implementation>/<network>/<layer>", for example
// "conv_fwd/handwritten/dsn_vgg_face/conv1_1" or "conv_fwd/cudnn/dsn_vgg_face/conv1_1", so that
// --benchmark_filter selects a family, an implementation or a network with a regular expression
// and bench/summarize.py pairs implementations by family, network and layer.
//
// Rate counters: "flops" is 2 * multiply-accumulates per second, and "bytes" is the fewest bytes
// per second that the operation must move, each input read once and each output written once.
// Both divide by the time the benchmark reports: manual time on the GPU, wall time on the CPU.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "bench/layer_shapes.h"
#include "engine/error.h"

namespace dsn::bench {

inline std::string benchmark_name(std::string_view family, std::string_view implementation,
                                  std::string_view network, std::string_view layer) {
  std::string name;
  for (std::string_view part : {family, implementation, network, layer}) {
    if (!name.empty()) name += '/';
    name += part;
  }
  return name;
}

inline std::string benchmark_name(std::string_view family, std::string_view implementation,
                                  const LayerShape& layer) {
  return benchmark_name(family, implementation, layer.network, layer.name);
}

// Returns the layer `name` of `network` in `layers`; throws dsn::Error when it is missing.
inline const LayerShape& find_layer(const std::vector<LayerShape>& layers,
                                    std::string_view network, std::string_view name) {
  for (const LayerShape& layer : layers) {
    if (layer.network == network && layer.name == name) return layer;
  }
  fail("benchmark layer " + std::string(network) + "/" + std::string(name) +
       " is not in the layer list of bench/layer_shapes.h");
}

constexpr double kFloatBytes = sizeof(float);

inline double conv_flops(const Conv2dShape& s) { return 2.0 * double(s.macs()); }

// Bytes of x, w and y together: each direction of a convolution reads two of them and writes the
// third.
inline double conv_bytes(const Conv2dShape& s) {
  const double x = double(s.n * s.c * s.h * s.w);
  const double w = double(s.k * s.c * s.r * s.s);
  const double y = double(s.n * s.k * s.out_h() * s.out_w());
  return kFloatBytes * (x + w + y);
}

inline double gemm_flops(const GemmShape& s) { return 2.0 * double(s.m) * double(s.n) * double(s.k); }

// Bytes of A, B and C, with C read too when beta is not zero.
inline double gemm_bytes(const GemmShape& s) {
  const double c_passes = s.beta == 0.0f ? 1.0 : 2.0;
  return kFloatBytes * (double(s.m * s.k) + double(s.k * s.n) + c_passes * double(s.m * s.n));
}

inline double pool_input_elements(const Pool2dShape& s) { return double(s.n * s.c * s.h * s.w); }
inline double pool_output_elements(const Pool2dShape& s) {
  return double(s.n * s.c * s.out_h() * s.out_w());
}

// The backward of a linear layer y = x W^T: dx (N, in) = dy (N, out) W (out, in).
inline GemmShape linear_backward_data(const GemmShape& forward) {
  GemmShape shape;
  shape.m = forward.m;
  shape.n = forward.k;
  shape.k = forward.n;
  return shape;
}

// dW (out, in) = dy^T (out, N) x (N, in).
inline GemmShape linear_backward_weight(const GemmShape& forward) {
  GemmShape shape;
  shape.trans_a = true;
  shape.m = forward.n;
  shape.n = forward.k;
  shape.k = forward.m;
  return shape;
}

// Sets the "flops" (when flops > 0) and "bytes" rate counters from per-iteration amounts.
inline void set_rates(benchmark::State& state, double flops, double bytes) {
  if (flops > 0.0) {
    state.counters["flops"] =
        benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  }
  state.counters["bytes"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
}

// Uniform floats in [low, high) from a fixed seed, so runs are repeatable and never all zeros.
inline std::vector<float> random_floats(std::int64_t count, std::uint32_t seed, float low = -1.0f,
                                        float high = 1.0f) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> distribution(low, high);
  std::vector<float> values(static_cast<std::size_t>(count));
  for (float& value : values) value = distribution(engine);
  return values;
}

}  // namespace dsn::bench
