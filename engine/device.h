// Devices and element types of tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace dsn {

enum class DeviceType : std::uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  friend bool operator==(const Device&, const Device&) = default;
};

std::string to_string(Device device);

// Element types. Only Float32 and Int32 have kernels today; Float16 and BFloat16 are reserved so
// that storage, checkpoints and kernels can add them without changing the tensor interface.
enum class DType : std::uint8_t { Float32, Int32, Float16, BFloat16 };

std::size_t element_size(DType dtype);
std::string to_string(DType dtype);

}  // namespace dsn
