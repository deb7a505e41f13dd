// The timing harness of dsn_bench_cuda: device buffers filled with random values, one stream,
// CUDA-event timing of each iteration after an L2 flush, and the run's context (GPU, driver,
// library versions) for the benchmark output.
//
// Every iteration writes a buffer of twice the device's L2 size with cudaMemsetAsync, then
// times the operation alone between two events on the same stream. So every operation starts
// with a cold L2 and reads its inputs from device memory, the worst case for a layer inside a
// training step. The flush also keeps the GPU busy while the host enqueues the operation, so
// the host's launch latency stays out of the time unless the operation is shorter than it.
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>

#include "kernels/cuda/check.h"

namespace dsn::bench {

// Device memory for `count` elements of T, freed on destruction.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(std::int64_t count) : count_(count) {
    if (count_ > 0) DSN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), bytes()));
  }
  ~DeviceArray() {
    if (data_ != nullptr) DSN_CUDA_CHECK_LOG(cudaFree(data_));
  }
  DeviceArray(DeviceArray&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceArray& operator=(DeviceArray&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return data_; }
  std::int64_t count() const { return count_; }
  std::size_t bytes() const { return static_cast<std::size_t>(count_) * sizeof(T); }

 private:
  T* data_ = nullptr;
  std::int64_t count_ = 0;
};

// Value ranges of random device data.
enum class Fill {
  Symmetric,  // uniform in [-1, 1)
  Positive,   // uniform in [0.5, 1.5): variances, scales
};

// Process-wide device state, created by init_device() and destroyed by shutdown_device().
struct DeviceState {
  cudaDeviceProp properties{};
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  DeviceArray<unsigned char> flush;  // 2 x L2 bytes, written before each timed iteration
  DeviceArray<float> symmetric_pattern, positive_pattern;
};

// Selects device 0 and creates the stream, events, flush buffer and random patterns. Throws
// dsn::Error when no device is usable.
void init_device();
void shutdown_device();
DeviceState& device();

// Adds the GPU, its memory and L2 sizes, the driver and runtime versions and the flush size to
// the benchmark context.
void add_device_context();

// Returns `count` floats of device memory containing random values. The values repeat every
// 2^24 elements, which no benchmark can exploit through caches because the L2 is flushed.
DeviceArray<float> random_device_floats(std::int64_t count, Fill fill = Fill::Symmetric);

// Fills `count` floats at `data` with random values, enqueued on the benchmark stream.
void fill_random(float* data, std::int64_t count, Fill fill = Fill::Symmetric);

// Copies host values to new device memory (synchronously).
template <typename T>
DeviceArray<T> to_device(const T* values, std::int64_t count) {
  DeviceArray<T> array(count);
  if (count > 0) {
    DSN_CUDA_CHECK(cudaMemcpy(array.get(), values, array.bytes(), cudaMemcpyHostToDevice));
  }
  return array;
}

// Writes the L2 flush buffer on the benchmark stream.
void flush_l2();

// Runs `operation` (which enqueues work on the benchmark stream) twice as a warm-up, then once
// per iteration between two events after an L2 flush, reporting the event time as the
// iteration's manual time. An exception from the operation, a CUDA error, cuDNN or cuBLAS
// failure marks the benchmark as failed with its message instead of ending the program.
template <typename Operation>
void time_on_device(benchmark::State& state, Operation&& operation) {
  DeviceState& d = device();
  try {
    operation();
    operation();
    DSN_CUDA_CHECK(cudaStreamSynchronize(d.stream));
    for (auto _ : state) {
      flush_l2();
      DSN_CUDA_CHECK(cudaEventRecord(d.start, d.stream));
      operation();
      DSN_CUDA_CHECK(cudaEventRecord(d.stop, d.stream));
      DSN_CUDA_CHECK(cudaEventSynchronize(d.stop));
      float milliseconds = 0.0f;
      DSN_CUDA_CHECK(cudaEventElapsedTime(&milliseconds, d.start, d.stop));
      state.SetIterationTime(double(milliseconds) * 1e-3);
    }
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
    // Leave the stream idle, so the next benchmark starts clean; a sticky error shows there.
    DSN_CUDA_CHECK_LOG(cudaStreamSynchronize(d.stream));
  }
}

}  // namespace dsn::bench
