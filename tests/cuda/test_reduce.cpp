// cuda::sum against a double reference: empty and tiny arrays, float4 tails, one block and
// several, the first pass's cap of 1024 blocks (more than 1024 x 4096 elements), aligned and
// misaligned inputs, and bit-identical results across the emulation's thread schedules.
//
// Bound: the kernel accumulates in double and rounds once to float, so
// |got - expected| <= 2^-23 |expected| + 4 K 2^-53 sum|x| (one float rounding doubled as margin,
// plus twice the worst-case double summation error over K terms). An element dropped or added
// twice moves the sum by far more than that.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/error.h"
#include "kernels/cuda/reduce.h"
#include "tests/cuda/device_buffer.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using test::DeviceBuffer;

constexpr float kMarker = -55.5f;

// Returns the device sum of x[shift .. shift + count), where x also has guard elements after
// the range. Checks that the output's neighbours keep their marker.
float device_sum(const std::vector<float>& x, std::size_t shift, std::int64_t count) {
  DeviceBuffer<float> x_device(x);
  DeviceBuffer<float> out(std::vector<float>{kMarker, kMarker, kMarker});
  cuda::sum(count, x_device.get() + shift, out.get() + 1, nullptr);
  const std::vector<float> result = out.to_host();
  CHECK(result[0] == kMarker);
  CHECK(result[2] == kMarker);
  return result[1];
}

void check_sum(std::int64_t count, std::size_t shift, std::uint32_t seed) {
  CAPTURE(count);
  CAPTURE(shift);
  // Values in [-1, 2): the sum grows with count, so a lost block shows.
  const std::vector<float> x =
      ref::random_uniform(shift + std::size_t(count) + 3, -1.0f, 2.0f, seed);
  double expected = 0.0, magnitude = 0.0;
  for (std::size_t i = shift; i < shift + std::size_t(count); ++i) {
    expected += x[i];
    magnitude += std::abs(x[i]);
  }
  const float got = device_sum(x, shift, count);
  const double bound =
      std::ldexp(std::abs(expected), -23) + 4.0 * double(count) * std::ldexp(magnitude, -53);
  const double error = std::abs(double(got) - expected);
  CHECK_MESSAGE(error <= bound,
                fmt::format("got {:.9g}, expected {:.9g}, error {:.3g}, bound {:.3g}", got,
                            expected, error, bound));
}

TEST_CASE("cuda reduce sum matches double reference") {
  std::uint32_t seed = 1;
  for (const std::int64_t count : {0, 1, 3, 4, 5, 255, 1021, 4096, 4097, 100003}) {
    for (const std::size_t shift : {0, 1, 2, 3}) check_sum(count, shift, seed++);
  }
}

TEST_CASE("cuda reduce sum past the partials cap") {
  // 1024 blocks of 4096 elements, plus a float4 tail of 3.
  check_sum(std::int64_t(1024) * 4096 + 4 * 1000 + 3, 0, 99);
}

TEST_CASE("cuda reduce sum of empty array is zero") {
  DeviceBuffer<float> x(std::size_t(1));
  DeviceBuffer<float> out(std::vector<float>{kMarker});
  cuda::sum(0, x.get(), out.get(), nullptr);
  CHECK(out.to_host()[0] == 0.0f);
}

TEST_CASE("cuda reduce rejects invalid arguments") {
  DeviceBuffer<float> x(std::size_t(4));
  CHECK_THROWS_AS(cuda::sum(-1, x.get(), x.get(), nullptr), Error);
  CHECK_THROWS_AS(cuda::sum(4, x.get(), nullptr, nullptr), Error);
  CHECK_THROWS_AS(cuda::detail::plan_channel_reduction(1, 0, 1), Error);
}

TEST_CASE("cuda reduce workspace grows and stays per stream") {
  void* small = cuda::detail::stream_workspace(16, nullptr);
  CHECK(small != nullptr);
  CHECK(cuda::detail::stream_workspace(8, nullptr) == small);
  void* large = cuda::detail::stream_workspace(std::size_t(1) << 20, nullptr);
  CHECK(large != nullptr);
  CHECK(cuda::detail::stream_workspace(1024, nullptr) == large);

  cudaStream_t other = nullptr;
  DSN_CUDA_CHECK(cudaStreamCreate(&other));
  void* other_buffer = cuda::detail::stream_workspace(16, other);
  CHECK(other_buffer != nullptr);
  CHECK(other_buffer != large);
  CHECK(cuda::detail::stream_workspace(16, other) == other_buffer);
  DSN_CUDA_CHECK(cudaStreamDestroy(other));
}

TEST_CASE("cuda reduce channel plan splits large batches") {
  const cuda::detail::ChannelReductionPlan one_per_row =
      cuda::detail::plan_channel_reduction(32, 64, 3136);  // ResNet-50 layer1: (32, 64, 56, 56)
  CHECK(one_per_row.tile_width == 256);
  CHECK(one_per_row.tile_height == 1);
  CHECK(one_per_row.splits == 16);
  const cuda::detail::ChannelReductionPlan many_channels =
      cuda::detail::plan_channel_reduction(32, 2048, 49);  // ResNet-50 layer4: (32, 2048, 7, 7)
  CHECK(many_channels.tile_width == 64);
  CHECK(many_channels.tile_height == 4);
  CHECK(many_channels.splits == 1);
}

#if defined(DSN_DEVICE_EMULATION)
TEST_CASE("cuda reduce sum identical across schedules") {
  const std::int64_t count = 100003;
  const std::vector<float> x = ref::random_uniform(std::size_t(count), -1.0f, 1.0f, 7);
  const emu::Schedule saved = emu::schedule();
  std::vector<float> results;
  for (const char* order : {"forward", "reverse", "random:17"}) {
    emu::set_schedule(emu::parse_schedule(order));
    results.push_back(device_sum(x, 0, count));
  }
  emu::set_schedule(saved);
  CHECK(std::memcmp(&results[1], &results[0], sizeof(float)) == 0);
  CHECK(std::memcmp(&results[2], &results[0], sizeof(float)) == 0);
}
#endif

}  // namespace
}  // namespace dsn
