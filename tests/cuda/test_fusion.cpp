// CUDA side-output fusion against the CPU twin (kernels/cpu/fusion.cpp). Both sum the same taps
// in the same order with the same fused multiply-adds, so every element must match bit for
// bit. Cases: the DSN-VGG-Face short connections and fusion at an odd and at the full input
// size, awkward passes (two channels, odd factors, rectangular maps, an in-place base), and
// validation.
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda/fusion.h"
#include "kernels/fusion.h"
#include "tests/cuda/device_buffer.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

// Maps by index, each held on the host (for the CPU twin) and on the device.
class MapSet {
 public:
  int add(std::int64_t planes, std::int64_t h, std::int64_t w, std::uint32_t seed) {
    const std::size_t count = static_cast<std::size_t>(planes * h * w);
    host_.push_back(ref::random_uniform(count, -1.0f, 1.0f, seed));
    device_.push_back(std::make_unique<test::DeviceBuffer<float>>(host_.back()));
    sizes_.push_back({h, w});
    return static_cast<int>(host_.size()) - 1;
  }

  std::int64_t h(int map) const { return sizes_[static_cast<std::size_t>(map)].first; }
  std::int64_t w(int map) const { return sizes_[static_cast<std::size_t>(map)].second; }
  float* host(int map) { return host_[static_cast<std::size_t>(map)].data(); }
  float* device(int map) { return device_[static_cast<std::size_t>(map)]->get(); }
  std::size_t size() const { return host_.size(); }

  // Checks that every map has the same bits on the host and on the device.
  void check_identical() const {
    for (std::size_t map = 0; map < host_.size(); ++map) {
      CAPTURE(map);
      const std::vector<float> got = device_[map]->to_host();
      const std::vector<float>& expected = host_[map];
      REQUIRE(got.size() == expected.size());
      std::size_t mismatches = 0, first = 0;
      for (std::size_t i = 0; i < got.size(); ++i) {
        if (std::memcmp(&got[i], &expected[i], sizeof(float)) != 0 && mismatches++ == 0) {
          first = i;
        }
      }
      CHECK_MESSAGE(mismatches == 0,
                    fmt::format("{} of {} elements differ from the CPU twin; first at {}: got "
                                "{:.9g}, expected {:.9g}",
                                mismatches, got.size(), first, got[first], expected[first]));
    }
  }

 private:
  std::vector<std::vector<float>> host_;
  std::vector<std::unique_ptr<test::DeviceBuffer<float>>> device_;
  std::vector<std::pair<std::int64_t, std::int64_t>> sizes_;
};

// One output of a pass by map index: base -1 means none.
struct OutputSpec {
  int out;
  int base;
  std::vector<std::pair<int, std::int64_t>> terms;  // (map, factor)
};

// Builds the pass on the host (device = false) or device pointers of `maps`.
FusionPass make_pass(MapSet& maps, std::int64_t n, std::int64_t c,
                     const std::vector<OutputSpec>& outputs, bool device) {
  const auto pointer = [&](int map) { return device ? maps.device(map) : maps.host(map); };
  FusionPass pass;
  pass.n = n;
  pass.c = c;
  pass.outputs = static_cast<int>(outputs.size());
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    FusionOutput& output = pass.output[o];
    output.out = pointer(outputs[o].out);
    output.base = outputs[o].base >= 0 ? pointer(outputs[o].base) : nullptr;
    output.h = maps.h(outputs[o].out);
    output.w = maps.w(outputs[o].out);
    output.terms = static_cast<int>(outputs[o].terms.size());
    for (std::size_t t = 0; t < outputs[o].terms.size(); ++t) {
      const auto [map, factor] = outputs[o].terms[t];
      output.term[t] = {pointer(map), maps.h(map), maps.w(map), factor};
    }
  }
  return pass;
}

// Runs the pass on the CPU twin and on the device, then compares every map.
void run_both(MapSet& maps, std::int64_t n, std::int64_t c, const std::vector<OutputSpec>& outputs,
              FusionDirection direction) {
  const FusionPass host = make_pass(maps, n, c, outputs, false);
  const FusionPass device = make_pass(maps, n, c, outputs, true);
  if (direction == FusionDirection::forward) {
    cpu::fusion_forward(host);
    cuda::fusion_forward(device, nullptr);
  } else {
    cpu::fusion_backward(host);
    cuda::fusion_backward(device, nullptr);
  }
  maps.check_identical();
}

// Score-map sizes of DSN-VGG-Face's sides 1..6 for a square input (index 0: the input): conv1_1
// pads by 5, then three 2x2/s2 pools, two 3x3/s2/p1 pools and side 6's 3x3/s1/p1 pool, with
// Caffe's ceil rounding.
std::array<std::int64_t, 7> side_sizes(std::int64_t input) {
  std::array<std::int64_t, 7> size{};
  size[0] = input;
  size[1] = input + 8;
  size[2] = ref::pool_out_size(size[1], 2, 2, 0, true);
  size[3] = ref::pool_out_size(size[2], 2, 2, 0, true);
  size[4] = ref::pool_out_size(size[3], 2, 2, 0, true);
  size[5] = ref::pool_out_size(size[4], 3, 2, 1, true);
  size[6] = ref::pool_out_size(ref::pool_out_size(size[5], 3, 2, 1, true), 3, 1, 1, true);
  return size;
}

// (target, [(source, factor)]) per forward pass; target 0 is the fused map.
using GraphPass = std::vector<std::pair<int, std::vector<std::pair<int, std::int64_t>>>>;
const std::vector<GraphPass> kForwardPasses = {
    {{4, {{6, 4}, {5, 2}}}, {3, {{6, 8}, {5, 4}}}},
    {{2, {{6, 16}, {5, 8}, {4, 4}, {3, 2}}}, {1, {{6, 32}, {5, 16}, {4, 8}, {3, 4}}}},
    {{0, {{1, 1}, {2, 2}, {3, 4}, {4, 8}, {5, 16}, {6, 32}}}},
};
const std::vector<std::vector<int>> kBackwardPasses = {{1, 2}, {3, 4}, {5, 6}};

TEST_CASE("cuda fusion on the DSN-VGG-Face graph") {
  for (const std::int64_t input : {37, 224}) {
    CAPTURE(input);
    const std::int64_t n = input == 224 ? 1 : 3;
    const std::array<std::int64_t, 7> size = side_sizes(input);
    MapSet maps;
    std::array<int, 7> scores{}, refined{}, head_grads{}, grads{};
    for (int m = 0; m <= 6; ++m) {
      scores[m] = maps.add(n, size[m], size[m], 300 + m);
      refined[m] = m >= 5 ? scores[m] : maps.add(n, size[m], size[m], 310 + m);
      head_grads[m] = maps.add(n, size[m], size[m], 320 + m);
      grads[m] = m == 0 ? head_grads[0] : maps.add(n, size[m], size[m], 330 + m);
    }

    for (const GraphPass& graph_pass : kForwardPasses) {
      std::vector<OutputSpec> outputs;
      for (const auto& [target, sources] : graph_pass) {
        OutputSpec output{refined[target], target == 0 ? -1 : scores[target], {}};
        for (const auto& [source, factor] : sources) {
          output.terms.push_back({refined[source], factor});
        }
        outputs.push_back(output);
      }
      run_both(maps, n, 1, outputs, FusionDirection::forward);
    }

    for (const std::vector<int>& sources : kBackwardPasses) {
      std::vector<OutputSpec> outputs;
      for (const int source : sources) {
        OutputSpec output{grads[source], head_grads[source], {}};
        for (const GraphPass& graph_pass : kForwardPasses) {
          for (const auto& [target, feeding] : graph_pass) {
            for (const auto& [map, factor] : feeding) {
              if (map == source) output.terms.push_back({grads[target], factor});
            }
          }
        }
        outputs.push_back(output);
      }
      run_both(maps, n, 1, outputs, FusionDirection::backward);
    }
  }
}

TEST_CASE("cuda fusion on awkward passes") {
  // Two channels and batch 3, rectangular maps, six terms, a base that is the output itself, and
  // factors 1 to 8. The odd factors take the double formula for their weights, and the powers
  // of two take the kernel's exact integer form.
  const std::int64_t n = 3, c = 2, planes = n * c;
  MapSet maps;
  const int a = maps.add(planes, 7, 4, 1), b = maps.add(planes, 3, 2, 2);
  const int d = maps.add(planes, 2, 1, 3), e = maps.add(planes, 14, 12, 4);
  const int f = maps.add(planes, 5, 11, 5), g = maps.add(planes, 13, 9, 6);
  const int base = maps.add(planes, 13, 9, 7), out = maps.add(planes, 13, 9, 8);
  const int in_place = maps.add(planes, 5, 11, 9);

  run_both(maps, n, c,
           {{out, base, {{a, 2}, {b, 5}, {d, 8}, {e, 1}, {f, 3}, {g, 1}}},
            {in_place, in_place, {{e, 1}, {b, 4}, {a, 3}, {d, 7}}}},
           FusionDirection::forward);

  // The adjoint of the same connections: sources gather from the outputs' gradients.
  const int dy = maps.add(planes, 13, 9, 10), dy_wide = maps.add(planes, 5, 11, 11);
  const int da = maps.add(planes, 7, 4, 12), db = maps.add(planes, 3, 2, 13);
  const int dd = maps.add(planes, 2, 1, 14), de = maps.add(planes, 14, 12, 15);
  run_both(maps, n, c,
           {{da, -1, {{dy, 2}, {dy_wide, 3}}},
            {db, db, {{dy, 5}, {dy_wide, 4}}},
            {dd, -1, {{dy, 8}, {dy_wide, 7}}},
            {de, -1, {{dy, 1}, {dy_wide, 1}}}},
           FusionDirection::backward);
}

TEST_CASE("cuda fusion rejects invalid passes") {
  MapSet maps;
  const int source = maps.add(1, 3, 3, 20), out = maps.add(1, 9, 8, 21);
  const FusionPass pass = make_pass(maps, 1, 1, {{out, -1, {{source, 2}}}}, true);
  CHECK_THROWS_AS(cuda::fusion_forward(pass, nullptr), Error);  // (3 + 1) * 2 < 9 rows
  CHECK_NOTHROW(cuda::fusion_backward(pass, nullptr));
  const FusionPass aliased = make_pass(maps, 1, 1, {{out, -1, {{out, 1}}}}, true);
  CHECK_THROWS_AS(cuda::fusion_forward(aliased, nullptr), Error);
  CHECK_THROWS_AS(cuda::fusion_forward(FusionPass{}, nullptr), Error);
}

}  // namespace
}  // namespace dsn
