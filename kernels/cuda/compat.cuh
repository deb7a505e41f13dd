// Include this header first in every .cu file. It selects the real CUDA runtime under nvcc, or
// the CPU device emulation when CMake defines DSN_DEVICE_EMULATION (never inferred from the
// absence of __CUDACC__, because nvcc hands .cpp files to the host compiler without it). Both
// provide the fp16 and bf16 types. It defines the three conventions that let one source compile
// both ways:
//   dsn::cuda::launch(kernel, grid, block, shared_bytes, stream, args...) in place of <<<...>>>,
//   DSN_DYNAMIC_SHARED(T, name) in place of extern __shared__,
//   inline PTX only under #if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= X with a plain #else.
#pragma once

#if defined(DSN_DEVICE_EMULATION)
#include "kernels/emu/device.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#include <concepts>
#include <cstddef>
#include <source_location>
#include <string>
#include <type_traits>
#include <utility>

#include "kernels/cuda/check.h"

namespace dsn::cuda {

// Returns a / b rounded up, for grid sizes: ceil_div(n, block_size).
template <typename A, typename B>
__host__ __device__ constexpr std::common_type_t<A, B> ceil_div(A a, B b) {
  return (a + b - 1) / b;
}

// Grid size of a launch together with the caller's source location, so that launch errors name
// the launch site. Converts implicitly from dim3 and from any integer.
class GridDim {
 public:
  GridDim(dim3 size, std::source_location location = std::source_location::current())
      : x_(size.x), y_(size.y), z_(size.z), location_(location) {}
  template <std::integral I>
  GridDim(I x, std::source_location location = std::source_location::current())
      : x_(static_cast<long long>(x)), location_(location) {}

  // Returns the size as dim3; throws dsn::Error when it is outside CUDA's grid limits
  // (x in [1, 2^31 - 1], y and z in [1, 65535]).
  dim3 checked() const {
    const bool valid =
        x_ >= 1 && x_ <= 0x7fffffffLL && y_ >= 1 && y_ <= 65535 && z_ >= 1 && z_ <= 65535;
    if (!valid) {
      throw Error("invalid grid size (" + std::to_string(x_) + ", " + std::to_string(y_) + ", " +
                  std::to_string(z_) + ") for the kernel launched at " + site() +
                  ": each dimension must be at least 1, x at most 2^31 - 1, y and z at most 65535");
    }
    return dim3(unsigned(x_), unsigned(y_), unsigned(z_));
  }

  const std::source_location& location() const { return location_; }
  std::string site() const {
    return std::string(location_.file_name()) + ":" + std::to_string(location_.line());
  }

 private:
  long long x_, y_ = 1, z_ = 1;
  std::source_location location_;
};

#if defined(DSN_DEVICE_EMULATION)

// Runs the kernel on the emulation's worker threads and returns when the grid is done.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), const GridDim& grid, dim3 block, std::size_t shared_bytes,
            cudaStream_t stream, Args&&... args) {
  const ::dsn::emu::detail::LaunchSite site{reinterpret_cast<const void*>(kernel),
                                            grid.checked(),
                                            block,
                                            shared_bytes,
                                            stream,
                                            grid.location().file_name(),
                                            unsigned(grid.location().line())};
  ::dsn::emu::launch(site, kernel, std::forward<Args>(args)...);
}

#elif defined(__CUDACC__)

// Launches the kernel asynchronously on stream and checks the launch at once.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), const GridDim& grid, dim3 block, std::size_t shared_bytes,
            cudaStream_t stream, Args&&... args) {
  // clang-format 14 splits the closing >>> of a launch in a .cuh file.
  // clang-format off
  kernel<<<grid.checked(), block, shared_bytes, stream>>>(std::forward<Args>(args)...);
  // clang-format on
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    detail::throw_call_error("kernel launch", detail::cuda_error_text(status),
                             grid.location().file_name(), int(grid.location().line()));
  }
}

#endif

}  // namespace dsn::cuda

// Declares `T* name` pointing at the block's dynamic shared memory (the launch's shared_bytes).
// In the emulation it is a separate allocation of exactly that size per block, filled with 0xFF
// bytes (NaN for floats), so AddressSanitizer reports overruns.
#if defined(DSN_DEVICE_EMULATION)
#define DSN_DYNAMIC_SHARED(T, name)                                            \
  static_assert(alignof(T) <= 16, "dynamic shared memory is 16-byte aligned"); \
  T* name = static_cast<T*>(::dsn::emu::detail::current_block->dynamic_shared)
#else
#define DSN_DYNAMIC_SHARED(T, name)                                            \
  static_assert(alignof(T) <= 16, "dynamic shared memory is 16-byte aligned"); \
  extern __shared__ __align__(16) unsigned char dsn_dynamic_shared_bytes_[];   \
  T* name = reinterpret_cast<T*>(dsn_dynamic_shared_bytes_)
#endif
