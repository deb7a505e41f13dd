// CPU element-wise kernels against direct formulas and central differences (ReLU), and
// dropout against pinned Philox-4x32-10 values and the mask definition in kernels/philox.h.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/error.h"
#include "kernels/elementwise.h"
#include "kernels/philox.h"
#include "tests/cpu/tolerance.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using ref::Vec;
using test::kExact;
using test::kGradient;

// Above the kernels' OpenMP threshold, so both the serial and the parallel loops run.
constexpr std::int64_t kLarge = 100'003;

TEST_CASE("relu forward and backward") {
  for (const std::int64_t count : {std::int64_t{37}, kLarge}) {
    CAPTURE(count);
    // |x| >= 1e-3 keeps the kink at zero out of reach of the 1e-6 perturbation.
    const std::vector<float> x = ref::random_away_from_zero(count, 1.0f, 1e-3f, 4000);
    const std::vector<float> g = ref::random_uniform(count, -1.0f, 1.0f, 4001);
    std::vector<float> y(count), dx(count, 2.0f);
    cpu::relu_forward(count, x.data(), y.data());
    DSN_CHECK_CLOSE(y, ref::relu(ref::to_double(x)), kExact);

    cpu::relu_backward(count, y.data(), g.data(), dx.data());
    if (count < kLarge) {
      const Vec g_d = ref::to_double(g);
      const Vec numeric = ref::numeric_gradient(
          [&](const Vec& v) { return ref::dot(g_d, ref::relu(v)); }, ref::to_double(x));
      DSN_CHECK_CLOSE(dx, numeric, kGradient);
    } else {
      for (std::int64_t i = 0; i < count; ++i) {
        if (dx[i] != (x[i] > 0.0f ? g[i] : 0.0f)) {
          FAIL("relu_backward at index ", i, ": got ", dx[i], " for x = ", x[i], ", dy = ", g[i]);
        }
      }
    }

    std::vector<float> in_place = x;
    cpu::relu_forward(count, in_place.data(), in_place.data());
    CHECK(in_place == y);
  }
}

TEST_CASE("add accumulate scale fill") {
  for (const std::int64_t count : {std::int64_t{37}, kLarge}) {
    CAPTURE(count);
    const std::vector<float> a = ref::random_uniform(count, -1.0f, 1.0f, 4100);
    const std::vector<float> b = ref::random_uniform(count, -1.0f, 1.0f, 4101);
    Vec sum(count), scaled(count), accumulated(count);
    for (std::int64_t i = 0; i < count; ++i) {
      sum[i] = static_cast<double>(a[i]) + b[i];
      scaled[i] = -2.5 * a[i];
      accumulated[i] = static_cast<double>(b[i]) + a[i];
    }

    std::vector<float> y(count);
    cpu::add(count, a.data(), b.data(), y.data());
    DSN_CHECK_CLOSE(y, sum, kExact);

    cpu::scale(count, -2.5f, a.data(), y.data());
    DSN_CHECK_CLOSE(y, scaled, kExact);

    std::vector<float> target = b;
    cpu::accumulate(count, a.data(), target.data());
    DSN_CHECK_CLOSE(target, accumulated, kExact);

    std::vector<float> in_place = a;
    cpu::add(count, in_place.data(), b.data(), in_place.data());
    DSN_CHECK_CLOSE(in_place, sum, kExact);

    cpu::fill(count, 0.75f, y.data());
    CHECK(y == std::vector<float>(count, 0.75f));
  }
}

TEST_CASE("bias add and backward") {
  struct Size {
    std::int64_t n, c, hw;
  };
  const Size sizes[] = {{3, 5, 7 * 5}, {1, 17, 1}, {2, 3, 128 * 128}};
  std::uint32_t seed = 4500;
  for (const Size size : sizes) {
    CAPTURE(size.n);
    CAPTURE(size.c);
    CAPTURE(size.hw);
    const std::int64_t count = size.n * size.c * size.hw;
    const std::vector<float> y0 = ref::random_uniform(count, -1.0f, 1.0f, ++seed);
    const std::vector<float> bias = ref::random_uniform(size.c, -1.0f, 1.0f, seed + 50);
    const std::vector<float> g = ref::random_uniform(count, -1.0f, 1.0f, seed + 100);
    const Vec y0_d = ref::to_double(y0);

    std::vector<float> y = y0;
    cpu::bias_add(size.n, size.c, size.hw, bias.data(), y.data());
    DSN_CHECK_CLOSE(y, ref::bias_add(size.n, size.c, size.hw, ref::to_double(bias), y0_d), kExact);

    std::vector<float> dbias(size.c, 3.0f);
    cpu::bias_backward(size.n, size.c, size.hw, g.data(), dbias.data());
    const Vec g_d = ref::to_double(g);
    const Vec numeric = ref::numeric_gradient(
        [&](const Vec& v) {
          return ref::dot(g_d, ref::bias_add(size.n, size.c, size.hw, v, y0_d));
        },
        ref::to_double(bias));
    DSN_CHECK_CLOSE(dbias, numeric, kGradient);
  }
}

// --- Philox and dropout ---------------------------------------------------------------------

// Known-answer vectors of Philox-4x32-10 shipped with Random123 (kat_vectors), also reproduced
// by an independent Python implementation of the Salmon et al. (SC 2011) rounds. Each row is
// the counter (4 words), the key (2 words), and the output (4 words).
TEST_CASE("philox4x32_10 reproduces Random123 known answers") {
  struct KnownAnswer {
    std::uint32_t counter[4], key[2], expected[4];
  };
  const KnownAnswer answers[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const KnownAnswer& answer : answers) {
    const Philox4x32 counter{
        {answer.counter[0], answer.counter[1], answer.counter[2], answer.counter[3]}};
    const Philox4x32 out = philox4x32_10(counter, answer.key[0], answer.key[1]);
    for (int word = 0; word < 4; ++word) {
      CAPTURE(word);
      CHECK(out.v[word] == answer.expected[word]);
    }
  }
}

// philox4x32(counter, seed) maps to the 128-bit counter (low, high, 0, 0) and the key (low,
// high). Expected words from the same Python implementation.
TEST_CASE("philox4x32 packs the 64-bit counter and seed") {
  const Philox4x32 zero = philox4x32(0, 0);
  CHECK(zero.v[0] == 0x6627e8d5u);
  CHECK(zero.v[3] == 0x9b00dbd8u);

  const Philox4x32 counter_one = philox4x32(1, 0);
  CHECK(counter_one.v[0] == 0xf8e4cca4u);
  CHECK(counter_one.v[1] == 0x5cb200dbu);
  CHECK(counter_one.v[2] == 0xb1a574ebu);
  CHECK(counter_one.v[3] == 0x097eff67u);

  const Philox4x32 wide = philox4x32(0x123456789abcdef0ull, 0xdeadbeefcafef00dull);
  CHECK(wide.v[0] == 0xdecbb6f2u);
  CHECK(wide.v[1] == 0x60a5f100u);
  CHECK(wide.v[2] == 0x7c3dfab9u);
  CHECK(wide.v[3] == 0x31ae5509u);
}

// Element e = offset + index uses word e % 4 of block e / 4, top 24 bits over 2^24. Expected
// numerators (value * 2^24) from the Python implementation.
TEST_CASE("philox_uniform pinned values") {
  struct Pinned {
    std::uint64_t seed, offset, index;
    std::uint32_t numerator;
  };
  const Pinned values[] = {
      {42, 0, 0, 10283760},
      {42, 0, 1, 7861577},
      {42, 0, 2, 1228624},
      {42, 0, 3, 5718707},
      {42, 0, 4, 16571169},
      {42, 5, 3, 13855746},
      {0xfeedface12345678ull, std::uint64_t{1} << 40, 9, 9316283},
  };
  for (const Pinned& pinned : values) {
    CAPTURE(pinned.seed);
    CAPTURE(pinned.offset);
    CAPTURE(pinned.index);
    CHECK(philox_uniform(pinned.seed, pinned.offset, pinned.index) ==
          static_cast<float>(pinned.numerator) / 16777216.0f);
  }
}

TEST_CASE("dropout keeps elements by the philox mask") {
  const std::int64_t count = kLarge;
  const DropoutParams params{0.3f, 1234, 6};  // offset not a multiple of 4
  const std::vector<float> x = ref::random_away_from_zero(count, 1.0f, 1e-3f, 4200);
  std::vector<float> y(count);
  cpu::dropout(count, params, x.data(), y.data());

  std::int64_t kept_count = 0, mismatches = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    const bool keep = philox_uniform(params.seed, params.offset, i) >= params.p;
    const double expected = keep ? x[i] / (1.0 - params.p) : 0.0;
    if (std::abs(y[i] - expected) > 1e-6 * std::abs(expected)) ++mismatches;
    kept_count += keep ? 1 : 0;
  }
  CHECK(mismatches == 0);
  // Binomial(100003, 0.7): standard deviation 145 elements; 6 standard deviations is 870.
  CHECK(std::abs(static_cast<double>(kept_count) - 0.7 * count) < 870.0);
}

TEST_CASE("dropout backward reuses the forward mask") {
  const std::int64_t count = 1001;
  const DropoutParams params{0.5f, 99, 3};
  const std::vector<float> x = ref::random_away_from_zero(count, 1.0f, 1e-3f, 4300);
  const std::vector<float> dy = ref::random_away_from_zero(count, 1.0f, 1e-3f, 4301);
  std::vector<float> y(count), dx(count);
  cpu::dropout(count, params, x.data(), y.data());
  cpu::dropout(count, params, dy.data(), dx.data());
  for (std::int64_t i = 0; i < count; ++i) {
    CAPTURE(i);
    REQUIRE((y[i] == 0.0f) == (dx[i] == 0.0f));
    if (dx[i] != 0.0f) REQUIRE(std::abs(dx[i] - 2.0 * dy[i]) <= 1e-6 * std::abs(dx[i]));
  }
}

// A call at offset o over n elements draws the same mask as elements [o, o + n) of a call at
// offset 0, which is how the engine splits one stream across tensors.
TEST_CASE("dropout offset continues the stream") {
  const std::int64_t head = 7, count = 50;
  const std::vector<float> ones(head + count, 1.0f);
  std::vector<float> whole(head + count), tail(count);
  cpu::dropout(head + count, DropoutParams{0.4f, 5, 0}, ones.data(), whole.data());
  cpu::dropout(count, DropoutParams{0.4f, 5, head}, ones.data(), tail.data());
  CHECK(std::vector<float>(whole.begin() + head, whole.end()) == tail);
}

TEST_CASE("dropout with p zero copies") {
  const std::vector<float> x = ref::random_uniform(11, -1.0f, 1.0f, 4400);
  std::vector<float> y(11);
  cpu::dropout(11, DropoutParams{0.0f, 1, 0}, x.data(), y.data());
  CHECK(y == x);
}

TEST_CASE("dropout in place") {
  const std::vector<float> x = ref::random_uniform(11, -1.0f, 1.0f, 4401);
  std::vector<float> y(11);
  std::vector<float> in_place = x;
  cpu::dropout(11, DropoutParams{0.5f, 1, 0}, in_place.data(), in_place.data());
  cpu::dropout(11, DropoutParams{0.5f, 1, 0}, x.data(), y.data());
  CHECK(in_place == y);
}

TEST_CASE("dropout rejects p outside [0, 1)") {
  const std::vector<float> x(11, 1.0f);
  std::vector<float> y(11);
  CHECK_THROWS_WITH_AS(cpu::dropout(11, DropoutParams{1.0f, 1, 0}, x.data(), y.data()),
                       doctest::Contains("p = 1"), Error);
  CHECK_THROWS_AS(cpu::dropout(11, DropoutParams{-0.1f, 1, 0}, x.data(), y.data()), Error);
}

}  // namespace
}  // namespace dsn
