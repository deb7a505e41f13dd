#include "bench/cuda_fixtures.h"

#include <algorithm>
#include <random>

#include "bench/fusion_passes.h"

namespace dsn::bench {

BatchNormBuffers::BatchNormBuffers(const BatchNormShape& s)
    : x(random_device_floats(s.n * s.c * s.hw)),
      dy(random_device_floats(s.n * s.c * s.hw)),
      y(s.n * s.c * s.hw),
      dx(s.n * s.c * s.hw),
      gamma(random_device_floats(s.c, Fill::Positive)),
      beta(random_device_floats(s.c)),
      running_mean(random_device_floats(s.c)),
      running_var(random_device_floats(s.c, Fill::Positive)),
      save_mean(s.c),
      save_inv_std(s.c),
      dgamma(s.c),
      dbeta(s.c) {}

HeadBuffers::HeadBuffers(const SoftmaxHeads& s)
    : logits(random_device_floats(s.heads * s.rows * s.classes)),
      probs(random_device_floats(s.heads * s.rows * s.classes, Fill::Positive)),
      dprobs(random_device_floats(s.heads * s.rows * s.classes)),
      dlogits(s.heads * s.rows * s.classes),
      loss(s.heads * s.rows),
      dloss(random_device_floats(s.heads * s.rows)) {
  std::mt19937 engine(20240603);
  std::uniform_int_distribution<std::int32_t> label(0, std::int32_t(s.classes) - 1);
  std::vector<std::int32_t> values(static_cast<std::size_t>(s.rows));
  for (std::int32_t& value : values) value = label(engine);
  labels = to_device(values.data(), s.rows);
}

FusionMaps::FusionMaps(const SideGraph& graph, std::int64_t batch)
    : graph_(graph), batch_(batch) {
  int max_side = 0;
  for (const SideOutputShape& s : graph.sides) max_side = std::max(max_side, s.side);
  for (auto* maps : {&score_, &refined_, &refined_grad_, &head_grad_}) {
    maps->resize(std::size_t(max_side) + 1);
  }
  for (const SideOutputShape& s : graph.sides) {
    const std::int64_t count = batch * s.size * s.size;
    const auto index = std::size_t(s.side);
    score_[index] = random_device_floats(count);
    refined_[index] = random_device_floats(count);
    refined_grad_[index] = random_device_floats(count);
    head_grad_[index] = random_device_floats(count);
  }
  fused_ = DeviceArray<float>(batch * graph.fused_size * graph.fused_size);
  fused_grad_ = random_device_floats(batch * graph.fused_size * graph.fused_size);
}

FusionPass FusionMaps::pass(bool backward, int index) const {
  FusionMapPointers maps;
  for (std::size_t side = 0; side < score_.size(); ++side) {
    maps.score.push_back(score_[side].get());
    maps.refined.push_back(refined_[side].get());
    maps.refined_grad.push_back(refined_grad_[side].get());
    maps.head_grad.push_back(head_grad_[side].get());
  }
  maps.fused = fused_.get();
  maps.fused_grad = fused_grad_.get();
  return make_fusion_pass(graph_, batch_, maps, backward, index);
}

std::vector<std::int64_t> parameter_sizes(const std::vector<LayerShape>& layers) {
  std::vector<std::int64_t> sizes;
  for (const LayerShape& layer : layers) {
    switch (layer.kind) {
      case LayerKind::Conv:
        sizes.push_back(layer.conv.k * layer.conv.c * layer.conv.r * layer.conv.s);
        if (layer.bias) sizes.push_back(layer.conv.k);
        break;
      case LayerKind::BatchNorm:
        sizes.push_back(layer.batch_norm.c);
        sizes.push_back(layer.batch_norm.c);
        break;
      case LayerKind::Linear:
        sizes.push_back(layer.linear.n * layer.linear.k);
        sizes.push_back(layer.linear.n);
        break;
      default:
        break;
    }
  }
  return sizes;
}

SgdBuffers::SgdBuffers(const std::vector<std::int64_t>& sizes) {
  constexpr std::int64_t kAlignment = 4;  // floats: 16 bytes
  std::vector<std::int64_t> offsets;
  std::int64_t padded = 0;
  for (std::int64_t size : sizes) {
    offsets.push_back(padded);
    padded += (size + kAlignment - 1) / kAlignment * kAlignment;
    total += size;
  }
  params = random_device_floats(padded);
  grads = random_device_floats(padded);
  momentum = random_device_floats(padded);

  std::vector<SgdTensor> tensors;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    SgdTensor tensor;
    tensor.param = params.get() + offsets[i];
    tensor.grad = grads.get() + offsets[i];
    tensor.momentum_buffer = momentum.get() + offsets[i];
    tensor.count = sizes[i];
    tensors.push_back(tensor);
  }
  storage = DeviceArray<unsigned char>(cuda::sgd_table_bytes(std::int64_t(tensors.size())));
  // The upload is a synchronous cudaMemcpy on the default stream. The benchmark stream, where
  // the random fills above are queued, does not synchronise with it, so wait for the fills.
  DSN_CUDA_CHECK(cudaStreamSynchronize(device().stream));
  table = cuda::sgd_upload_table(tensors, storage.get(), std::int64_t(storage.bytes()));
}

}  // namespace dsn::bench
