// CUDA SGD against the CPU twin (kernels/cpu/sgd.cpp). Both perform the float operations that
// kernels/sgd.h documents, so parameters and momentum buffers must match bit for bit after
// several steps. Cases: tensors whose sizes straddle the kernel's chunks, hundreds of tiny
// tensors that share chunks, table sizing and validation.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda/sgd.h"
#include "kernels/sgd.h"
#include "tests/cuda/device_buffer.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

// Tensors packed into three arrays (params, grads, momentum buffers) with a gap of one float
// between tensors, mirrored on the host and the device.
class ParameterSet {
 public:
  ParameterSet(const std::vector<std::int64_t>& counts, std::uint32_t seed) : counts_(counts) {
    std::int64_t total = 0;
    for (const std::int64_t count : counts) {
      offsets_.push_back(total);
      total += count + 1;
    }
    params_ = ref::random_uniform(static_cast<std::size_t>(total), -1.0f, 1.0f, seed);
    grads_ = ref::random_uniform(static_cast<std::size_t>(total), -1.0f, 1.0f, seed + 1);
    buffers_ = ref::random_uniform(static_cast<std::size_t>(total), -0.5f, 0.5f, seed + 2);
    device_params_ = std::make_unique<test::DeviceBuffer<float>>(params_);
    device_grads_ = std::make_unique<test::DeviceBuffer<float>>(grads_);
    device_buffers_ = std::make_unique<test::DeviceBuffer<float>>(buffers_);
  }

  // Descriptors over the host (device = false) or device arrays. Multipliers cycle through
  // DSN's weight, bias, score-conv and frozen-upsampling settings.
  std::vector<SgdTensor> tensors(bool device) {
    float* params = device ? device_params_->get() : params_.data();
    float* grads = device ? device_grads_->get() : grads_.data();
    float* buffers = device ? device_buffers_->get() : buffers_.data();
    const float multipliers[][2] = {{1.0f, 1.0f}, {2.0f, 0.0f}, {0.1f, 1.0f}, {0.0f, 0.0f}};
    std::vector<SgdTensor> result;
    for (std::size_t t = 0; t < counts_.size(); ++t) {
      const std::int64_t offset = offsets_[t];
      result.push_back({params + offset, grads + offset, buffers + offset, counts_[t],
                        multipliers[t % 4][0], multipliers[t % 4][1]});
    }
    return result;
  }

  // Checks that the device arrays hold the host arrays' bits, gaps included.
  void check_identical() const {
    check_array(device_params_->to_host(), params_, "params");
    check_array(device_buffers_->to_host(), buffers_, "momentum buffers");
    check_array(device_grads_->to_host(), grads_, "grads");
  }

 private:
  static void check_array(const std::vector<float>& got, const std::vector<float>& expected,
                          const char* name) {
    CAPTURE(name);
    REQUIRE(got.size() == expected.size());
    std::size_t mismatches = 0, first = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (std::memcmp(&got[i], &expected[i], sizeof(float)) != 0 && mismatches++ == 0) first = i;
    }
    CHECK_MESSAGE(mismatches == 0,
                  fmt::format("{} of {} elements differ from the CPU twin; first at {}: got "
                              "{:.9g}, expected {:.9g}",
                              mismatches, got.size(), first, got[first], expected[first]));
  }

  std::vector<std::int64_t> counts_, offsets_;
  std::vector<float> params_, grads_, buffers_;
  std::unique_ptr<test::DeviceBuffer<float>> device_params_, device_grads_, device_buffers_;
};

// Uploads the device table, runs the steps on both twins and compares.
void run_steps(ParameterSet& set, const std::vector<SgdStep>& steps) {
  const std::vector<SgdTensor> device_tensors = set.tensors(true);
  const std::int64_t bytes =
      cuda::sgd_table_bytes(static_cast<std::int64_t>(device_tensors.size()));
  test::DeviceBuffer<unsigned char> storage(
      static_cast<std::size_t>(std::max<std::int64_t>(bytes, 1)));
  const cuda::SgdTable table = cuda::sgd_upload_table(device_tensors, storage.get(), bytes);
  const std::vector<SgdTensor> host_tensors = set.tensors(false);
  for (const SgdStep& step : steps) {
    cpu::sgd_update(host_tensors, step);
    cuda::sgd_update(table, step, nullptr);
  }
  set.check_identical();
}

const std::vector<SgdStep> kSteps = {
    {0.01f, 0.9f, 5e-4f}, {0.5f, 0.9f, 0.25f}, {0.003f, 0.0f, 0.0f}};

TEST_CASE("cuda sgd across chunk boundaries") {
  // The kernel's chunk is 2048 elements: sizes below, at and above it, a single element, an
  // empty tensor, and a tensor spanning several chunks.
  ParameterSet set({2047, 1, 2048, 0, 2049, 7, 9000, 64, 3}, 500);
  run_steps(set, kSteps);
}

TEST_CASE("cuda sgd over many small tensors") {
  // 300 tensors of 1 to 37 elements, like the biases and batch-norm parameters of a deep net:
  // chunks hold many tensors, and the binary search runs over every segment.
  std::vector<std::int64_t> counts;
  for (int t = 0; t < 300; ++t) counts.push_back(1 + (t * 7) % 37);
  counts.push_back(5000);
  ParameterSet set(counts, 600);
  run_steps(set, kSteps);
}

TEST_CASE("cuda sgd rejects invalid tables") {
  ParameterSet set({10, 20}, 700);
  const std::vector<SgdTensor> tensors = set.tensors(true);
  const std::int64_t bytes = cuda::sgd_table_bytes(2);
  CHECK(bytes > 0);
  test::DeviceBuffer<unsigned char> storage(static_cast<std::size_t>(bytes));
  CHECK_THROWS_AS(cuda::sgd_upload_table(tensors, storage.get(), bytes - 1), Error);
  const cuda::SgdTable table = cuda::sgd_upload_table(tensors, storage.get(), bytes);
  CHECK(table.segment_count == 2);
  CHECK(table.total_count == 30);
  CHECK_THROWS_AS(cuda::sgd_update(table, {-1.0f, 0.9f, 0.0f}, nullptr), Error);
  CHECK_THROWS_AS(cuda::sgd_table_bytes(-1), Error);

  // An empty list needs no storage and updates nothing.
  const cuda::SgdTable empty = cuda::sgd_upload_table({}, nullptr, 0);
  CHECK(empty.total_count == 0);
  CHECK_NOTHROW(cuda::sgd_update(empty, kSteps[0], nullptr));

  // Overlapping tensors are rejected before anything is copied.
  std::vector<SgdTensor> overlapping = tensors;
  overlapping[1].param = overlapping[0].param + 5;
  CHECK_THROWS_AS(cuda::sgd_upload_table(overlapping, storage.get(), bytes), Error);
}

}  // namespace
}  // namespace dsn
