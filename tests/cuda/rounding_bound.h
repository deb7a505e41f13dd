// Worst-case float rounding bound check for results that sum many products, shared by the GEMM
// and convolution kernel tests.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

namespace dsn::test {

struct BoundCheck {
  bool ok = true;
  std::string message;  // the worst element when not ok
};

// Checks |got_i - expected_i| <= 2 * terms * 2^-24 * magnitude_i for every element, where
// magnitude_i is the sum of the absolute values of the terms that made element i.
inline BoundCheck check_rounding_bound(std::span<const float> got,
                                       std::span<const double> expected,
                                       std::span<const double> magnitude, double terms) {
  if (got.size() != expected.size() || got.size() != magnitude.size()) {
    return {false, fmt::format("size mismatch: got {}, expected {}, magnitudes {}", got.size(),
                               expected.size(), magnitude.size())};
  }
  const double unit = std::ldexp(1.0, -24);
  std::size_t failures = 0, worst = 0;
  double worst_ratio = -1.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double error = std::abs(double(got[i]) - expected[i]);
    const double bound = 2.0 * terms * unit * magnitude[i];
    const bool pass = error <= bound;  // false for NaN
    double ratio = std::numeric_limits<double>::infinity();
    if (pass) ratio = bound > 0.0 ? error / bound : 0.0;
    if (!pass) ++failures;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (failures == 0) return {};
  return {false,
          fmt::format("{} of {} elements exceed the rounding bound; worst at index {}: got {:.9g}, "
                      "expected {:.9g}, error {:.3g}, bound {:.3g}",
                      failures, got.size(), worst, got[worst], expected[worst],
                      std::abs(double(got[worst]) - expected[worst]),
                      2.0 * terms * unit * magnitude[worst])};
}

}  // namespace dsn::test

// Fails the current doctest case with the worst element's message when the bound is exceeded.
#define CHECK_ROUNDING_BOUND(got, expected, magnitude, terms)                             \
  do {                                                                                    \
    const ::dsn::test::BoundCheck bound_check_ =                                          \
        ::dsn::test::check_rounding_bound((got), (expected), (magnitude), (terms));       \
    CHECK_MESSAGE(bound_check_.ok, bound_check_.message);                                 \
  } while (0)
