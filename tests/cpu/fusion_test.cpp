// CPU side-output fusion against hand-computed bilinear weights and a double-precision
// composition of the references in tests/support/reference.h. The forward reference is a
// transposed convolution with Caffe's bilinear kernel, a crop and a sum. The adjoint is a
// strided convolution of the zero-padded gradient, and central differences of the forward check
// it too. The whole short-connection and fusion graph of DSN-VGG-Face runs at small, odd and
// full input sizes.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "kernels/fusion.h"
#include "tests/cpu/tolerance.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::kGradient;

// --- References ---------------------------------------------------------------------------

// The (1, 1, 2f, 2f) deconvolution kernel that Caffe's bilinear filler writes, in the filler's
// own loop form: element i has x = i % K and y = i / K, weight (1 - |x / f - c|)(1 - |y / f - c|)
// with f = ceil(K / 2) and c = (2f - 1 - f % 2) / (2f), evaluated in double and stored as float.
Vec bilinear_kernel(std::int64_t factor) {
  const std::int64_t size = 2 * factor;
  const std::int64_t f = (size + 1) / 2;
  const double c = static_cast<double>(2 * f - 1 - f % 2) / (2.0 * f);
  Vec kernel(static_cast<std::size_t>(size * size));
  for (std::int64_t i = 0; i < size * size; ++i) {
    const double x = static_cast<double>(i % size), y = static_cast<double>(i / size);
    const double value = (1.0 - std::abs(y / f - c)) * (1.0 - std::abs(x / f - c));
    kernel[static_cast<std::size_t>(i)] = static_cast<float>(value);
  }
  return kernel;
}

// crop_{out_h x out_w}(up_f(map)) for `planes` planes of an h x w map.
Vec upsample_crop(std::int64_t planes, const Vec& map, std::int64_t h, std::int64_t w,
                  std::int64_t factor, std::int64_t out_h, std::int64_t out_w) {
  Vec upsampled = map;
  std::int64_t up_h = h, up_w = w;
  if (factor > 1) {
    ref::TransposedConv t;
    t.n = planes;
    t.h_in = h;
    t.w_in = w;
    t.r = t.s = 2 * factor;
    t.stride_h = t.stride_w = factor;
    upsampled = ref::conv_transpose2d(t, map, bilinear_kernel(factor));
    up_h = t.h_out();
    up_w = t.w_out();
  }
  CropShape crop;
  crop.n = planes;
  crop.h = up_h;
  crop.w = up_w;
  crop.out_h = out_h;
  crop.out_w = out_w;
  return ref::crop(crop, upsampled);
}

// The adjoint of upsample_crop: the h x w source gradient of an out_h x out_w gradient dy.
// Zero-padding dy to the uncropped (h + 1) f size undoes the crop, and the transposed
// convolution's adjoint is the stride-f convolution with the same kernel.
Vec gather(std::int64_t planes, const Vec& dy, std::int64_t out_h, std::int64_t out_w,
           std::int64_t factor, std::int64_t h, std::int64_t w) {
  const std::int64_t up_h = factor > 1 ? (h + 1) * factor : h;
  const std::int64_t up_w = factor > 1 ? (w + 1) * factor : w;
  Vec padded(static_cast<std::size_t>(planes * up_h * up_w), 0.0);
  for (std::int64_t p = 0; p < planes; ++p)
    for (std::int64_t y = 0; y < out_h; ++y)
      for (std::int64_t x = 0; x < out_w; ++x) {
        padded[(p * up_h + y) * up_w + x] = dy[(p * out_h + y) * out_w + x];
      }
  if (factor == 1) {
    CropShape crop;
    crop.n = planes;
    crop.h = up_h;
    crop.w = up_w;
    crop.out_h = h;
    crop.out_w = w;
    return ref::crop(crop, padded);
  }
  Conv2dShape conv;
  conv.n = planes;
  conv.h = up_h;
  conv.w = up_w;
  conv.r = conv.s = 2 * factor;
  conv.stride_h = conv.stride_w = factor;
  return ref::conv2d_forward(conv, padded, bilinear_kernel(factor), {}, false);
}

Vec absolute(const Vec& values) {
  Vec result(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) result[i] = std::abs(values[i]);
  return result;
}

Vec absolute(const std::vector<float>& values) {
  return absolute(ref::to_double(values));
}

void add_to(Vec& total, const Vec& term) {
  for (std::size_t i = 0; i < total.size(); ++i) total[i] += term[i];
}

// Checks |got - expected| <= 2 K 2^-24 magnitude element by element: the worst-case rounding of
// a float sum of K terms (fused multiply-adds of exact float weights) whose absolute values sum
// to `magnitude`. Reports the worst element on failure.
void check_rounding_bound(const std::vector<float>& got, const Vec& expected, const Vec& magnitude,
                          std::int64_t terms) {
  REQUIRE(got.size() == expected.size());
  const double unit = std::ldexp(1.0, -24);
  std::size_t failures = 0, worst = 0;
  double worst_ratio = -1.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double error = std::abs(static_cast<double>(got[i]) - expected[i]);
    const double allowed = 2.0 * static_cast<double>(terms) * unit * magnitude[i];
    if (!(error <= allowed)) ++failures;
    const double ratio = std::isnan(error) ? INFINITY : error / (allowed + 1e-300);
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  CHECK_MESSAGE(failures == 0,
                fmt::format("{} of {} elements outside 2 K 2^-24 sum|terms| (K = {}); worst at {}: "
                            "got {:.9g}, expected {:.9g}, magnitude {:.3g}",
                            failures, got.size(), terms, worst, got[worst], expected[worst],
                            magnitude[worst]));
}

// --- Pass construction --------------------------------------------------------------------

// A map of `planes` planes of h x w floats on the host.
struct Map {
  std::int64_t h = 0, w = 0;
  std::vector<float> values;
};

struct TermSpec {
  const Map* map;
  std::int64_t factor;
};

FusionOutput make_output(Map& out, const std::vector<float>* base,
                         const std::vector<TermSpec>& terms) {
  FusionOutput output;
  output.out = out.values.data();
  output.base = base != nullptr ? base->data() : nullptr;
  output.h = out.h;
  output.w = out.w;
  output.terms = static_cast<int>(terms.size());
  for (std::size_t t = 0; t < terms.size(); ++t) {
    output.term[t] = {terms[t].map->values.data(), terms[t].map->h, terms[t].map->w,
                      terms[t].factor};
  }
  return output;
}

Map random_map(std::int64_t planes, std::int64_t h, std::int64_t w, std::uint32_t seed) {
  return {h, w, ref::random_uniform(static_cast<std::size_t>(planes * h * w), -1.0f, 1.0f, seed)};
}

// Forward reference of one output, and the sum of the absolute values of its terms.
std::pair<Vec, Vec> forward_reference(std::int64_t planes, const FusionOutput& output) {
  const std::size_t count = static_cast<std::size_t>(planes * output.h * output.w);
  Vec value(count, 0.0), magnitude(count, 0.0);
  if (output.base != nullptr) {
    const std::vector<float> base(output.base, output.base + count);
    value = ref::to_double(base);
    magnitude = absolute(base);
  }
  for (int t = 0; t < output.terms; ++t) {
    const FusionTerm& term = output.term[t];
    const std::vector<float> map(term.map, term.map + planes * term.h * term.w);
    add_to(value, upsample_crop(planes, ref::to_double(map), term.h, term.w, term.factor, output.h,
                                output.w));
    add_to(magnitude,
           upsample_crop(planes, absolute(map), term.h, term.w, term.factor, output.h, output.w));
  }
  return {value, magnitude};
}

std::pair<Vec, Vec> backward_reference(std::int64_t planes, const FusionOutput& output) {
  const std::size_t count = static_cast<std::size_t>(planes * output.h * output.w);
  Vec value(count, 0.0), magnitude(count, 0.0);
  if (output.base != nullptr) {
    const std::vector<float> base(output.base, output.base + count);
    value = ref::to_double(base);
    magnitude = absolute(base);
  }
  for (int t = 0; t < output.terms; ++t) {
    const FusionTerm& term = output.term[t];
    const std::vector<float> map(term.map, term.map + planes * term.h * term.w);
    add_to(value,
           gather(planes, ref::to_double(map), term.h, term.w, term.factor, output.h, output.w));
    add_to(magnitude,
           gather(planes, absolute(map), term.h, term.w, term.factor, output.h, output.w));
  }
  return {value, magnitude};
}

// Upper bound on the number of rounded operations that one element of `output` sums.
std::int64_t term_count(const FusionOutput& output, FusionDirection direction) {
  std::int64_t count = 1;
  for (int t = 0; t < output.terms; ++t) {
    const std::int64_t f = output.term[t].factor;
    count += f == 1 ? 1 : (direction == FusionDirection::forward ? 4 : 4 * f * f);
  }
  return count;
}

// Runs the CPU pass and checks every output against the double reference.
void check_pass(const FusionPass& pass, FusionDirection direction) {
  const std::int64_t planes = pass.n * pass.c;
  std::vector<std::pair<Vec, Vec>> references;
  for (int o = 0; o < pass.outputs; ++o) {
    references.push_back(direction == FusionDirection::forward
                             ? forward_reference(planes, pass.output[o])
                             : backward_reference(planes, pass.output[o]));
  }
  if (direction == FusionDirection::forward) {
    cpu::fusion_forward(pass);
  } else {
    cpu::fusion_backward(pass);
  }
  for (int o = 0; o < pass.outputs; ++o) {
    CAPTURE(o);
    const FusionOutput& output = pass.output[o];
    const std::vector<float> got(output.out, output.out + planes * output.h * output.w);
    check_rounding_bound(got, references[static_cast<std::size_t>(o)].first,
                         references[static_cast<std::size_t>(o)].second,
                         term_count(output, direction));
  }
}

// --- The DSN-VGG-Face graph (paper preset) --------------------------------------------------

// Score-map sizes of sides 1..6 for a square input (index 0 is the input itself). conv1_1 pads
// by 5, which makes side 1 8 pixels larger than the input. Then come 2x2/s2 pools, two
// 3x3/s2/p1 pools and side 6's 3x3/s1/p1 average pool, all with Caffe's ceil rounding.
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

// Sources of each target (0: the fused map) with their factors, one list per forward pass.
struct GraphOutput {
  int target;
  std::vector<std::pair<int, std::int64_t>> sources;
};
const std::vector<std::vector<GraphOutput>> kForwardPasses = {
    {{4, {{6, 4}, {5, 2}}}, {3, {{6, 8}, {5, 4}}}},
    {{2, {{6, 16}, {5, 8}, {4, 4}, {3, 2}}}, {1, {{6, 32}, {5, 16}, {4, 8}, {3, 4}}}},
    {{0, {{1, 1}, {2, 2}, {3, 4}, {4, 8}, {5, 16}, {6, 32}}}},
};
// Backward passes by source side. Each source gathers from every target that its map fed.
const std::vector<std::vector<int>> kBackwardPasses = {{1, 2}, {3, 4}, {5, 6}};

TEST_CASE("fusion tap weights match hand-computed filler values") {
  // f = 2: c = 3/4, w(a) = 1 - |a / 2 - 3/4| = 1/4, 3/4, 3/4, 1/4.
  const double even[] = {0.25, 0.75, 0.75, 0.25};
  for (std::int64_t a = 0; a < 4; ++a)
    for (std::int64_t b = 0; b < 4; ++b) {
      CHECK(bilinear_tap_weight(2, a, b) == static_cast<float>(even[a] * even[b]));
    }
  // f = 3: c = 2/3, w(a) = 1 - |a / 3 - 2/3| = 1/3, 2/3, 1, 2/3, 1/3, 0.
  const double odd[] = {1.0 / 3, 2.0 / 3, 1.0, 2.0 / 3, 1.0 / 3, 0.0};
  for (std::int64_t a = 0; a < 6; ++a)
    for (std::int64_t b = 0; b < 6; ++b) {
      CHECK(bilinear_tap_weight(3, a, b) == doctest::Approx(odd[a] * odd[b]).epsilon(1e-6));
    }
  // f = 1: the 2 x 2 kernel of K = 2 is the identity tap.
  CHECK(bilinear_tap_weight(1, 0, 0) == 1.0f);
  CHECK(bilinear_tap_weight(1, 0, 1) == 0.0f);
  CHECK(bilinear_tap_weight(1, 1, 1) == 0.0f);
  CHECK_THROWS_AS(bilinear_tap_weight(2, 4, 0), Error);
}

TEST_CASE("fusion forward of an impulse is the bilinear kernel") {
  for (const std::int64_t factor : {2, 3, 4, 8, 32}) {
    CAPTURE(factor);
    const std::int64_t size = 2 * factor;
    Map impulse{1, 1, {1.0f}};
    Map out{size, size, std::vector<float>(static_cast<std::size_t>(size * size), -7.0f)};
    FusionPass pass;
    pass.outputs = 1;
    pass.output[0] = make_output(out, nullptr, {{&impulse, factor}});
    cpu::fusion_forward(pass);
    const Vec kernel = bilinear_kernel(factor);
    for (std::int64_t i = 0; i < size * size; ++i) {
      CAPTURE(i);
      CHECK(out.values[static_cast<std::size_t>(i)] == kernel[static_cast<std::size_t>(i)]);
    }
  }
}

TEST_CASE("fusion forward matches transposed conv, crop and add") {
  // Rectangular outputs, factors 1 to 8 (3 and 5 odd), upsampled maps larger than the output
  // on both axes, two channels and batch 3, with and without a base.
  const std::int64_t n = 3, c = 2, planes = n * c;
  Map first = random_map(planes, 13, 9, 1), second = random_map(planes, 5, 11, 2);
  Map a = random_map(planes, 7, 4, 3), b = random_map(planes, 3, 2, 4);
  Map d = random_map(planes, 2, 1, 5), e = random_map(planes, 14, 12, 6);
  const std::vector<float> base = ref::random_uniform(planes * 13 * 9, -1.0f, 1.0f, 7);
  Map with_base = random_map(planes, 13, 9, 8), without_base = random_map(planes, 5, 11, 9);

  FusionPass pass;
  pass.n = n;
  pass.c = c;
  pass.outputs = 2;
  pass.output[0] = make_output(with_base, &base,
                               {{&a, 2}, {&b, 5}, {&d, 8}, {&e, 1}, {&second, 3}, {&first, 1}});
  pass.output[1] = make_output(without_base, nullptr, {{&e, 1}, {&b, 4}, {&a, 3}});
  check_pass(pass, FusionDirection::forward);
}

TEST_CASE("fusion forward with no terms copies the base") {
  const std::vector<float> base = ref::random_uniform(2 * 5 * 3, -1.0f, 1.0f, 20);
  Map out{5, 3, std::vector<float>(base.size(), 0.0f)};
  FusionPass pass;
  pass.n = 2;
  pass.outputs = 1;
  pass.output[0] = make_output(out, &base, {});
  cpu::fusion_forward(pass);
  CHECK(out.values == base);
}

TEST_CASE("fusion backward matches finite differences") {
  // Forward: a 7 x 5 output from four sources of factors 2, 3, 1 and 4.
  const std::int64_t n = 2, planes = n;
  const std::int64_t out_h = 7, out_w = 5;
  const std::vector<std::array<std::int64_t, 3>> sources = {
      {3, 2, 2}, {2, 2, 3}, {9, 6, 1}, {1, 1, 4}};
  const std::vector<float> dy = ref::random_uniform(planes * out_h * out_w, -1.0f, 1.0f, 30);
  Map dy_map{out_h, out_w, dy};

  std::vector<Map> source_grads;
  std::vector<std::int64_t> offsets;
  std::int64_t total = 0;
  for (const auto& [h, w, factor] : sources) {
    source_grads.push_back({h, w, std::vector<float>(planes * h * w, 5.0f)});
    offsets.push_back(total);
    total += planes * h * w;
  }
  FusionPass pass;
  pass.n = n;
  pass.outputs = static_cast<int>(sources.size());
  for (std::size_t s = 0; s < sources.size(); ++s) {
    pass.output[s] = make_output(source_grads[s], nullptr, {{&dy_map, sources[s][2]}});
  }
  cpu::fusion_backward(pass);

  // f(all sources) = dy . forward(sources) in double.
  const Vec dy_d = ref::to_double(dy);
  const auto forward = [&](const Vec& x) {
    Vec y(static_cast<std::size_t>(planes * out_h * out_w), 0.0);
    for (std::size_t s = 0; s < sources.size(); ++s) {
      const auto& [h, w, factor] = sources[s];
      const Vec map(x.begin() + offsets[s], x.begin() + offsets[s] + planes * h * w);
      add_to(y, upsample_crop(planes, map, h, w, factor, out_h, out_w));
    }
    return ref::dot(dy_d, y);
  };
  const Vec x = ref::to_double(ref::random_uniform(total, -1.0f, 1.0f, 31));
  const Vec numeric = ref::numeric_gradient(forward, x);
  for (std::size_t s = 0; s < sources.size(); ++s) {
    CAPTURE(s);
    const Vec expected(numeric.begin() + offsets[s],
                       numeric.begin() + offsets[s] + planes * sources[s][0] * sources[s][1]);
    DSN_CHECK_CLOSE(source_grads[s].values, expected, kGradient);
  }
}

TEST_CASE("fusion backward adds the base, in place too") {
  const std::int64_t planes = 3;
  Map dy = random_map(planes, 9, 10, 40);
  const std::vector<float> base = ref::random_uniform(planes * 4 * 5, -1.0f, 1.0f, 41);
  Map separate{4, 5, std::vector<float>(base.size(), 0.0f)};
  Map in_place{4, 5, base};
  FusionPass pass;
  pass.n = planes;
  pass.outputs = 2;
  pass.output[0] = make_output(separate, &base, {{&dy, 2}, {&dy, 3}});
  pass.output[1] = make_output(in_place, &in_place.values, {{&dy, 2}, {&dy, 3}});
  check_pass(pass, FusionDirection::backward);
  CHECK(separate.values == in_place.values);
}

TEST_CASE("fusion passes reproduce the DSN-VGG-Face graph") {
  // 64 is the small test configuration (side maps 72, 36, 18, 9, 5, 3), 37 an odd input size
  // and 224 the network's real input.
  for (const std::int64_t input : {64, 37, 224}) {
    CAPTURE(input);
    const std::int64_t n = input == 224 ? 1 : 2, planes = n;
    const std::array<std::int64_t, 7> size = side_sizes(input);
    if (input == 64) {
      CHECK(size == std::array<std::int64_t, 7>{64, 72, 36, 18, 9, 5, 3});
    }
    if (input == 224) {
      CHECK(size == std::array<std::int64_t, 7>{224, 232, 116, 58, 29, 15, 8});
    }

    // Score maps A(m) and head gradients. R(5) = A(5) and R(6) = A(6).
    std::array<std::vector<float>, 7> scores, head_grads;
    std::array<Map, 7> refined, refined_grads;
    for (int m = 0; m <= 6; ++m) {
      const std::size_t count = static_cast<std::size_t>(planes * size[m] * size[m]);
      scores[m] = ref::random_uniform(count, -1.0f, 1.0f, 100 + m);
      head_grads[m] = ref::random_uniform(count, -1.0f, 1.0f, 200 + m);
      refined[m] = {size[m], size[m], m >= 5 ? scores[m] : std::vector<float>(count, 9.0f)};
      refined_grads[m] = {size[m], size[m], std::vector<float>(count, 9.0f)};
    }

    for (const auto& outputs : kForwardPasses) {
      FusionPass pass;
      pass.n = n;
      pass.outputs = static_cast<int>(outputs.size());
      for (std::size_t o = 0; o < outputs.size(); ++o) {
        const int target = outputs[o].target;
        std::vector<TermSpec> terms;
        for (const auto& [source, factor] : outputs[o].sources) {
          terms.push_back({&refined[source], factor});
        }
        pass.output[o] =
            make_output(refined[target], target == 0 ? nullptr : &scores[target], terms);
      }
      check_pass(pass, FusionDirection::forward);
    }

    // dF is the fused head's gradient, and every other dR(m) starts from its side head's gradient.
    refined_grads[0].values = head_grads[0];
    for (const auto& sources : kBackwardPasses) {
      FusionPass pass;
      pass.n = n;
      pass.outputs = static_cast<int>(sources.size());
      for (std::size_t o = 0; o < sources.size(); ++o) {
        const int source = sources[o];
        std::vector<TermSpec> terms;
        for (const auto& outputs : kForwardPasses) {
          for (const GraphOutput& output : outputs) {
            for (const auto& [feeding, factor] : output.sources) {
              if (feeding == source) terms.push_back({&refined_grads[output.target], factor});
            }
          }
        }
        pass.output[o] = make_output(refined_grads[source], &head_grads[source], terms);
      }
      check_pass(pass, FusionDirection::backward);
    }
  }
}

TEST_CASE("fusion validate rejects invalid passes") {
  Map source = random_map(1, 3, 3, 50), other = random_map(1, 3, 3, 51);
  Map out{8, 8, std::vector<float>(64, 0.0f)};
  FusionPass good;
  good.outputs = 1;
  good.output[0] = make_output(out, nullptr, {{&source, 2}});
  CHECK_NOTHROW(validate(good, FusionDirection::forward));

  SUBCASE("upsampled map too small") {
    FusionPass pass = good;
    pass.output[0].h = 9;  // (3 + 1) * 2 = 8 rows
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
  }
  SUBCASE("backward source too small for its gradient") {
    FusionPass pass = good;  // a 8 x 8 source gradient gathering a 3 x 3 map: fine
    CHECK_NOTHROW(validate(pass, FusionDirection::backward));
    pass.output[0].term[0].h = 19;  // (8 + 1) * 2 = 18
    CHECK_THROWS_AS(validate(pass, FusionDirection::backward), Error);
  }
  SUBCASE("crop-only map smaller than the output") {
    FusionPass pass = good;
    pass.output[0].term[0].factor = 1;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
  }
  SUBCASE("factor out of range") {
    FusionPass pass = good;
    pass.output[0].term[0].factor = 0;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
    pass.output[0].term[0].factor = kFusionMaxFactor + 1;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
  }
  SUBCASE("counts out of range") {
    FusionPass pass = good;
    pass.outputs = 0;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
    pass.outputs = kFusionMaxOutputs + 1;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
    pass = good;
    pass.output[0].terms = kFusionMaxTerms + 1;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
    pass = good;
    pass.n = 0;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
  }
  SUBCASE("null pointers") {
    FusionPass pass = good;
    pass.output[0].out = nullptr;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
    pass = good;
    pass.output[0].term[0].map = nullptr;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
  }
  SUBCASE("output overlapping a term map") {
    FusionPass pass = good;
    pass.output[0].term[0].map = out.values.data() + 10;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
  }
  SUBCASE("output overlapping another output or its base") {
    FusionPass pass = good;
    pass.outputs = 2;
    pass.output[1] = make_output(out, nullptr, {{&other, 2}});
    pass.output[1].out = out.values.data() + 63;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
    Map second{8, 8, std::vector<float>(64, 0.0f)};
    pass.output[1].out = second.values.data();
    CHECK_NOTHROW(validate(pass, FusionDirection::forward));
    pass.output[1].base = out.values.data();
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
  }
  SUBCASE("base partly overlapping its output") {
    FusionPass pass = good;
    pass.output[0].base = out.values.data() + 1;
    CHECK_THROWS_AS(validate(pass, FusionDirection::forward), Error);
    pass.output[0].base = out.values.data();
    CHECK_NOTHROW(validate(pass, FusionDirection::forward));
  }
  CHECK_THROWS_AS(cpu::fusion_forward(FusionPass{}), Error);
}

}  // namespace
}  // namespace dsn
