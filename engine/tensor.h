// The tensor: a shape, an element type and a device over shared, contiguous storage, plus the
// autograd fields (requires_grad, the accumulated gradient, the producing node).
//
// Tensors are handles: copying one shares the storage, as in PyTorch. Every tensor is contiguous
// in row-major order; reshape returns a view of the same storage.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/allocator.h"
#include "engine/device.h"

namespace dsn {

using Shape = std::vector<std::int64_t>;

std::int64_t numel(const Shape& shape);
std::string to_string(const Shape& shape);  // "(2, 3, 4)"

class Tensor;
struct Node;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  std::size_t byte_offset = 0;
  Shape shape;
  DType dtype = DType::Float32;

  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf, same shape and device
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor, null for leaves
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Uninitialised storage on `device` through that device's backend allocator.
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32,
                      Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32,
                      Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu());
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values,
                            Device device = Device::cpu());
  static Tensor from_vector(const Shape& shape, const std::vector<std::int32_t>& values,
                            Device device = Device::cpu());

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  std::int64_t dim() const { return static_cast<std::int64_t>(shape().size()); }
  // Size of dimension i; negative i counts from the end.
  std::int64_t size(std::int64_t i) const;
  std::int64_t numel() const { return dsn::numel(shape()); }
  DType dtype() const;
  Device device() const;
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * element_size(dtype()); }

  // Raw element pointers; the element type is checked against dtype().
  template <typename T>
  T* data() {
    check_element_type(dtype_of<T>());
    return static_cast<T*>(raw_data());
  }
  template <typename T>
  const T* data() const {
    check_element_type(dtype_of<T>());
    return static_cast<const T*>(raw_data());
  }
  void* raw_data() const;

  // A copy on `device` (a new tensor without autograd history; the same tensor if already there).
  Tensor to(Device device) const;
  Tensor clone() const;
  std::vector<float> to_vector() const;  // float32 values, copied to the host
  std::vector<std::int32_t> to_int_vector() const;
  float item() const;  // the value of a one-element float32 tensor

  // A view with another shape of the same element count (no autograd; see ops::reshape).
  Tensor view(const Shape& shape) const;

  // Autograd.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool requires_grad);
  Tensor grad() const;  // undefined when no gradient has been accumulated
  void zero_grad();     // drops the accumulated gradient
  Tensor detach() const;  // same storage, no autograd history

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  template <typename T>
  static constexpr DType dtype_of() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int32_t>,
                  "Tensor::data<T>() supports float and std::int32_t");
    return std::is_same_v<T, float> ? DType::Float32 : DType::Int32;
  }
  void check_element_type(DType requested) const;

  std::shared_ptr<TensorImpl> impl_;
};

// Throws dsn::Error naming `what` when the tensor's shape differs from `expected`.
void check_shape(const Tensor& tensor, const Shape& expected, const std::string& what);
// Throws unless the tensor is defined, float32 and has `rank` dimensions.
void check_float(const Tensor& tensor, std::int64_t rank, const std::string& what);

}  // namespace dsn
