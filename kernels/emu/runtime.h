// Host side of the CUDA device emulation: the CUDA keyword macros, then the toolkit's own
// runtime, fp16 and bf16 headers (compiled by g++ for their exact type layouts and host
// declarations), and the emulation's controls. The runtime functions declared by
// <cuda_runtime_api.h> are implemented in kernels/emu/runtime.cpp for the subset listed in
// kernels/emu/README.md; a call outside that subset fails to link, which is intended.
// Selected only when DSN_DEVICE_EMULATION is defined; never link dsn_emu and libcudart together.
#pragma once

#if !defined(DSN_DEVICE_EMULATION)
#error "kernels/emu/runtime.h is for the emulated build only (DSN_DEVICE_EMULATION undefined)"
#endif

// The toolkit headers keep these definitions when they exist before the first include.
#define __host__
#define __device__
#define __global__
#define __constant__
#define __launch_bounds__(...)
// One copy per OS thread is one copy per block, because a block never leaves its worker thread.
#define __shared__ static thread_local

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

// The toolkit defines these two as GCC attributes; plain C++ is enough for the emulation, and
// libstdc++ uses the identifier __noinline__ inside its own attributes.
#undef __forceinline__
#define __forceinline__ inline
#undef __noinline__
#define __noinline__

#include <cstdint>
#include <string>

// <cuda_runtime.h> defines this kernel-pointer overload for nvcc only.
template <typename T>
cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attribute, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attribute, value);
}

namespace dsn::emu {

// Order in which threads leave a barrier and in which a block's threads first start.
enum class ScheduleOrder { forward, reverse, random };

struct Schedule {
  ScheduleOrder order = ScheduleOrder::forward;
  std::uint64_t seed = 0;  // used by ScheduleOrder::random only
};

// Parses "forward", "reverse", "random" or "random:<seed>"; throws dsn::Error otherwise.
Schedule parse_schedule(const std::string& text);
// Returns the schedule in use: DSN_EMU_SCHEDULE on first use, else the last set_schedule().
Schedule schedule();
void set_schedule(const Schedule& schedule);

// Number of OS threads that run blocks (DSN_EMU_WORKERS, default 2); set_worker_count applies
// from the next launch.
unsigned worker_count();
void set_worker_count(unsigned count);

// The reason the last failing runtime call of this host thread returned an error, in more words
// than cudaGetErrorString gives (for example which pointer is not device memory).
const std::string& last_error_detail();

// Returns whether [pointer, pointer + bytes) lies inside one cudaMalloc allocation.
bool is_device_range(const void* pointer, std::size_t bytes);

}  // namespace dsn::emu
