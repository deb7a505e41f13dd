// The FusionPass sequence (kernels/fusion.h) of a deeply supervised network's side outputs,
// built from its SideGraph (bench/layer_shapes.h) over caller-owned maps, host or device.
//
// The forward runs one pass per level of the short connections, then one for the fused map. A
// side's level is one more than the highest level of its sources. A side without sources has
// level 0 and needs no pass, because R(m) = A(m). The backward groups every side by the same rule
// over the sides it feeds, so that each pass needs only the fused map's gradient and gradients
// of earlier passes. DSN-VGG-Face gives refine4_3, refine2_1 and fuse forward, and grad2_1,
// grad4_3 and grad6_5 backward.
//
// Header-only, for the benchmarks and for tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/layer_shapes.h"
#include "engine/error.h"
#include "kernels/fusion.h"

namespace dsn::bench {

// The maps of every side, indexed by side number (index 0 unused), each (N, 1, size, size), and
// the fused map and its gradient (N, 1, fused_size, fused_size).
struct FusionMapPointers {
  std::vector<const float*> score;         // A(m)
  std::vector<float*> refined;             // R(m)
  std::vector<float*> refined_grad;        // dR(m)
  std::vector<const float*> head_grad;     // gradient of R(m) from side m's classifier
  float* fused = nullptr;
  const float* fused_grad = nullptr;
};

// Sides whose refined maps have `side` as a source (the sides it feeds), in graph order.
inline std::vector<int> fusion_consumers(const SideGraph& graph, int side) {
  std::vector<int> result;
  for (const SideOutputShape& s : graph.sides) {
    if (std::find(s.sources.begin(), s.sources.end(), side) != s.sources.end()) {
      result.push_back(s.side);
    }
  }
  return result;
}

// The sides whose maps each refinement or gradient pass computes, in the order the passes run
// (the forward fused-map pass is not included). graph.sides lists the deepest side first, so
// every source comes before the sides it feeds.
inline std::vector<std::vector<int>> fusion_pass_sides(const SideGraph& graph, bool backward) {
  std::map<int, int> level;
  const auto assign = [&](const SideOutputShape& s) {
    const std::vector<int> inputs = backward ? fusion_consumers(graph, s.side) : s.sources;
    int value = 0;
    for (int input : inputs) value = std::max(value, level.at(input) + 1);
    level[s.side] = value;
  };
  if (backward) {
    std::for_each(graph.sides.rbegin(), graph.sides.rend(), assign);
  } else {
    std::for_each(graph.sides.begin(), graph.sides.end(), assign);
  }

  std::vector<std::vector<int>> groups;
  const int first_level = backward ? 0 : 1;
  for (const SideOutputShape& s : graph.sides) {
    const int group = level.at(s.side) - first_level;
    if (group < 0) continue;
    if (groups.size() <= std::size_t(group)) groups.resize(std::size_t(group) + 1);
    groups[std::size_t(group)].push_back(s.side);
  }
  return groups;
}

// Pass names: "refine" or "grad" followed by the sides joined with '_', and "fuse".
inline std::vector<std::string> fusion_pass_names(const SideGraph& graph, bool backward) {
  std::vector<std::string> names;
  for (const std::vector<int>& group : fusion_pass_sides(graph, backward)) {
    std::string name = backward ? "grad" : "refine";
    for (std::size_t i = 0; i < group.size(); ++i) {
      if (i > 0) name += '_';
      name += std::to_string(group[i]);
    }
    names.push_back(name);
  }
  if (!backward) names.push_back("fuse");
  return names;
}

// Pass `index` of the forward or backward sequence, in the order of fusion_pass_names().
inline FusionPass make_fusion_pass(const SideGraph& graph, std::int64_t batch,
                                   const FusionMapPointers& maps, bool backward, int index) {
  const std::vector<std::vector<int>> groups = fusion_pass_sides(graph, backward);
  FusionPass pass;
  pass.n = batch;
  pass.c = 1;
  const auto add_term = [](FusionOutput& output, const float* map, std::int64_t size,
                           std::int64_t factor) {
    DSN_CHECK(output.terms < kFusionMaxTerms, "fusion pass: more than {} terms", kFusionMaxTerms);
    output.term[output.terms++] = FusionTerm{map, size, size, factor};
  };
  const auto at = [](const auto& pointers, int side) { return pointers.at(std::size_t(side)); };

  if (!backward && index == int(groups.size())) {
    // The fused map: the sum of every refined map brought to stride 1 and cropped.
    FusionOutput& output = pass.output[pass.outputs++];
    output.out = maps.fused;
    output.h = output.w = graph.fused_size;
    for (const SideOutputShape& s : graph.sides) {
      add_term(output, at(maps.refined, s.side), s.size, s.stride);
    }
    return pass;
  }
  DSN_CHECK(index >= 0 && index < int(groups.size()), "fusion pass {} does not exist", index);
  for (int side : groups[std::size_t(index)]) {
    const SideOutputShape& s = graph.side(side);
    DSN_CHECK(pass.outputs < kFusionMaxOutputs, "fusion pass: more than {} outputs",
              kFusionMaxOutputs);
    FusionOutput& output = pass.output[pass.outputs++];
    output.h = output.w = s.size;
    if (backward) {
      // dR(m) = the side head's gradient + the adjoints of the fused map and of every R(c) fed.
      output.out = at(maps.refined_grad, side);
      output.base = at(maps.head_grad, side);
      add_term(output, maps.fused_grad, graph.fused_size, s.stride);
      for (int consumer : fusion_consumers(graph, side)) {
        const SideOutputShape& c = graph.side(consumer);
        add_term(output, at(maps.refined_grad, consumer), c.size, s.stride / c.stride);
      }
    } else {
      // R(m) = A(m) + the upsampled refined maps of its sources.
      output.out = at(maps.refined, side);
      output.base = at(maps.score, side);
      for (int source : s.sources) {
        const SideOutputShape& from = graph.side(source);
        add_term(output, at(maps.refined, source), from.size, from.stride / s.stride);
      }
    }
  }
  return pass;
}

// Bytes of the maps a pass reads (bases and term maps, each once) and writes.
inline double fusion_pass_bytes(const FusionPass& pass) {
  double elements = 0.0;
  for (int i = 0; i < pass.outputs; ++i) {
    const FusionOutput& output = pass.output[i];
    const double plane = double(output.h * output.w);
    elements += output.base != nullptr ? 2.0 * plane : plane;
    for (int t = 0; t < output.terms; ++t) {
      elements += double(output.term[t].h * output.term[t].w);
    }
  }
  return double(sizeof(float)) * double(pass.n * pass.c) * elements;
}

}  // namespace dsn::bench
