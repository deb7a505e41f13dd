// Device side of the CUDA device emulation: the built-in indices, barriers, warp intrinsics,
// atomics, math intrinsics and the kernel launch, for .cu files compiled by g++. Included through
// kernels/cuda/compat.cuh only. Barriers and warp collectives switch fibers inside opaque calls
// into kernels/emu/scheduler.cpp, so the compiler cannot keep shared values in registers across
// them.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/emu/runtime.h"

namespace dsn::emu {

// Per-block values behind blockIdx, blockDim, gridDim and DSN_DYNAMIC_SHARED.
struct BlockContext {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  void* dynamic_shared;
};

namespace detail {

// Set by the scheduler on every switch between CUDA threads of the worker's block.
constinit inline thread_local const uint3* current_thread_idx = nullptr;
constinit inline thread_local const BlockContext* current_block = nullptr;

enum class WarpOp : std::uint8_t { sync, shfl, shfl_up, shfl_down, shfl_xor, ballot, any, all };
enum class BlockReduce : std::uint8_t { none, count, all, any };

std::uint64_t warp_collective(WarpOp op, unsigned mask, std::uint64_t value, int operand,
                              int width);
unsigned active_mask();
int block_barrier(int predicate, BlockReduce reduce);

struct LaunchSite {
  const void* kernel;
  dim3 grid;
  dim3 block;
  std::size_t shared_bytes;
  cudaStream_t stream;
  const char* file;
  unsigned line;
};

using KernelThunk = void (*)(const void* closure);
void run_kernel(const LaunchSite& site, KernelThunk thunk, const void* closure);
void check_pointer_argument(const void* pointer, int index, const LaunchSite& site);

template <typename T>
std::uint64_t to_bits(T value) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8,
                "warp shuffles take trivially copyable types of at most 8 bytes");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}

template <typename T>
T from_bits(std::uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}

template <typename... Params>
struct Closure {
  void (*kernel)(Params...);
  std::tuple<std::decay_t<Params>...> params;

  static void invoke(const void* self) {
    const auto& closure = *static_cast<const Closure*>(self);
    std::apply(closure.kernel, closure.params);
  }
};

}  // namespace detail

// Runs kernel(args...) for every thread of the grid before returning (streams are synchronous).
// Throws dsn::Error on invalid configurations, host pointers among the arguments, deadlocks and
// other faults found while running.
template <typename... Params, typename... Args>
void launch(const detail::LaunchSite& site, void (*kernel)(Params...), Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel argument count mismatch");
  detail::Closure<Params...> closure{
      kernel, {static_cast<std::decay_t<Params>>(std::forward<Args>(args))...}};
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    auto check = [&](int index, const auto& value) {
      using V = std::decay_t<decltype(value)>;
      if constexpr (std::is_pointer_v<V> && !std::is_function_v<std::remove_pointer_t<V>>) {
        detail::check_pointer_argument(reinterpret_cast<const void*>(value), index, site);
      }
    };
    (check(static_cast<int>(I), std::get<I>(closure.params)), ...);
  }
  (std::index_sequence_for<Params...>{});
  detail::run_kernel(site, &detail::Closure<Params...>::invoke, &closure);
}

}  // namespace dsn::emu

// --- Built-in variables -----------------------------------------------------------------------
#define threadIdx (*::dsn::emu::detail::current_thread_idx)
#define blockIdx (::dsn::emu::detail::current_block->block_idx)
#define blockDim (::dsn::emu::detail::current_block->block_dim)
#define gridDim (::dsn::emu::detail::current_block->grid_dim)
constexpr int warpSize = 32;

// --- Barriers and warp collectives ------------------------------------------------------------
inline void __syncthreads() {
  ::dsn::emu::detail::block_barrier(0, ::dsn::emu::detail::BlockReduce::none);
}
inline int __syncthreads_count(int predicate) {
  return ::dsn::emu::detail::block_barrier(predicate, ::dsn::emu::detail::BlockReduce::count);
}
inline int __syncthreads_and(int predicate) {
  return ::dsn::emu::detail::block_barrier(predicate, ::dsn::emu::detail::BlockReduce::all);
}
inline int __syncthreads_or(int predicate) {
  return ::dsn::emu::detail::block_barrier(predicate, ::dsn::emu::detail::BlockReduce::any);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::dsn::emu::detail::warp_collective(::dsn::emu::detail::WarpOp::sync, mask, 0, 0, warpSize);
}
inline unsigned __activemask() {
  return ::dsn::emu::detail::active_mask();
}

template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  using namespace ::dsn::emu::detail;
  return from_bits<T>(warp_collective(WarpOp::shfl, mask, to_bits(var), src_lane, width));
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  using namespace ::dsn::emu::detail;
  return from_bits<T>(warp_collective(WarpOp::shfl_up, mask, to_bits(var), int(delta), width));
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  using namespace ::dsn::emu::detail;
  return from_bits<T>(warp_collective(WarpOp::shfl_down, mask, to_bits(var), int(delta), width));
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  using namespace ::dsn::emu::detail;
  return from_bits<T>(warp_collective(WarpOp::shfl_xor, mask, to_bits(var), lane_mask, width));
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  using namespace ::dsn::emu::detail;
  return unsigned(warp_collective(WarpOp::ballot, mask, predicate != 0, 0, warpSize));
}
inline int __any_sync(unsigned mask, int predicate) {
  using namespace ::dsn::emu::detail;
  return int(warp_collective(WarpOp::any, mask, predicate != 0, 0, warpSize));
}
inline int __all_sync(unsigned mask, int predicate) {
  using namespace ::dsn::emu::detail;
  return int(warp_collective(WarpOp::all, mask, predicate != 0, 0, warpSize));
}

// --- Memory fences and atomics (relaxed, like CUDA's atomic functions) ---------------------------
inline void __threadfence() {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
inline void __threadfence_block() {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

template <typename T>
T __ldg(const T* pointer) {
  return *pointer;
}

namespace dsn::emu::detail {

// Applies update(old) atomically through compare-and-swap; returns the old value.
template <typename T, typename Update>
T atomic_update(T* address, Update update) {
  T expected;
  __atomic_load(address, &expected, __ATOMIC_RELAXED);
  T desired = update(expected);
  while (!__atomic_compare_exchange(address, &expected, &desired, true, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
    desired = update(expected);
  }
  return expected;
}

}  // namespace dsn::emu::detail

#define DSN_EMU_INTEGER_ATOMICS(T)                                                          \
  inline T atomicAdd(T* a, T v) {                                                           \
    return __atomic_fetch_add(a, v, __ATOMIC_RELAXED);                                      \
  }                                                                                         \
  inline T atomicSub(T* a, T v) {                                                           \
    return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED);                                      \
  }                                                                                         \
  inline T atomicAnd(T* a, T v) {                                                           \
    return __atomic_fetch_and(a, v, __ATOMIC_RELAXED);                                      \
  }                                                                                         \
  inline T atomicOr(T* a, T v) {                                                            \
    return __atomic_fetch_or(a, v, __ATOMIC_RELAXED);                                       \
  }                                                                                         \
  inline T atomicXor(T* a, T v) {                                                           \
    return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED);                                      \
  }                                                                                         \
  inline T atomicExch(T* a, T v) {                                                          \
    return __atomic_exchange_n(a, v, __ATOMIC_RELAXED);                                     \
  }                                                                                         \
  inline T atomicMax(T* a, T v) {                                                           \
    return ::dsn::emu::detail::atomic_update(a, [v](T old) { return old < v ? v : old; });  \
  }                                                                                         \
  inline T atomicMin(T* a, T v) {                                                           \
    return ::dsn::emu::detail::atomic_update(a, [v](T old) { return v < old ? v : old; });  \
  }                                                                                         \
  inline T atomicCAS(T* a, T compare, T v) {                                                \
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED); \
    return compare;                                                                         \
  }
DSN_EMU_INTEGER_ATOMICS(int)
DSN_EMU_INTEGER_ATOMICS(unsigned)
DSN_EMU_INTEGER_ATOMICS(unsigned long long)
#undef DSN_EMU_INTEGER_ATOMICS

inline long long atomicMax(long long* a, long long v) {
  return ::dsn::emu::detail::atomic_update(a, [v](long long old) { return old < v ? v : old; });
}
inline long long atomicMin(long long* a, long long v) {
  return ::dsn::emu::detail::atomic_update(a, [v](long long old) { return v < old ? v : old; });
}
inline float atomicAdd(float* a, float v) {
  return ::dsn::emu::detail::atomic_update(a, [v](float old) { return old + v; });
}
inline double atomicAdd(double* a, double v) {
  return ::dsn::emu::detail::atomic_update(a, [v](double old) { return old + v; });
}
inline float atomicExch(float* a, float v) {
  float old;
  __atomic_exchange(a, &v, &old, __ATOMIC_RELAXED);
  return old;
}
// atomicInc/atomicDec wrap at limit like CUDA's: ((old >= limit) ? 0 : old + 1).
inline unsigned atomicInc(unsigned* a, unsigned limit) {
  return ::dsn::emu::detail::atomic_update(
      a, [limit](unsigned old) { return old >= limit ? 0u : old + 1; });
}
inline unsigned atomicDec(unsigned* a, unsigned limit) {
  return ::dsn::emu::detail::atomic_update(
      a, [limit](unsigned old) { return (old == 0 || old > limit) ? limit : old - 1; });
}

// --- Math intrinsics. The fast forms are exact here; on a GPU they are approximate. ------------
inline float __expf(float x) {
  return std::exp(x);
}
inline float __logf(float x) {
  return std::log(x);
}
inline float __log2f(float x) {
  return std::log2(x);
}
inline float __powf(float x, float y) {
  return std::pow(x, y);
}
inline float __sinf(float x) {
  return std::sin(x);
}
inline float __cosf(float x) {
  return std::cos(x);
}
inline float __tanf(float x) {
  return std::tan(x);
}
inline float __fdividef(float x, float y) {
  return x / y;
}
inline float rsqrtf(float x) {
  return 1.0f / std::sqrt(x);
}
inline double rsqrt(double x) {
  return 1.0 / std::sqrt(x);
}
inline float __frsqrt_rn(float x) {
  return 1.0f / std::sqrt(x);
}
inline float __fsqrt_rn(float x) {
  return std::sqrt(x);
}
inline float __frcp_rn(float x) {
  return 1.0f / x;
}
inline float __fadd_rn(float x, float y) {
  return x + y;
}
inline float __fmul_rn(float x, float y) {
  return x * y;
}
inline float __fmaf_rn(float x, float y, float z) {
  return std::fma(x, y, z);
}
inline float __saturatef(float x) {
  return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f);
}
inline int __float2int_rn(float x) {
  return int(std::nearbyint(x));
}
inline int __float2int_rz(float x) {
  return int(std::trunc(x));
}
inline int __float2int_rd(float x) {
  return int(std::floor(x));
}
inline int __float2int_ru(float x) {
  return int(std::ceil(x));
}
inline unsigned __float2uint_rn(float x) {
  return unsigned(std::nearbyint(x));
}
inline float __int2float_rn(int x) {
  return float(x);
}
inline int __float_as_int(float x) {
  return std::bit_cast<int>(x);
}
inline unsigned __float_as_uint(float x) {
  return std::bit_cast<unsigned>(x);
}
inline float __int_as_float(int x) {
  return std::bit_cast<float>(x);
}
inline float __uint_as_float(unsigned x) {
  return std::bit_cast<float>(x);
}
inline int __popc(unsigned x) {
  return __builtin_popcount(x);
}
inline int __popcll(unsigned long long x) {
  return __builtin_popcountll(x);
}
inline int __clz(int x) {
  return x == 0 ? 32 : __builtin_clz(unsigned(x));
}
inline int __ffs(int x) {
  return __builtin_ffs(x);
}
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}

// CUDA's global min/max overloads. Non-template functions win over std::min/std::max in
// overload resolution, so `using namespace std` does not make calls ambiguous.
#define DSN_EMU_MIN_MAX(T) \
  inline T min(T a, T b) { \
    return b < a ? b : a;  \
  }                        \
  inline T max(T a, T b) { \
    return a < b ? b : a;  \
  }
DSN_EMU_MIN_MAX(int)
DSN_EMU_MIN_MAX(unsigned)
DSN_EMU_MIN_MAX(long long)
DSN_EMU_MIN_MAX(unsigned long long)
#undef DSN_EMU_MIN_MAX
inline float min(float a, float b) {
  return std::fmin(a, b);
}
inline float max(float a, float b) {
  return std::fmax(a, b);
}
inline double min(double a, double b) {
  return std::fmin(a, b);
}
inline double max(double a, double b) {
  return std::fmax(a, b);
}
inline unsigned min(int a, unsigned b) {
  return min(unsigned(a), b);
}
inline unsigned min(unsigned a, int b) {
  return min(a, unsigned(b));
}
inline unsigned max(int a, unsigned b) {
  return max(unsigned(a), b);
}
inline unsigned max(unsigned a, int b) {
  return max(a, unsigned(b));
}
