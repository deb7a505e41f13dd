// A caching allocator for device memory on the engine's Allocator interface. Freed blocks are
// kept for reuse instead of being returned with cudaFree, because cudaMalloc and cudaFree
// synchronise the device and cost far more than a training step's kernels. A request is served
// by the smallest cached block that fits and is at most twice its size. When cudaMalloc runs out
// of memory, the cache is emptied and the request retried once.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

#include "engine/allocator.h"

namespace dsn::cuda {

struct AllocatorStats {
  std::size_t bytes_in_use = 0;     // handed out and not yet freed
  std::size_t bytes_cached = 0;     // freed and kept for reuse
  std::size_t peak_bytes_in_use = 0;
  std::size_t device_allocations = 0;  // calls of cudaMalloc
};

class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(int device_index = 0);
  ~CachingAllocator() override;

  void* allocate(std::size_t bytes) override;
  void deallocate(void* pointer, std::size_t bytes) override;
  Device device() const override { return Device::cuda(device_index_); }

  // Returns every cached block to the device.
  void release_cached();
  AllocatorStats stats() const;

  // Sizes are rounded up to this many bytes, which also aligns every block for float4 loads.
  static constexpr std::size_t kGranularity = 512;

 private:
  int device_index_;
  mutable std::mutex mutex_;
  std::multimap<std::size_t, void*> free_blocks_;       // size -> block
  std::unordered_map<void*, std::size_t> block_sizes_;  // every live or cached block
  AllocatorStats stats_;
};

}  // namespace dsn::cuda
