// Helpers of the CUDA backend tests. run_op applies one op on a device with autograd and returns
// the output and the input gradients on the host. The comparisons check two results bit for bit,
// or a result against a double reference within a per-element error bound.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/tensor.h"

namespace dsn::backend_test {

using Vec = std::vector<double>;

// The unit roundoff of float32: a correctly rounded operation is off by at most this much
// relative to its exact result.
inline constexpr double kUnit = 0x1p-24;

// What backend_for(Device::cuda()) did before main() installed the CUDA backend (main.cpp).
struct PreInstallProbe {
  bool threw = false;
  std::string message;
};
const PreInstallProbe& pre_install_probe();

// The message of the dsn::Error thrown by `action`, or "" when it does not throw.
template <typename Action>
std::string error_message(Action&& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// --- Running one op on a device ---------------------------------------------------------------

// An op input held on the host.
struct HostTensor {
  Shape shape;
  std::vector<float> values;
  bool requires_grad = true;
};

struct OpResult {
  std::vector<float> output;
  std::vector<std::vector<float>> grads;  // one per input; empty where no gradient reached it
};

using OpFunction = std::function<Tensor(const std::vector<Tensor>& inputs)>;

// Copies `inputs` to `device`, applies `op`, back-propagates `grad_output` (the shape of the
// op's output) and returns the output and every input's gradient on the host.
inline OpResult run_op(Device device, const std::vector<HostTensor>& inputs, const OpFunction& op,
                       const std::vector<float>& grad_output) {
  std::vector<Tensor> tensors;
  for (const HostTensor& input : inputs) {
    Tensor tensor = Tensor::from_vector(input.shape, input.values, device);
    tensor.set_requires_grad(input.requires_grad);
    tensors.push_back(tensor);
  }
  const Tensor output = op(tensors);
  DSN_CHECK(output.device() == device, "the op returned a tensor on {}, expected {}",
            to_string(output.device()), to_string(device));
  OpResult result{output.to_vector(), {}};
  autograd::backward(output, Tensor::from_vector(output.shape(), grad_output, device));
  for (const Tensor& tensor : tensors) {
    const Tensor grad = tensor.grad();
    result.grads.push_back(grad.defined() ? grad.to_vector() : std::vector<float>{});
  }
  return result;
}

struct BothResults {
  OpResult cpu;
  OpResult cuda;
};

// run_op on the CPU backend and on the CUDA backend with the same inputs.
inline BothResults run_on_both(const std::vector<HostTensor>& inputs, const OpFunction& op,
                               const std::vector<float>& grad_output) {
  return {run_op(Device::cpu(), inputs, op, grad_output),
          run_op(Device::cuda(), inputs, op, grad_output)};
}

// --- Comparisons ------------------------------------------------------------------------------

inline std::vector<float> to_float(const Vec& values) {
  return std::vector<float>(values.begin(), values.end());
}

inline Vec to_double(std::span<const float> values) {
  return Vec(values.begin(), values.end());
}

inline Vec absolute(std::span<const float> values) {
  Vec result(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) result[i] = std::abs(double(values[i]));
  return result;
}

// Returns "" when both spans hold the same bits, else the first difference and the count.
template <typename T>
std::string bitwise_mismatch(std::span<const T> got, std::span<const T> expected) {
  if (got.size() != expected.size()) {
    return fmt::format("size mismatch: got {} elements, expected {}", got.size(), expected.size());
  }
  std::size_t first = got.size(), count = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &expected[i], sizeof(T)) != 0) {
      if (count++ == 0) first = i;
    }
  }
  if (count == 0) return "";
  return fmt::format("{} of {} elements differ; first at index {}: got {}, expected {}", count,
                     got.size(), first, got[first], expected[first]);
}

// The result of checking |got_i - expected_i| <= bound_i for every element.
struct BoundCheck {
  bool ok = true;
  double worst_ratio = 0.0;  // max over i of |got_i - expected_i| / bound_i
  std::string message;       // the worst element and the failure count; empty when ok
};

inline BoundCheck check_within(std::span<const float> got, std::span<const double> expected,
                               std::span<const double> bound) {
  if (got.size() != expected.size() || bound.size() != expected.size()) {
    return {false, std::numeric_limits<double>::infinity(),
            fmt::format("size mismatch: got {} elements, expected {} with {} bounds", got.size(),
                        expected.size(), bound.size())};
  }
  BoundCheck result;
  std::size_t failures = 0, worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double error = std::abs(double(got[i]) - expected[i]);
    // A NaN fails and counts as the worst; a zero bound demands an exact result.
    const double ratio = std::isnan(error) ? std::numeric_limits<double>::infinity()
                         : error == 0.0    ? 0.0
                         : bound[i] > 0.0  ? error / bound[i]
                                           : std::numeric_limits<double>::infinity();
    if (!(error <= bound[i])) ++failures;
    if (i == 0 || ratio > result.worst_ratio) {
      result.worst_ratio = ratio;
      worst = i;
    }
  }
  if (failures == 0) return result;
  result.ok = false;
  result.message = fmt::format(
      "{} of {} elements exceed their bound; worst at index {}: got {:.9g}, expected {:.9g}, "
      "error {:.3g}, bound {:.3g} ({:.3g} times the bound)",
      failures, got.size(), worst, got[worst], expected[worst],
      std::abs(double(got[worst]) - expected[worst]), bound[worst], result.worst_ratio);
  return result;
}

// Checks that the CPU and the CUDA values of one tensor hold the same bits.
inline void check_same_bits(const std::string& what, const std::vector<float>& cpu_values,
                            const std::vector<float>& cuda_values) {
  INFO(what);
  const std::string mismatch =
      bitwise_mismatch(std::span<const float>(cuda_values), std::span<const float>(cpu_values));
  CHECK_MESSAGE(mismatch.empty(), mismatch);
}

// Checks the CPU and the CUDA values of one tensor against a double reference, each element
// within its bound, and logs the worst error as a fraction of its bound at debug level.
inline void check_both_within(const std::string& what, const std::vector<float>& cpu_values,
                              const std::vector<float>& cuda_values, const Vec& expected,
                              const Vec& bound) {
  for (const auto& [backend, values] : {std::pair{"cpu", &cpu_values}, {"cuda", &cuda_values}}) {
    INFO(backend, " ", what);
    const BoundCheck check = check_within(*values, expected, bound);
    spdlog::debug("{:<4} {:<36} worst error {:.3g} of its bound", backend, what, check.worst_ratio);
    CHECK_MESSAGE(check.ok, check.message);
  }
}

// Scales |terms| sums into the worst-case rounding bound of a float sum of `terms` products:
// 2 * terms * 2^-24 * sum |a_i b_i|, which no summation order exceeds.
inline Vec sum_bound(Vec magnitudes, double terms) {
  for (double& value : magnitudes) value *= 2.0 * terms * kUnit;
  return magnitudes;
}

}  // namespace dsn::backend_test
