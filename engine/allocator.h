// Memory for tensor storage. Each backend supplies an allocator. The CPU one returns 64-byte
// aligned host memory, and a device backend plugs in its own (a caching allocator on CUDA)
// without changes to tensors, ops or networks.
#pragma once

#include <cstddef>
#include <memory>

#include "engine/device.h"

namespace dsn {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* pointer, std::size_t bytes) = 0;
  virtual Device device() const = 0;
};

// Host memory aligned to 64 bytes (a cache line, and enough for AVX-512 loads).
class CpuAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override;
  void deallocate(void* pointer, std::size_t bytes) override;
  Device device() const override { return Device::cpu(); }
};

// A block of memory owned through an allocator, shared by every tensor viewing it.
class Storage {
 public:
  Storage(std::size_t bytes, Allocator& allocator);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return allocator_.device(); }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Allocator& allocator_;
};

}  // namespace dsn
