// Device data of the dsn_bench_cuda benchmarks that need more than one array: batch norm,
// the classifier heads, the side-output maps of a deeply supervised network and the parameter
// lists of an SGD step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/cuda_harness.h"
#include "bench/layer_shapes.h"
#include "kernels/batch_norm.h"
#include "kernels/cuda/sgd.h"
#include "kernels/fusion.h"
#include "kernels/softmax_heads.h"

namespace dsn::bench {

// x (N, C, HW), dy, y, dx; gamma, beta, the running and saved statistics and their gradients (C).
struct BatchNormBuffers {
  DeviceArray<float> x, dy, y, dx;
  DeviceArray<float> gamma, beta, running_mean, running_var, save_mean, save_inv_std, dgamma,
      dbeta;

  explicit BatchNormBuffers(const BatchNormShape& shape);
};

// logits, probs, dprobs, dlogits (heads, rows, classes); loss, dloss (heads, rows); labels (rows)
// drawn uniformly from [0, classes).
struct HeadBuffers {
  DeviceArray<float> logits, probs, dprobs, dlogits, loss, dloss;
  DeviceArray<std::int32_t> labels;

  explicit HeadBuffers(const SoftmaxHeads& shape);
};

// Device maps of every side output of a network (bench/fusion_passes.h): A(m), R(m), dR(m)
// and the side heads' gradients, all (N, 1, size, size), and the fused map and its gradient.
class FusionMaps {
 public:
  FusionMaps(const SideGraph& graph, std::int64_t batch);

  // Pass `index` of the forward or backward sequence of fusion_pass_names().
  FusionPass pass(bool backward, int index) const;

 private:
  SideGraph graph_;
  std::int64_t batch_;
  std::vector<DeviceArray<float>> score_, refined_, refined_grad_, head_grad_;  // by side
  DeviceArray<float> fused_, fused_grad_;
};

// The element counts of the parameter tensors that an SGD step updates: convolution weights
// and biases, batch-norm scales and shifts, fully connected weights and biases. The frozen
// bilinear upsampling weights are left out.
std::vector<std::int64_t> parameter_sizes(const std::vector<LayerShape>& layers);

// Parameters, gradients and momentum of tensors of the given sizes, packed into three arrays
// with every tensor 16-byte aligned, and their uploaded SGD table.
struct SgdBuffers {
  DeviceArray<float> params, grads, momentum;
  DeviceArray<unsigned char> storage;
  cuda::SgdTable table;
  std::int64_t total = 0;  // elements of all tensors

  explicit SgdBuffers(const std::vector<std::int64_t>& sizes);
};

}  // namespace dsn::bench
