// Helpers shared by the op implementations.
#pragma once

#include <initializer_list>
#include <string>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace dsn::ops::detail {

// Throws unless every defined tensor in `tensors` lives on the device of the first one.
inline Device common_device(const std::string& op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* tensor : tensors) {
    if (tensor == nullptr || !tensor->defined()) continue;
    if (first == nullptr) {
      first = tensor;
      continue;
    }
    DSN_CHECK(tensor->device() == first->device(), "{}: inputs on {} and {}; move them to one "
              "device first", op, to_string(first->device()), to_string(tensor->device()));
  }
  DSN_CHECK(first != nullptr, "{}: no defined input", op);
  return first->device();
}

inline Tensor empty_like(const Tensor& x) {
  return Tensor::empty(x.shape(), x.dtype(), x.device());
}

inline Tensor empty_float(const Shape& shape, Device device) {
  return Tensor::empty(shape, DType::Float32, device);
}

}  // namespace dsn::ops::detail
