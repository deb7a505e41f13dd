#include "engine/tensor.h"

#include <cstring>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/error.h"

namespace dsn {

std::int64_t numel(const Shape& shape) {
  std::int64_t count = 1;
  for (std::int64_t extent : shape) count *= extent;
  return count;
}

std::string to_string(const Shape& shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + ")";
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (std::int64_t extent : shape) {
    DSN_CHECK(extent >= 0, "negative extent in tensor shape {}", to_string(shape));
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  const std::size_t bytes = static_cast<std::size_t>(dsn::numel(shape)) * element_size(dtype);
  impl->storage = std::make_shared<Storage>(bytes, backend_for(device).allocator());
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor tensor = empty(shape, dtype, device);
  // All-zero bytes are 0.0f and 0 for every supported type.
  if (device.is_cpu()) {
    std::memset(tensor.raw_data(), 0, tensor.bytes());
  } else {
    std::vector<unsigned char> host(tensor.bytes(), 0);
    backend_for(device).copy_from_host(tensor.raw_data(), host.data(), host.size());
  }
  return tensor;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor tensor = empty(shape, DType::Float32, device);
  backend_for(device).fill(tensor.numel(), value, tensor.data<float>());
  return tensor;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values, Device device) {
  DSN_CHECK(static_cast<std::int64_t>(values.size()) == dsn::numel(shape),
            "from_vector: {} values for shape {}", values.size(), to_string(shape));
  Tensor tensor = empty(shape, DType::Float32, device);
  backend_for(device).copy_from_host(tensor.raw_data(), values.data(), tensor.bytes());
  return tensor;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<std::int32_t>& values,
                           Device device) {
  DSN_CHECK(static_cast<std::int64_t>(values.size()) == dsn::numel(shape),
            "from_vector: {} values for shape {}", values.size(), to_string(shape));
  Tensor tensor = empty(shape, DType::Int32, device);
  backend_for(device).copy_from_host(tensor.raw_data(), values.data(), tensor.bytes());
  return tensor;
}

const Shape& Tensor::shape() const {
  DSN_CHECK(defined(), "shape() of an undefined tensor");
  return impl_->shape;
}

std::int64_t Tensor::size(std::int64_t i) const {
  const std::int64_t rank = dim();
  const std::int64_t axis = i < 0 ? i + rank : i;
  DSN_CHECK(axis >= 0 && axis < rank, "dimension {} out of range for shape {}", i,
            to_string(shape()));
  return impl_->shape[static_cast<std::size_t>(axis)];
}

DType Tensor::dtype() const {
  DSN_CHECK(defined(), "dtype() of an undefined tensor");
  return impl_->dtype;
}

Device Tensor::device() const {
  DSN_CHECK(defined(), "device() of an undefined tensor");
  return impl_->storage->device();
}

void* Tensor::raw_data() const {
  DSN_CHECK(defined(), "data of an undefined tensor");
  return static_cast<char*>(impl_->storage->data()) + impl_->byte_offset;
}

void Tensor::check_element_type(DType requested) const {
  DSN_CHECK(dtype() == requested, "expected a {} tensor, got {} of shape {}", to_string(requested),
            to_string(dtype()), to_string(shape()));
}

Tensor Tensor::to(Device target) const {
  const Device source = device();
  if (source == target) return *this;
  Tensor result = empty(shape(), dtype(), target);
  if (source.is_cpu()) {
    backend_for(target).copy_from_host(result.raw_data(), raw_data(), bytes());
  } else if (target.is_cpu()) {
    backend_for(source).copy_to_host(result.raw_data(), raw_data(), bytes());
  } else {
    std::vector<unsigned char> host(bytes());
    backend_for(source).copy_to_host(host.data(), raw_data(), bytes());
    backend_for(target).copy_from_host(result.raw_data(), host.data(), bytes());
  }
  return result;
}

Tensor Tensor::clone() const {
  Tensor result = empty(shape(), dtype(), device());
  backend_for(device()).copy(result.raw_data(), raw_data(), bytes());
  return result;
}

std::vector<float> Tensor::to_vector() const {
  DSN_CHECK(dtype() == DType::Float32, "to_vector: expected float32, got {}",
            to_string(dtype()));
  std::vector<float> values(static_cast<std::size_t>(numel()));
  backend_for(device()).copy_to_host(values.data(), raw_data(), bytes());
  return values;
}

std::vector<std::int32_t> Tensor::to_int_vector() const {
  DSN_CHECK(dtype() == DType::Int32, "to_int_vector: expected int32, got {}",
            to_string(dtype()));
  std::vector<std::int32_t> values(static_cast<std::size_t>(numel()));
  backend_for(device()).copy_to_host(values.data(), raw_data(), bytes());
  return values;
}

float Tensor::item() const {
  DSN_CHECK(numel() == 1, "item() of a tensor of shape {}", to_string(shape()));
  return to_vector()[0];
}

Tensor Tensor::view(const Shape& new_shape) const {
  DSN_CHECK(dsn::numel(new_shape) == numel(), "cannot view shape {} as {}", to_string(shape()),
            to_string(new_shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->byte_offset = impl_->byte_offset;
  impl->shape = new_shape;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

bool Tensor::requires_grad() const { return defined() && impl_->requires_grad; }

Tensor& Tensor::set_requires_grad(bool requires_grad) {
  DSN_CHECK(defined(), "set_requires_grad on an undefined tensor");
  DSN_CHECK(!requires_grad || dtype() == DType::Float32,
            "only float32 tensors can require gradients, got {}", to_string(dtype()));
  impl_->requires_grad = requires_grad;
  return *this;
}

Tensor Tensor::grad() const {
  DSN_CHECK(defined(), "grad() of an undefined tensor");
  return Tensor(impl_->grad);
}

void Tensor::zero_grad() {
  if (defined()) impl_->grad.reset();
}

Tensor Tensor::detach() const {
  Tensor result = view(shape());
  return result;
}

void check_shape(const Tensor& tensor, const Shape& expected, const std::string& what) {
  DSN_CHECK(tensor.defined(), "{} is undefined, expected shape {}", what, to_string(expected));
  DSN_CHECK(tensor.shape() == expected, "{} has shape {}, expected {}", what,
            to_string(tensor.shape()), to_string(expected));
}

void check_float(const Tensor& tensor, std::int64_t rank, const std::string& what) {
  DSN_CHECK(tensor.defined(), "{} is undefined", what);
  DSN_CHECK(tensor.dtype() == DType::Float32, "{} must be float32, got {}", what,
            to_string(tensor.dtype()));
  DSN_CHECK(tensor.dim() == rank, "{} must have {} dimensions, got shape {}", what, rank,
            to_string(tensor.shape()));
}

}  // namespace dsn
