// Device memory for kernel tests: a typed buffer filled from and copied back to host vectors.
// Works against the real CUDA runtime and the device emulation alike.
#pragma once

#include <cstddef>
#include <vector>

#include "kernels/cuda/compat.cuh"

namespace dsn::test {

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t count) : count_(count) {
    DSN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), bytes()));
  }
  explicit DeviceBuffer(const std::vector<T>& values) : DeviceBuffer(values.size()) {
    DSN_CUDA_CHECK(cudaMemcpy(data_, values.data(), bytes(), cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { DSN_CUDA_CHECK_LOG(cudaFree(data_)); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() { return data_; }
  const T* get() const { return data_; }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }

  // Waits for the default stream and copies the contents back.
  std::vector<T> to_host() const {
    std::vector<T> values(count_);
    DSN_CUDA_CHECK(cudaDeviceSynchronize());
    DSN_CUDA_CHECK(cudaMemcpy(values.data(), data_, bytes(), cudaMemcpyDeviceToHost));
    return values;
  }

 private:
  T* data_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace dsn::test
