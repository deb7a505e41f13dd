// The CUDA caching allocator (kernels/cuda/caching_allocator.h): reuse of freed blocks, the rule
// that a cached block serves requests down to half its size, release_cached, the in-use, cached
// and peak statistics, and the error for a failed device allocation. Each test owns a fresh
// allocator, so the statistics start at zero. The installed backend's allocator is checked only
// for caching across op calls.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "engine/backend.h"
#include "engine/ops.h"
#include "kernels/cuda/backend_impl.h"
#include "kernels/cuda/caching_allocator.h"
#include "tests/backend/support.h"

namespace dsn::backend_test {
namespace {

using cuda::AllocatorStats;
using cuda::CachingAllocator;

constexpr std::size_t kGranule = CachingAllocator::kGranularity;

TEST_CASE("allocator rounds sizes to the granularity") {
  CachingAllocator allocator;
  void* small = allocator.allocate(1);
  void* exact = allocator.allocate(kGranule);
  void* above = allocator.allocate(kGranule + 1);
  void* empty = allocator.allocate(0);
  CHECK(small != nullptr);
  CHECK(empty != nullptr);
  CHECK(reinterpret_cast<std::uintptr_t>(above) % 16 == 0);  // float4 alignment

  AllocatorStats stats = allocator.stats();
  CHECK(stats.bytes_in_use == 5 * kGranule);  // 1, 1, 2 and 1 granules
  CHECK(stats.device_allocations == 4);

  allocator.deallocate(small, 1);
  allocator.deallocate(exact, kGranule);
  allocator.deallocate(above, kGranule + 1);
  allocator.deallocate(empty, 0);
  stats = allocator.stats();
  CHECK(stats.bytes_in_use == 0);
  CHECK(stats.bytes_cached == 5 * kGranule);
}

TEST_CASE("allocator reuses same-size block") {
  CachingAllocator allocator;
  void* first = allocator.allocate(10'000);
  allocator.deallocate(first, 10'000);
  for (int cycle = 0; cycle < 5; ++cycle) {
    CAPTURE(cycle);
    void* again = allocator.allocate(10'000);
    CHECK(again == first);
    allocator.deallocate(again, 10'000);
  }
  const AllocatorStats stats = allocator.stats();
  CHECK(stats.device_allocations == 1);
  CHECK(stats.bytes_in_use == 0);
  CHECK(stats.bytes_cached == 20 * kGranule);  // 10,000 bytes round up to 20 granules
}

TEST_CASE("allocator reuses block down to half") {
  CachingAllocator allocator;
  void* block = allocator.allocate(8 * kGranule);
  allocator.deallocate(block, 8 * kGranule);

  SUBCASE("half the size reuses the block") {
    void* half = allocator.allocate(4 * kGranule);
    CHECK(half == block);
    CHECK(allocator.stats().device_allocations == 1);
    // The whole block counts as in use, since it is not split.
    CHECK(allocator.stats().bytes_in_use == 8 * kGranule);
    allocator.deallocate(half, 4 * kGranule);
  }
  SUBCASE("a request below half allocates a new block") {
    void* small = allocator.allocate(4 * kGranule - 1);  // rounds to 4 granules: still reused
    CHECK(small == block);
    allocator.deallocate(small, 4 * kGranule - 1);
    void* smaller = allocator.allocate(3 * kGranule);
    CHECK(smaller != block);
    const AllocatorStats stats = allocator.stats();
    CHECK(stats.device_allocations == 2);
    CHECK(stats.bytes_in_use == 3 * kGranule);
    CHECK(stats.bytes_cached == 8 * kGranule);
    allocator.deallocate(smaller, 3 * kGranule);
  }
  SUBCASE("a larger request allocates a new block") {
    void* larger = allocator.allocate(8 * kGranule + 1);
    CHECK(larger != block);
    CHECK(allocator.stats().device_allocations == 2);
    allocator.deallocate(larger, 8 * kGranule + 1);
  }
}

TEST_CASE("allocator picks smallest fitting block") {
  CachingAllocator allocator;
  void* large = allocator.allocate(6 * kGranule);
  void* medium = allocator.allocate(4 * kGranule);
  void* small = allocator.allocate(2 * kGranule);
  allocator.deallocate(large, 6 * kGranule);
  allocator.deallocate(medium, 4 * kGranule);
  allocator.deallocate(small, 2 * kGranule);

  CHECK(allocator.allocate(3 * kGranule) == medium);
  CHECK(allocator.allocate(3 * kGranule) == large);
  CHECK(allocator.allocate(2 * kGranule) == small);
  CHECK(allocator.stats().device_allocations == 3);
  CHECK(allocator.stats().bytes_cached == 0);
}

TEST_CASE("allocator release_cached returns cached blocks") {
  CachingAllocator allocator;
  void* in_use = allocator.allocate(kGranule);
  void* freed = allocator.allocate(3 * kGranule);
  allocator.deallocate(freed, 3 * kGranule);
  REQUIRE(allocator.stats().bytes_cached == 3 * kGranule);

  allocator.release_cached();
  AllocatorStats stats = allocator.stats();
  CHECK(stats.bytes_cached == 0);
  CHECK(stats.bytes_in_use == kGranule);

  // The released block is gone, so the same request needs a new device allocation.
  void* again = allocator.allocate(3 * kGranule);
  stats = allocator.stats();
  CHECK(stats.device_allocations == 3);
  CHECK(stats.bytes_in_use == 4 * kGranule);
  allocator.deallocate(again, 3 * kGranule);
  allocator.deallocate(in_use, kGranule);
}

TEST_CASE("allocator tracks the peak in use") {
  CachingAllocator allocator;
  void* a = allocator.allocate(3 * kGranule);
  void* b = allocator.allocate(5 * kGranule);
  allocator.deallocate(a, 3 * kGranule);
  void* c = allocator.allocate(kGranule);  // new block: a's is over twice the size
  AllocatorStats stats = allocator.stats();
  CHECK(c != a);
  CHECK(stats.peak_bytes_in_use == 8 * kGranule);
  CHECK(stats.bytes_in_use == 6 * kGranule);

  void* d = allocator.allocate(2 * kGranule);  // reuses a's block, counted at its full size
  stats = allocator.stats();
  CHECK(d == a);
  CHECK(stats.bytes_in_use == 9 * kGranule);
  CHECK(stats.peak_bytes_in_use == 9 * kGranule);
  allocator.deallocate(b, 5 * kGranule);
  allocator.deallocate(c, kGranule);
  allocator.deallocate(d, 2 * kGranule);
  stats = allocator.stats();
  CHECK(stats.bytes_in_use == 0);
  CHECK(stats.bytes_cached == 9 * kGranule);
  CHECK(stats.peak_bytes_in_use == 9 * kGranule);
}

TEST_CASE("allocator failure names the size") {
  CachingAllocator allocator;
  void* cached = allocator.allocate(kGranule);
  allocator.deallocate(cached, kGranule);

  // A petabyte exceeds both the H200's memory and the 128 TiB user address space of x86-64
  // Linux, where the emulation allocates.
  constexpr std::size_t kHuge = std::size_t{1} << 50;
  const std::string message = error_message([&] { allocator.allocate(kHuge); });
  CAPTURE(message);
  CHECK(contains(message, fmt::format("device allocation of {} bytes failed", kHuge)));
  CHECK(contains(message, "reduce the batch size"));

  // The failure emptied the cache before its retry and left the accounting intact.
  AllocatorStats stats = allocator.stats();
  CHECK(stats.bytes_cached == 0);
  CHECK(stats.bytes_in_use == 0);
  CHECK(stats.device_allocations == 1);

  // The runtime's error state was cleared: the next allocation succeeds.
  void* after = allocator.allocate(kGranule);
  CHECK(after != nullptr);
  allocator.deallocate(after, kGranule);
}

TEST_CASE("allocator rejects overflowing size") {
  CachingAllocator allocator;
  const std::size_t largest = std::numeric_limits<std::size_t>::max();
  const std::string message = error_message([&] { allocator.allocate(largest); });
  CAPTURE(message);
  CHECK(contains(message, std::to_string(largest)));
  CHECK(allocator.stats().device_allocations == 0);
}

TEST_CASE("backend allocator caches across op calls") {
  auto& backend = dynamic_cast<cuda::CudaBackend&>(backend_for(Device::cuda()));
  CachingAllocator& allocator = backend.caching_allocator();
  const Tensor x = Tensor::full({3, 5, 7}, 0.5f, Device::cuda());
  // The first round may allocate; after it, the same sequence of sizes finds its blocks cached.
  for (int round = 0; round < 2; ++round) {
    const Tensor y = ops::relu(ops::scale(x, -2.0f));
    CHECK(y.device() == Device::cuda());
  }
  const std::size_t allocations = allocator.stats().device_allocations;
  for (int round = 0; round < 3; ++round) {
    const Tensor y = ops::relu(ops::scale(x, -2.0f));
    CHECK(y.to_vector()[0] == 0.0f);
  }
  CHECK(allocator.stats().device_allocations == allocations);
  CHECK(allocator.stats().bytes_in_use >= x.bytes());
}

}  // namespace
}  // namespace dsn::backend_test
