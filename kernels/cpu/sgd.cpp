// SGD with momentum and weight decay on the CPU (kernels/sgd.h). Elements are independent, so
// each tensor is one OpenMP loop. The header spells out the per-element float operations, which
// the CUDA twin repeats.
#include "kernels/sgd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/blas.h"

namespace dsn {
namespace {

// Byte range of one array of one tensor, for the overlap check.
struct ArrayRange {
  std::uintptr_t begin = 0, end = 0;
  std::size_t tensor = 0;
  const char* name = "";
};

}  // namespace

void validate(std::span<const SgdTensor> tensors, const SgdStep& step) {
  DSN_CHECK(std::isfinite(step.lr) && step.lr >= 0.0f,
            "sgd: learning rate {} must be finite and not negative", step.lr);
  DSN_CHECK(std::isfinite(step.momentum), "sgd: momentum {} must be finite", step.momentum);
  DSN_CHECK(std::isfinite(step.weight_decay) && step.weight_decay >= 0.0f,
            "sgd: weight decay {} must be finite and not negative", step.weight_decay);

  std::vector<ArrayRange> ranges;
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    const SgdTensor& tensor = tensors[t];
    DSN_CHECK(tensor.count >= 0, "sgd: tensor {} has a negative count {}", t, tensor.count);
    DSN_CHECK(std::isfinite(tensor.lr_mult) && std::isfinite(tensor.decay_mult),
              "sgd: tensor {} has multipliers lr {} and decay {}, expected finite values", t,
              tensor.lr_mult, tensor.decay_mult);
    if (tensor.count == 0) continue;
    DSN_CHECK(
        tensor.param != nullptr && tensor.grad != nullptr && tensor.momentum_buffer != nullptr,
        "sgd: tensor {} of {} elements has a null param, grad or momentum buffer", t, tensor.count);
    const auto bytes = static_cast<std::uintptr_t>(tensor.count) * sizeof(float);
    for (const auto& [pointer, name] : {std::pair<const float*, const char*>{tensor.param, "param"},
                                        {tensor.grad, "grad"},
                                        {tensor.momentum_buffer, "momentum buffer"}}) {
      const auto begin = reinterpret_cast<std::uintptr_t>(pointer);
      ranges.push_back({begin, begin + bytes, t, name});
    }
  }

  std::sort(ranges.begin(), ranges.end(),
            [](const ArrayRange& a, const ArrayRange& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    DSN_CHECK(ranges[i].begin >= ranges[i - 1].end,
              "sgd: the {} of tensor {} overlaps the {} of tensor {}; every array must be "
              "separate",
              ranges[i].name, ranges[i].tensor, ranges[i - 1].name, ranges[i - 1].tensor);
  }
}

namespace cpu {

void sgd_update(std::span<const SgdTensor> tensors, const SgdStep& step) {
  validate(tensors, step);
  for (const SgdTensor& tensor : tensors) {
    const float rate = step.lr * tensor.lr_mult;
    const float decay = step.weight_decay * tensor.decay_mult;
    const float momentum = step.momentum;
    float* w = tensor.param;
    const float* g = tensor.grad;
    float* v = tensor.momentum_buffer;
#pragma omp parallel for schedule(static) if (tensor.count >= detail::kParallelMinElements)
    for (std::int64_t i = 0; i < tensor.count; ++i) {
      const float decayed = std::fma(decay, w[i], g[i]);
      v[i] = std::fma(momentum, v[i], rate * decayed);
      w[i] = w[i] - v[i];
    }
  }
}

}  // namespace cpu
}  // namespace dsn
