#include "engine/allocator.h"

#include <cstdlib>
#include <new>

#include "engine/error.h"

namespace dsn {

namespace {
constexpr std::size_t kAlignment = 64;
}

void* CpuAllocator::allocate(std::size_t bytes) {
  const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* pointer = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  DSN_CHECK(pointer != nullptr, "host allocation of {} bytes failed", bytes);
  return pointer;
}

void CpuAllocator::deallocate(void* pointer, std::size_t) { std::free(pointer); }

Storage::Storage(std::size_t bytes, Allocator& allocator)
    : data_(allocator.allocate(bytes)), bytes_(bytes), allocator_(allocator) {}

Storage::~Storage() { allocator_.deallocate(data_, bytes_); }

std::string to_string(Device device) {
  return device.is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(device.index);
}

std::size_t element_size(DType dtype) {
  switch (dtype) {
    case DType::Float32:
    case DType::Int32:
      return 4;
    case DType::Float16:
    case DType::BFloat16:
      return 2;
  }
  return 0;
}

std::string to_string(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "float32";
    case DType::Int32:
      return "int32";
    case DType::Float16:
      return "float16";
    case DType::BFloat16:
      return "bfloat16";
  }
  return "unknown";
}

}  // namespace dsn
