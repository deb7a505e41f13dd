// cuda element-wise kernels against their dsn::cpu twins, bit for bit: aligned pointers (float4
// path), misaligned pointers (scalar path), in-place calls, counts that leave a float4 tail,
// and counts past the grid cap so the grid-stride loops run more than once. Each output buffer
// has guard elements around the written range, compared too, so a write out of range fails.
// Dropout masks must equal cpu::dropout's for the same (seed, offset, count), including offsets
// that are not a multiple of four. bias_add is checked bit for bit against a naive loop;
// bias_backward, which accumulates in double, against a double reference.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/error.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/reduce.h"
#include "kernels/elementwise.h"
#include "tests/cuda/device_buffer.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using test::DeviceBuffer;

// Elements before and after the written range of every output buffer.
constexpr std::size_t kGuard = 4;
constexpr float kGuardValue = -123.25f;

// Returns an empty string when both spans hold the same bits, else the first difference.
std::string bitwise_mismatch(std::span<const float> got, std::span<const float> expected) {
  if (got.size() != expected.size()) {
    return fmt::format("size mismatch: got {}, expected {}", got.size(), expected.size());
  }
  std::size_t differences = 0, first = 0;
  for (std::size_t i = got.size(); i-- > 0;) {
    if (std::memcmp(&got[i], &expected[i], sizeof(float)) != 0) {
      ++differences;
      first = i;
    }
  }
  if (differences == 0) return {};
  return fmt::format("{} of {} elements differ; first at index {}: got {:.9g}, expected {:.9g}",
                     differences, got.size(), first, got[first], expected[first]);
}

// Inputs with exact zeros of both signs among random values, so ReLU's comparisons and
// dropout's products meet every sign case.
std::vector<float> signed_inputs(std::size_t count, std::uint32_t seed) {
  std::vector<float> values = ref::random_uniform(count, -2.0f, 2.0f, seed);
  for (std::size_t i = 0; i < count; i += 7) values[i] = 0.0f;
  for (std::size_t i = 3; i < count; i += 11) values[i] = -0.0f;
  return values;
}

// Where the first input and the output sit in their buffers.
enum class Placement { aligned, misaligned, output_misaligned, in_place };

const char* name_of(Placement placement) {
  switch (placement) {
    case Placement::aligned:
      return "aligned";
    case Placement::misaligned:
      return "misaligned";
    case Placement::output_misaligned:
      return "output misaligned";
    case Placement::in_place:
      return "in place";
  }
  return "";
}

constexpr Placement kPlacements[] = {Placement::aligned, Placement::misaligned,
                                     Placement::output_misaligned, Placement::in_place};

// An op under test: reads `inputs` arrays (the first may be the output, in place) and writes
// one output of `count` elements, on the CPU and on the device.
using CpuOp = std::function<void(std::int64_t count, std::span<const float* const> in, float* y)>;
using GpuOp = CpuOp;

// Runs both ops on the same random inputs with the given placement and checks the whole output
// buffer, guards included, bit for bit.
void check_against_cpu(std::int64_t count, int inputs, Placement placement, const CpuOp& cpu_op,
                       const GpuOp& gpu_op, std::uint32_t seed) {
  CAPTURE(count);
  CAPTURE(name_of(placement));
  const std::size_t size = std::size_t(count) + 2 * kGuard;
  const std::size_t in_offset = placement == Placement::misaligned ? kGuard - 1 : kGuard;
  const std::size_t out_offset =
      placement == Placement::aligned || placement == Placement::in_place ? kGuard : kGuard - 3;

  std::vector<std::vector<float>> host;
  for (int t = 0; t < inputs; ++t) host.push_back(signed_inputs(size, seed + std::uint32_t(t)));
  std::vector<float> host_out(size, kGuardValue);

  std::vector<std::unique_ptr<DeviceBuffer<float>>> device;
  for (const auto& values : host) device.push_back(std::make_unique<DeviceBuffer<float>>(values));
  DeviceBuffer<float> device_out(host_out);

  std::vector<const float*> host_in, device_in;
  for (int t = 0; t < inputs; ++t) {
    const std::size_t offset = t == 0 ? in_offset : kGuard;
    host_in.push_back(host[std::size_t(t)].data() + offset);
    device_in.push_back(device[std::size_t(t)]->get() + offset);
  }
  const bool in_place = placement == Placement::in_place;
  float* host_y = in_place ? host[0].data() + in_offset : host_out.data() + out_offset;
  float* device_y = in_place ? device[0]->get() + in_offset : device_out.get() + out_offset;

  cpu_op(count, host_in, host_y);
  gpu_op(count, device_in, device_y);

  const std::vector<float> got = in_place ? device[0]->to_host() : device_out.to_host();
  const std::vector<float>& expected = in_place ? host[0] : host_out;
  const std::string mismatch = bitwise_mismatch(got, expected);
  CHECK_MESSAGE(mismatch.empty(), mismatch);
}

// Counts around the float4 width, a few thousand, and one past the grid cap of the float4
// path (2048 blocks x 256 threads x 4 floats).
constexpr std::int64_t kCounts[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 1023, 4097};
constexpr std::int64_t kPastVectorGridCap = 2048 * 256 * 4 + 1000 * 4 + 3;
constexpr std::int64_t kPastScalarGridCap = 2048 * 256 + 5000;

void check_all_placements(int inputs, const CpuOp& cpu_op, const GpuOp& gpu_op) {
  std::uint32_t seed = 100;
  for (const std::int64_t count : kCounts) {
    for (const Placement placement : kPlacements) {
      // An op without inputs has nothing to run in place on.
      if (inputs == 0 && placement == Placement::in_place) continue;
      check_against_cpu(count, inputs, placement, cpu_op, gpu_op, seed++);
    }
  }
}

TEST_CASE("cuda elementwise relu forward matches cpu") {
  const CpuOp cpu_op = [](std::int64_t count, std::span<const float* const> in, float* y) {
    cpu::relu_forward(count, in[0], y);
  };
  const GpuOp gpu_op = [](std::int64_t count, std::span<const float* const> in, float* y) {
    cuda::relu_forward(count, in[0], y, nullptr);
  };
  check_all_placements(1, cpu_op, gpu_op);
  check_against_cpu(kPastVectorGridCap, 1, Placement::aligned, cpu_op, gpu_op, 1);
  check_against_cpu(kPastScalarGridCap, 1, Placement::misaligned, cpu_op, gpu_op, 2);
}

TEST_CASE("cuda elementwise relu backward matches cpu") {
  check_all_placements(
      2,
      [](std::int64_t count, std::span<const float* const> in, float* y) {
        cpu::relu_backward(count, in[0], in[1], y);
      },
      [](std::int64_t count, std::span<const float* const> in, float* y) {
        cuda::relu_backward(count, in[0], in[1], y, nullptr);
      });
}

TEST_CASE("cuda elementwise add matches cpu") {
  check_all_placements(
      2,
      [](std::int64_t count, std::span<const float* const> in, float* y) {
        cpu::add(count, in[0], in[1], y);
      },
      [](std::int64_t count, std::span<const float* const> in, float* y) {
        cuda::add(count, in[0], in[1], y, nullptr);
      });
}

TEST_CASE("cuda elementwise accumulate matches cpu") {
  // y += x: the output buffer starts as guard values, so the in-place placement (y == x)
  // doubles x and the others add x to the guard value.
  check_all_placements(
      1,
      [](std::int64_t count, std::span<const float* const> in, float* y) {
        cpu::accumulate(count, in[0], y);
      },
      [](std::int64_t count, std::span<const float* const> in, float* y) {
        cuda::accumulate(count, in[0], y, nullptr);
      });
}

TEST_CASE("cuda elementwise scale matches cpu") {
  for (const float alpha : {0.0f, -1.0f, 0.3f, 1e30f}) {
    CAPTURE(alpha);
    check_all_placements(
        1,
        [alpha](std::int64_t count, std::span<const float* const> in, float* y) {
          cpu::scale(count, alpha, in[0], y);
        },
        [alpha](std::int64_t count, std::span<const float* const> in, float* y) {
          cuda::scale(count, alpha, in[0], y, nullptr);
        });
  }
}

TEST_CASE("cuda elementwise fill matches cpu") {
  for (const float value : {0.0f, -0.0f, 2.5f}) {
    CAPTURE(value);
    check_all_placements(
        0,
        [value](std::int64_t count, std::span<const float* const>, float* y) {
          cpu::fill(count, value, y);
        },
        [value](std::int64_t count, std::span<const float* const>, float* y) {
          cuda::fill(count, value, y, nullptr);
        });
  }
}

TEST_CASE("cuda elementwise dropout masks match cpu") {
  constexpr std::int64_t counts[] = {1, 2, 3, 4, 5, 7, 13, 1000, 4099};
  constexpr std::uint64_t offsets[] = {0, 1, 2, 3, 6, 4097, (std::uint64_t(1) << 32) + 1};
  constexpr std::uint64_t seeds[] = {0, 0x0123456789abcdefULL};
  std::uint32_t input_seed = 500;
  for (const float p : {0.0f, 0.1f, 0.5f, 0.9f}) {
    for (const std::uint64_t seed : seeds) {
      for (const std::uint64_t offset : offsets) {
        const DropoutParams params{p, seed, offset};
        CAPTURE(p);
        CAPTURE(seed);
        CAPTURE(offset);
        const CpuOp cpu_op = [params](std::int64_t count, std::span<const float* const> in,
                                      float* y) { cpu::dropout(count, params, in[0], y); };
        const GpuOp gpu_op = [params](std::int64_t count, std::span<const float* const> in,
                                      float* y) {
          cuda::dropout(count, params, in[0], y, nullptr);
        };
        for (const std::int64_t count : counts) {
          for (const Placement placement : kPlacements) {
            check_against_cpu(count, 1, placement, cpu_op, gpu_op, input_seed++);
          }
        }
      }
    }
  }
}

TEST_CASE("cuda elementwise dropout past grid cap matches cpu") {
  const DropoutParams params{0.25f, 77, 12};
  check_against_cpu(
      kPastVectorGridCap, 1, Placement::aligned,
      [params](std::int64_t count, std::span<const float* const> in, float* y) {
        cpu::dropout(count, params, in[0], y);
      },
      [params](std::int64_t count, std::span<const float* const> in, float* y) {
        cuda::dropout(count, params, in[0], y, nullptr);
      },
      3);
}

TEST_CASE("cuda elementwise rejects invalid arguments") {
  DeviceBuffer<float> buffer(8);
  CHECK_THROWS_AS(cuda::relu_forward(-1, buffer.get(), buffer.get(), nullptr), Error);
  CHECK_THROWS_AS(cuda::fill(-2, 0.0f, buffer.get(), nullptr), Error);
  CHECK_THROWS_AS(cuda::dropout(8, DropoutParams{1.0f, 0, 0}, buffer.get(), buffer.get(), nullptr),
                  Error);
  CHECK_THROWS_AS(cuda::dropout(8, DropoutParams{-0.1f, 0, 0}, buffer.get(), buffer.get(), nullptr),
                  Error);
  CHECK_THROWS_AS(cuda::bias_add(0, 2, 2, buffer.get(), buffer.get(), nullptr), Error);
  CHECK_THROWS_AS(cuda::bias_backward(2, 2, 0, buffer.get(), buffer.get(), nullptr), Error);
}

struct ChannelShape {
  std::int64_t n, c, hw;
};

// Small awkward shapes, one row per thread (hw = 1), few rows with long planes (column
// blocks), split channel reductions (hw = 33 and 300 with several batch rows), and more rows
// than the row blocks' cap covers in one grid step (8192 blocks x 4 rows of 33).
constexpr ChannelShape kChannelShapes[] = {
    {1, 1, 1}, {3, 17, 35}, {2, 5, 1}, {1, 3, 7}, {9, 2, 33}, {5, 3, 300}, {3, 1, 50000},
};

TEST_CASE("cuda elementwise bias_add matches naive loop") {
  std::vector<ChannelShape> shapes(std::begin(kChannelShapes), std::end(kChannelShapes));
  shapes.push_back({1000, 33, 33});
  for (const ChannelShape& s : shapes) {
    CAPTURE(s.n);
    CAPTURE(s.c);
    CAPTURE(s.hw);
    const std::vector<float> bias = ref::random_uniform(std::size_t(s.c), -1.0f, 1.0f, 11);
    std::vector<float> y = ref::random_uniform(std::size_t(s.n * s.c * s.hw), -3.0f, 3.0f, 12);
    DeviceBuffer<float> bias_device(bias), y_device(y);
    cuda::bias_add(s.n, s.c, s.hw, bias_device.get(), y_device.get(), nullptr);
    for (std::int64_t b = 0; b < s.n; ++b)
      for (std::int64_t c = 0; c < s.c; ++c)
        for (std::int64_t i = 0; i < s.hw; ++i) y[std::size_t((b * s.c + c) * s.hw + i)] += bias[c];
    const std::string mismatch = bitwise_mismatch(y_device.to_host(), y);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
  }
}

// Checks |got - expected| <= 2^-23 |expected| + 4 K 2^-53 magnitude per channel: a sum
// accumulated in double (worst case 2 K 2^-53 sum|terms|, doubled for the final rounding's
// interaction) and rounded once to float (2^-24 relative, doubled as margin).
void check_double_sums(std::span<const float> got, std::span<const double> expected,
                       std::span<const double> magnitude, double terms) {
  REQUIRE(got.size() == expected.size());
  std::size_t failures = 0, worst = 0;
  double worst_ratio = -1.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double bound =
        std::ldexp(std::abs(expected[i]), -23) + 4.0 * terms * std::ldexp(magnitude[i], -53);
    const double error = std::abs(double(got[i]) - expected[i]);
    const double ratio = error <= bound ? error / bound : std::numeric_limits<double>::infinity();
    if (!(error <= bound)) ++failures;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  CHECK_MESSAGE(failures == 0,
                fmt::format("{} of {} channels exceed the bound; worst {}: got {:.9g}, "
                            "expected {:.9g}",
                            failures, got.size(), worst, got[worst], expected[worst]));
}

TEST_CASE("cuda elementwise bias_backward matches double reference") {
  CHECK(cuda::detail::plan_channel_reduction(9, 2, 33).splits == 3);
  CHECK(cuda::detail::plan_channel_reduction(5, 3, 300).splits == 5);
  for (const ChannelShape& s : kChannelShapes) {
    CAPTURE(s.n);
    CAPTURE(s.c);
    CAPTURE(s.hw);
    const std::vector<float> dy =
        ref::random_uniform(std::size_t(s.n * s.c * s.hw), -1.0f, 2.0f, 21);
    DeviceBuffer<float> dy_device(dy), dbias_device(std::size_t(s.c));
    cuda::bias_backward(s.n, s.c, s.hw, dy_device.get(), dbias_device.get(), nullptr);

    std::vector<double> expected(std::size_t(s.c), 0.0), magnitude(std::size_t(s.c), 0.0);
    for (std::int64_t b = 0; b < s.n; ++b)
      for (std::int64_t c = 0; c < s.c; ++c)
        for (std::int64_t i = 0; i < s.hw; ++i) {
          const double value = dy[std::size_t((b * s.c + c) * s.hw + i)];
          expected[std::size_t(c)] += value;
          magnitude[std::size_t(c)] += std::abs(value);
        }
    check_double_sums(dbias_device.to_host(), expected, magnitude, double(s.n * s.hw));
  }
}

#if defined(DSN_DEVICE_EMULATION)
TEST_CASE("cuda elementwise bias_backward identical across schedules") {
  const ChannelShape s{9, 2, 33};
  const std::vector<float> dy = ref::random_uniform(std::size_t(s.n * s.c * s.hw), -1.0f, 1.0f, 31);
  DeviceBuffer<float> dy_device(dy), dbias_device(std::size_t(s.c));
  const emu::Schedule saved = emu::schedule();
  std::vector<std::vector<float>> results;
  for (const char* order : {"forward", "reverse", "random:5"}) {
    emu::set_schedule(emu::parse_schedule(order));
    cuda::bias_backward(s.n, s.c, s.hw, dy_device.get(), dbias_device.get(), nullptr);
    results.push_back(dbias_device.to_host());
  }
  emu::set_schedule(saved);
  for (std::size_t run = 1; run < results.size(); ++run) {
    CAPTURE(run);
    const std::string mismatch = bitwise_mismatch(results[run], results[0]);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
  }
}
#endif

}  // namespace
}  // namespace dsn
