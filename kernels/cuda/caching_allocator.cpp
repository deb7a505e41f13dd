#include "kernels/cuda/caching_allocator.h"

#include <algorithm>
#include <limits>

#include "engine/error.h"
#include "kernels/cuda/check.h"

namespace dsn::cuda {

CachingAllocator::CachingAllocator(int device_index) : device_index_(device_index) {}

CachingAllocator::~CachingAllocator() {
  std::lock_guard lock(mutex_);
  for (auto& [pointer, size] : block_sizes_) DSN_CUDA_CHECK_LOG(cudaFree(pointer));
}

void* CachingAllocator::allocate(std::size_t bytes) {
  // Without this check the rounding below wraps to 0 and cudaMalloc returns a null block.
  DSN_CHECK(bytes <= std::numeric_limits<std::size_t>::max() - kGranularity,
            "device allocation of {} bytes is larger than any device memory; check the tensor "
            "shape that requested it",
            bytes);

  const std::size_t size =
      (std::max<std::size_t>(bytes, 1) + kGranularity - 1) / kGranularity * kGranularity;
  std::lock_guard lock(mutex_);
  auto cached = free_blocks_.lower_bound(size);
  if (cached != free_blocks_.end() && cached->first <= 2 * size) {
    void* pointer = cached->second;
    stats_.bytes_cached -= cached->first;
    stats_.bytes_in_use += cached->first;
    free_blocks_.erase(cached);
    stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
    return pointer;
  }
  void* pointer = nullptr;
  cudaError_t status = cudaMalloc(&pointer, size);
  if (status == cudaErrorMemoryAllocation && !free_blocks_.empty()) {
    (void)cudaGetLastError();  // clear the sticky-free error state before retrying
    for (auto& [block_size, block] : free_blocks_) {
      DSN_CUDA_CHECK_LOG(cudaFree(block));
      block_sizes_.erase(block);
    }
    free_blocks_.clear();
    stats_.bytes_cached = 0;
    status = cudaMalloc(&pointer, size);
  }
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    fail(fmt::format("device allocation of {} bytes failed: {} ({} bytes in use, peak {}); "
                     "reduce the batch size or the input size",
                     size, cudaGetErrorString(status), stats_.bytes_in_use,
                     stats_.peak_bytes_in_use));
  }
  block_sizes_[pointer] = size;
  ++stats_.device_allocations;
  stats_.bytes_in_use += size;
  stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  return pointer;
}

void CachingAllocator::deallocate(void* pointer, std::size_t) {
  if (pointer == nullptr) return;
  std::lock_guard lock(mutex_);
  auto found = block_sizes_.find(pointer);
  if (found == block_sizes_.end()) {
    spdlog::error("CachingAllocator: freeing {} which it did not allocate", pointer);
    return;
  }
  free_blocks_.emplace(found->second, pointer);
  stats_.bytes_in_use -= found->second;
  stats_.bytes_cached += found->second;
}

void CachingAllocator::release_cached() {
  std::lock_guard lock(mutex_);
  for (auto& [size, pointer] : free_blocks_) {
    DSN_CUDA_CHECK(cudaFree(pointer));
    block_sizes_.erase(pointer);
  }
  free_blocks_.clear();
  stats_.bytes_cached = 0;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace dsn::cuda
