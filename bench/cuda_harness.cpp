#include "bench/cuda_harness.h"

#include <algorithm>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "bench/bench_common.h"
#include "engine/error.h"

namespace dsn::bench {
namespace {

// Elements of each random pattern (64 MiB of floats); larger buffers repeat it. Generating it on
// the host takes a fraction of a second.
constexpr std::int64_t kPatternCount = std::int64_t{1} << 24;

std::unique_ptr<DeviceState> state;

}  // namespace

void init_device() {
  if (state) return;
  auto created = std::make_unique<DeviceState>();
  DSN_CUDA_CHECK(cudaSetDevice(0));
  DSN_CUDA_CHECK(cudaGetDeviceProperties(&created->properties, 0));
  DSN_CUDA_CHECK(cudaStreamCreateWithFlags(&created->stream, cudaStreamNonBlocking));
  DSN_CUDA_CHECK(cudaEventCreate(&created->start));
  DSN_CUDA_CHECK(cudaEventCreate(&created->stop));
  const std::int64_t l2_bytes = std::max(created->properties.l2CacheSize, 1 << 20);
  created->flush = DeviceArray<unsigned char>(2 * l2_bytes);

  const std::vector<float> symmetric = random_floats(kPatternCount, 20240601);
  const std::vector<float> positive = random_floats(kPatternCount, 20240602, 0.5f, 1.5f);
  created->symmetric_pattern = to_device(symmetric.data(), kPatternCount);
  created->positive_pattern = to_device(positive.data(), kPatternCount);
  state = std::move(created);
}

void shutdown_device() {
  if (!state) return;
  DSN_CUDA_CHECK_LOG(cudaStreamSynchronize(state->stream));
  DSN_CUDA_CHECK_LOG(cudaEventDestroy(state->start));
  DSN_CUDA_CHECK_LOG(cudaEventDestroy(state->stop));
  DSN_CUDA_CHECK_LOG(cudaStreamDestroy(state->stream));
  state.reset();
}

DeviceState& device() {
  DSN_CHECK(state != nullptr, "dsn_bench_cuda: init_device() was not called");
  return *state;
}

void add_device_context() {
  const DeviceState& d = device();
  const cudaDeviceProp& p = d.properties;
  int driver = 0, runtime = 0;
  DSN_CUDA_CHECK(cudaDriverGetVersion(&driver));
  DSN_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  const auto version_text = [](int version) {
    return fmt::format("{}.{}", version / 1000, version % 1000 / 10);
  };
  benchmark::AddCustomContext("gpu", p.name);
  benchmark::AddCustomContext("gpu_compute_capability", fmt::format("{}.{}", p.major, p.minor));
  benchmark::AddCustomContext("gpu_multiprocessors", std::to_string(p.multiProcessorCount));
  benchmark::AddCustomContext("gpu_memory_bytes", std::to_string(p.totalGlobalMem));
  benchmark::AddCustomContext("gpu_l2_bytes", std::to_string(p.l2CacheSize));
  benchmark::AddCustomContext("cuda_driver", version_text(driver));
  benchmark::AddCustomContext("cuda_runtime", version_text(runtime));
  benchmark::AddCustomContext("l2_flush_bytes", std::to_string(d.flush.bytes()));
  benchmark::AddCustomContext(
      "dsn_timing", "CUDA events around one call per iteration, after an L2 flush; two warm-up "
                    "calls per benchmark run");
}

void fill_random(float* data, std::int64_t count, Fill fill) {
  const DeviceState& d = device();
  const float* pattern =
      fill == Fill::Positive ? d.positive_pattern.get() : d.symmetric_pattern.get();
  for (std::int64_t offset = 0; offset < count; offset += kPatternCount) {
    const std::int64_t chunk = std::min(kPatternCount, count - offset);
    DSN_CUDA_CHECK(cudaMemcpyAsync(data + offset, pattern, std::size_t(chunk) * sizeof(float),
                                   cudaMemcpyDeviceToDevice, d.stream));
  }
}

DeviceArray<float> random_device_floats(std::int64_t count, Fill fill) {
  DeviceArray<float> array(count);
  fill_random(array.get(), count, fill);
  return array;
}

void flush_l2() {
  static unsigned char value = 0;
  const DeviceState& d = device();
  DSN_CUDA_CHECK(cudaMemsetAsync(d.flush.get(), ++value, d.flush.bytes(), d.stream));
}

}  // namespace dsn::bench
