// The subset of the CUDA runtime API that the device emulation implements, with the toolkit's
// own declarations from <cuda_runtime_api.h>. Device memory is host memory from posix_memalign,
// recorded in an allocation table so that copies, memsets and kernel arguments can be checked
// against it. A host pointer where device memory is expected is an error here, while a GPU would
// fault later or read garbage. Streams and events are synchronous.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include <fmt/format.h>

#include "kernels/emu/internal.h"
#include "kernels/emu/runtime.h"

struct CUstream_st {
  int unused = 0;
};

struct CUevent_st {
  std::chrono::steady_clock::time_point time;
  bool recorded = false;
};

namespace dsn::emu {
namespace {

constexpr std::size_t kDefaultDynamicShared = 48 * 1024;
constexpr std::size_t kMaxDynamicShared = 227 * 1024;  // sm_90 opt-in maximum per block

struct Memory {
  std::mutex mutex;
  std::map<std::uintptr_t, std::size_t> allocations;  // base address -> size in bytes
  std::size_t allocated = 0;
  std::unordered_map<const void*, std::size_t> dynamic_shared_limits;
};

Memory& memory() {
  static Memory instance;
  return instance;
}

thread_local cudaError_t last_error = cudaSuccess;
thread_local std::string error_detail;

cudaError_t failure(cudaError_t code, std::string detail) {
  last_error = code;
  error_detail = std::move(detail);
  return code;
}

bool is_device(const void* pointer) {
  return is_device_range(pointer, 0);
}

// Checks that [pointer, pointer + bytes) is device memory (device) or not (host); returns an
// empty string or the reason.
std::string check_side(const char* role, const void* pointer, std::size_t bytes, bool device) {
  if (device && !is_device_range(pointer, bytes)) {
    return is_device(pointer)
               ? fmt::format("{} {} + {} bytes runs past the end of its cudaMalloc allocation",
                             role, pointer, bytes)
               : fmt::format("{} {} is not memory from cudaMalloc", role, pointer);
  }
  if (!device && is_device(pointer)) {
    return fmt::format("{} {} is device memory but the copy kind names host memory", role, pointer);
  }
  return {};
}

std::size_t physical_memory() {
  return std::size_t(sysconf(_SC_PHYS_PAGES)) * std::size_t(sysconf(_SC_PAGESIZE));
}

}  // namespace

bool is_device_range(const void* pointer, std::size_t bytes) {
  const auto address = reinterpret_cast<std::uintptr_t>(pointer);
  Memory& m = memory();
  std::lock_guard lock(m.mutex);
  auto next = m.allocations.upper_bound(address);
  if (next == m.allocations.begin()) return false;
  const auto& [base, size] = *std::prev(next);
  return address - base <= size && bytes <= size - (address - base);
}

const std::string& last_error_detail() {
  return error_detail;
}

namespace detail {

std::size_t max_dynamic_shared_bytes(const void* kernel) {
  Memory& m = memory();
  std::lock_guard lock(m.mutex);
  const auto found = m.dynamic_shared_limits.find(kernel);
  return found == m.dynamic_shared_limits.end() ? kDefaultDynamicShared : found->second;
}

}  // namespace detail
}  // namespace dsn::emu

using dsn::emu::failure;

extern "C" {

cudaError_t cudaMalloc(void** pointer, size_t size) {
  if (pointer == nullptr) return failure(cudaErrorInvalidValue, "cudaMalloc: pointer is null");
  if (size == 0) {
    *pointer = nullptr;
    return cudaSuccess;
  }
  // 256-byte alignment like cudaMalloc; exactly `size` bytes so AddressSanitizer detects overruns.
  if (posix_memalign(pointer, 256, size) != 0) {
    return failure(cudaErrorMemoryAllocation, fmt::format("cudaMalloc of {} bytes failed", size));
  }
  std::memset(*pointer, 0xff, size);  // reads as NaN until written
  auto& m = dsn::emu::memory();
  std::lock_guard lock(m.mutex);
  m.allocations[reinterpret_cast<std::uintptr_t>(*pointer)] = size;
  m.allocated += size;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  if (pointer == nullptr) return cudaSuccess;
  auto& m = dsn::emu::memory();
  std::unique_lock lock(m.mutex);
  const auto found = m.allocations.find(reinterpret_cast<std::uintptr_t>(pointer));
  if (found == m.allocations.end()) {
    lock.unlock();
    return failure(
        cudaErrorInvalidValue,
        fmt::format("cudaFree: {} is not the start of a cudaMalloc allocation", pointer));
  }
  m.allocated -= found->second;
  m.allocations.erase(found);
  lock.unlock();
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** pointer, size_t size) {
  if (pointer == nullptr) return failure(cudaErrorInvalidValue, "cudaMallocHost: pointer is null");
  *pointer = std::malloc(size);
  if (*pointer == nullptr && size != 0) {
    return failure(cudaErrorMemoryAllocation,
                   fmt::format("cudaMallocHost of {} bytes failed", size));
  }
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* pointer) {
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (count == 0) return cudaSuccess;
  bool dst_device, src_device;
  switch (kind) {
    case cudaMemcpyHostToHost:
      dst_device = src_device = false;
      break;
    case cudaMemcpyHostToDevice:
      dst_device = true, src_device = false;
      break;
    case cudaMemcpyDeviceToHost:
      dst_device = false, src_device = true;
      break;
    case cudaMemcpyDeviceToDevice:
      dst_device = src_device = true;
      break;
    case cudaMemcpyDefault:
      dst_device = dsn::emu::is_device(dst);
      src_device = dsn::emu::is_device(src);
      break;
    default:
      return failure(cudaErrorInvalidMemcpyDirection,
                     fmt::format("cudaMemcpy: kind {} is not a cudaMemcpyKind", int(kind)));
  }
  std::string reason = dsn::emu::check_side("destination", dst, count, dst_device);
  if (reason.empty()) reason = dsn::emu::check_side("source", src, count, src_device);
  if (!reason.empty()) return failure(cudaErrorInvalidValue, "cudaMemcpy: " + reason);
  std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind,
                            cudaStream_t) {
  return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemcpyToSymbol(const void* symbol, const void* src, size_t count, size_t offset,
                               cudaMemcpyKind kind) {
  if (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDefault) {
    return failure(cudaErrorInvalidMemcpyDirection,
                   "cudaMemcpyToSymbol: only host-to-device copies are emulated");
  }
  std::memcpy(static_cast<char*>(const_cast<void*>(symbol)) + offset, src, count);
  return cudaSuccess;
}

cudaError_t cudaMemset(void* pointer, int value, size_t count) {
  if (count == 0) return cudaSuccess;
  const std::string reason = dsn::emu::check_side("pointer", pointer, count, true);
  if (!reason.empty()) return failure(cudaErrorInvalidValue, "cudaMemset: " + reason);
  std::memset(pointer, value, count);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t count, cudaStream_t) {
  return cudaMemset(pointer, value, count);
}

// Reports the machine's physical memory as the device's, minus what cudaMalloc holds.
cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  const std::size_t physical = dsn::emu::physical_memory();
  auto& m = dsn::emu::memory();
  std::lock_guard lock(m.mutex);
  if (total != nullptr) *total = physical;
  if (free != nullptr) *free = m.allocated < physical ? physical - m.allocated : 0;
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
  return std::exchange(dsn::emu::last_error, cudaSuccess);
}

cudaError_t cudaPeekAtLastError(void) {
  return dsn::emu::last_error;
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidMemcpyDirection:
      return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    default:
      return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidMemcpyDirection:
      return "invalid copy direction for memcpy";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    default:
      return "error code not produced by the device emulation";
  }
}

cudaError_t cudaDeviceSynchronize(void) {
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  if (stream == nullptr) return failure(cudaErrorInvalidValue, "cudaStreamCreate: stream is null");
  *stream = new CUstream_st;
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  return cudaStreamCreate(stream);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) {
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (event == nullptr) return failure(cudaErrorInvalidValue, "cudaEventCreate: event is null");
  *event = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  return cudaEventCreate(event);
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (event == nullptr) {
    return failure(cudaErrorInvalidResourceHandle, "cudaEventRecord: event is null");
  }
  event->time = std::chrono::steady_clock::now();
  event->recorded = true;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t) {
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t) {
  return cudaSuccess;
}

// Host time between the two records, in milliseconds.
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr || start == nullptr || end == nullptr || !start->recorded || !end->recorded) {
    return failure(cudaErrorInvalidResourceHandle,
                   "cudaEventElapsedTime: an event is null or was never recorded");
  }
  *ms = std::chrono::duration<float, std::milli>(end->time - start->time).count();
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (count != nullptr) *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (device != nullptr) *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0) {
    return failure(cudaErrorInvalidDevice,
                   fmt::format("cudaSetDevice({}): the emulation has only device 0", device));
  }
  return cudaSuccess;
}

// Properties of an sm_90-like device; the name says that it is the CPU emulation.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr || device != 0) {
    return failure(cudaErrorInvalidDevice, "cudaGetDeviceProperties: only device 0 exists");
  }
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "dsn CPU device emulation (not a GPU)");
  prop->totalGlobalMem = dsn::emu::physical_memory();
  prop->sharedMemPerBlock = dsn::emu::kDefaultDynamicShared;
  prop->sharedMemPerBlockOptin = dsn::emu::kMaxDynamicShared;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = int(dsn::emu::worker_count());
  prop->maxThreadsPerMultiProcessor = 2048;
  return cudaSuccess;
}

// Only cudaFuncAttributeMaxDynamicSharedMemorySize is emulated; launches check against it.
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) {
    return failure(cudaErrorInvalidValue,
                   fmt::format("cudaFuncSetAttribute: attribute {} is not emulated", int(attr)));
  }
  if (value < 0 || std::size_t(value) > dsn::emu::kMaxDynamicShared) {
    return failure(cudaErrorInvalidValue,
                   fmt::format("cudaFuncSetAttribute: {} bytes of dynamic shared memory exceed "
                               "the maximum of {}",
                               value, dsn::emu::kMaxDynamicShared));
  }
  auto& m = dsn::emu::memory();
  std::lock_guard lock(m.mutex);
  m.dynamic_shared_limits[func] = std::size_t(value);
  return cudaSuccess;
}

}  // extern "C"
