// Side-output fusion on the CPU (kernels/fusion.h): sums of score maps after Caffe's bilinear
// upsampling and a top-left crop, and the adjoint gather. Each output element is computed on
// its own from the source maps' taps (at most 4 per term forward, 4 f^2 backward), so no
// upsampled map is materialised as the transposed-convolution layers do. The taps are
// accumulated with std::fma in a fixed order, the same as in the CUDA twin, so both give
// identical bits. Rows of an output are independent OpenMP work units.
#include "kernels/fusion.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/blas.h"

namespace dsn {
namespace {

// A byte range [begin, end) of one map, for the aliasing checks.
struct MapRange {
  std::uintptr_t begin = 0, end = 0;

  bool overlaps(const MapRange& other) const { return begin < other.end && other.begin < end; }
  bool operator==(const MapRange& other) const = default;
};

MapRange map_range(const void* map, std::int64_t elements) {
  const auto begin = reinterpret_cast<std::uintptr_t>(map);
  return {begin, begin + static_cast<std::uintptr_t>(elements) * sizeof(float)};
}

// Rows (or columns) that up_f of a map of `size` rows provides before cropping.
std::int64_t upsampled_size(std::int64_t size, std::int64_t factor) {
  return factor == 1 ? size : (size + 1) * factor;
}

void validate_term(const FusionTerm& term, const FusionOutput& output, int o, int t,
                   FusionDirection direction) {
  DSN_CHECK(term.map != nullptr, "fusion: output {} term {} has a null map", o, t);
  DSN_CHECK(term.h > 0 && term.w > 0, "fusion: output {} term {} has an empty map {}x{}", o, t,
            term.h, term.w);
  DSN_CHECK(term.factor >= 1 && term.factor <= kFusionMaxFactor,
            "fusion: output {} term {} has factor {}, expected 1 to {}", o, t, term.factor,
            kFusionMaxFactor);
  if (direction == FusionDirection::forward) {
    DSN_CHECK(upsampled_size(term.h, term.factor) >= output.h &&
                  upsampled_size(term.w, term.factor) >= output.w,
              "fusion: output {} term {}: a {}x{} map upsampled by {} does not cover the {}x{} "
              "output; use a larger factor or a larger map",
              o, t, term.h, term.w, term.factor, output.h, output.w);
  } else {
    DSN_CHECK(upsampled_size(output.h, term.factor) >= term.h &&
                  upsampled_size(output.w, term.factor) >= term.w,
              "fusion backward: output {} term {}: a {}x{} source upsampled by {} does not cover "
              "the {}x{} gradient it fed",
              o, t, output.h, output.w, term.factor, term.h, term.w);
  }
}

// Checks that no output overlaps another output, another output's base or any term map, and
// that each base either is its output or lies apart from it.
void validate_aliasing(const FusionPass& pass) {
  const std::int64_t planes = pass.n * pass.c;
  for (int o = 0; o < pass.outputs; ++o) {
    const FusionOutput& output = pass.output[o];
    const MapRange out = map_range(output.out, planes * output.h * output.w);
    if (output.base != nullptr) {
      const MapRange base = map_range(output.base, planes * output.h * output.w);
      DSN_CHECK(base == out || !base.overlaps(out),
                "fusion: the base of output {} partly overlaps the output; pass the output "
                "itself or a separate buffer",
                o);
    }
    for (int other = 0; other < pass.outputs; ++other) {
      const FusionOutput& second = pass.output[other];
      const std::int64_t elements = planes * second.h * second.w;
      if (other != o) {
        DSN_CHECK(!out.overlaps(map_range(second.out, elements)),
                  "fusion: outputs {} and {} overlap", o, other);
        DSN_CHECK(second.base == nullptr || !out.overlaps(map_range(second.base, elements)),
                  "fusion: output {} overlaps the base of output {}", o, other);
      }
      for (int t = 0; t < second.terms; ++t) {
        const FusionTerm& term = second.term[t];
        DSN_CHECK(!out.overlaps(map_range(term.map, planes * term.h * term.w)),
                  "fusion: output {} overlaps term {} of output {}; outputs that read each "
                  "other belong to separate passes",
                  o, t, other);
      }
    }
  }
}

}  // namespace

void validate(const FusionPass& pass, FusionDirection direction) {
  DSN_CHECK(pass.n > 0 && pass.c > 0, "fusion: n = {} and c = {} must be positive", pass.n, pass.c);
  DSN_CHECK(pass.outputs >= 1 && pass.outputs <= kFusionMaxOutputs,
            "fusion: {} outputs in one pass, expected 1 to {}", pass.outputs, kFusionMaxOutputs);
  for (int o = 0; o < pass.outputs; ++o) {
    const FusionOutput& output = pass.output[o];
    DSN_CHECK(output.out != nullptr, "fusion: output {} has a null out pointer", o);
    DSN_CHECK(output.h > 0 && output.w > 0, "fusion: output {} has an empty size {}x{}", o,
              output.h, output.w);
    DSN_CHECK(output.terms >= 0 && output.terms <= kFusionMaxTerms,
              "fusion: output {} has {} terms, expected 0 to {}", o, output.terms, kFusionMaxTerms);
    for (int t = 0; t < output.terms; ++t) validate_term(output.term[t], output, o, t, direction);
  }
  validate_aliasing(pass);
}

float bilinear_tap_weight(std::int64_t factor, std::int64_t a, std::int64_t b) {
  DSN_CHECK(factor >= 1 && a >= 0 && a < 2 * factor && b >= 0 && b < 2 * factor,
            "bilinear_tap_weight: tap ({}, {}) lies outside the {}x{} kernel of factor {}", a, b,
            2 * factor, 2 * factor, factor);
  const double center = static_cast<double>(2 * factor - 1 - factor % 2) / (2.0 * factor);
  const double weight_a = 1.0 - std::abs(static_cast<double>(a) / factor - center);
  const double weight_b = 1.0 - std::abs(static_cast<double>(b) / factor - center);
  return static_cast<float>(weight_a * weight_b);
}

namespace cpu {
namespace {

// Returns the (2f, 2f) tap weights of a term in row-major order, or {1} for factor 1.
std::vector<float> tap_weights(std::int64_t factor) {
  if (factor == 1) return {1.0f};
  const std::int64_t kernel = 2 * factor;
  std::vector<float> weights(static_cast<std::size_t>(kernel * kernel));
  for (std::int64_t a = 0; a < kernel; ++a) {
    for (std::int64_t b = 0; b < kernel; ++b) {
      weights[static_cast<std::size_t>(a * kernel + b)] = bilinear_tap_weight(factor, a, b);
    }
  }
  return weights;
}

// Returns acc plus element (y, x) of crop(up_f(map)) for one plane of the term.
float add_upsampled(const FusionTerm& term, const float* weights, std::int64_t plane,
                    std::int64_t y, std::int64_t x, float acc) {
  const float* map = term.map + plane * term.h * term.w;
  const std::int64_t f = term.factor;
  if (f == 1) return acc + map[y * term.w + x];
  // Source rows i with tap a = y - i f in [0, 2f): i = y / f (a < f) and i = y / f - 1.
  for (std::int64_t i = y / f - 1; i <= y / f; ++i) {
    if (i < 0 || i >= term.h) continue;
    for (std::int64_t j = x / f - 1; j <= x / f; ++j) {
      if (j < 0 || j >= term.w) continue;
      const float weight = weights[(y - i * f) * 2 * f + (x - j * f)];
      acc = std::fma(map[i * term.w + j], weight, acc);
    }
  }
  return acc;
}

// Returns acc plus element (i, j) of up_f^T(crop^T(map)): the map's values in the 2f x 2f
// footprint of source pixel (i, j) that lie inside the map, times their tap weights.
float add_gathered(const FusionTerm& term, const float* weights, std::int64_t plane, std::int64_t i,
                   std::int64_t j, float acc) {
  const float* map = term.map + plane * term.h * term.w;
  const std::int64_t f = term.factor;
  if (f == 1) return i < term.h && j < term.w ? acc + map[i * term.w + j] : acc;
  for (std::int64_t a = 0; a < 2 * f && i * f + a < term.h; ++a) {
    for (std::int64_t b = 0; b < 2 * f && j * f + b < term.w; ++b) {
      acc = std::fma(map[(i * f + a) * term.w + j * f + b], weights[a * 2 * f + b], acc);
    }
  }
  return acc;
}

// Runs add_term(term, weights, plane, y, x, acc) for every element of every output.
template <typename AddTerm>
void run_pass(const FusionPass& pass, AddTerm add_term) {
  const std::int64_t planes = pass.n * pass.c;
  for (int o = 0; o < pass.outputs; ++o) {
    const FusionOutput& output = pass.output[o];
    std::vector<std::vector<float>> weights;
    for (int t = 0; t < output.terms; ++t) weights.push_back(tap_weights(output.term[t].factor));

    const std::int64_t rows = planes * output.h;
#pragma omp parallel for schedule(static) if (rows * output.w >= detail::kParallelMinElements)
    for (std::int64_t row = 0; row < rows; ++row) {
      const std::int64_t plane = row / output.h, y = row % output.h;
      for (std::int64_t x = 0; x < output.w; ++x) {
        const std::int64_t index = row * output.w + x;
        float acc = output.base != nullptr ? output.base[index] : 0.0f;
        for (int t = 0; t < output.terms; ++t) {
          acc = add_term(output.term[t], weights[static_cast<std::size_t>(t)].data(), plane, y, x,
                         acc);
        }
        output.out[index] = acc;
      }
    }
  }
}

}  // namespace

void fusion_forward(const FusionPass& pass) {
  validate(pass, FusionDirection::forward);
  run_pass(pass, add_upsampled);
}

void fusion_backward(const FusionPass& pass) {
  validate(pass, FusionDirection::backward);
  run_pass(pass, add_gathered);
}

}  // namespace cpu
}  // namespace dsn
