#include "kernels/cuda/backend.h"

#include <cstdlib>
#include <memory>
#include <mutex>

#include "engine/error.h"
#include "kernels/cuda/backend_impl.h"
#include "kernels/cuda/check.h"

namespace dsn::cuda {

#if !defined(DSN_DEVICE_EMULATION)
// Defined in vendor.cpp: the backend with cuDNN and cuBLAS in place of the hand-written kernels.
std::unique_ptr<Backend> make_vendor_backend();
#endif

CudaBackend::CudaBackend() {
  DSN_CUDA_CHECK(cudaSetDevice(0));
  cudaStream_t stream = nullptr;
  DSN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_ = stream;
}

CudaBackend::~CudaBackend() {
  DSN_CUDA_CHECK_LOG(cudaStreamSynchronize(stream_));
  DSN_CUDA_CHECK_LOG(cudaStreamDestroy(stream_));
}

std::string CudaBackend::name() const {
  return is_emulated() ? "cuda (emulated on the CPU)" : "cuda";
}

void CudaBackend::copy(void* dst, const void* src, std::size_t bytes) {
  DSN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::copy_to_host(void* host_dst, const void* src, std::size_t bytes) {
  DSN_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  DSN_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_from_host(void* dst, const void* host_src, std::size_t bytes) {
  // Synchronous: the host buffer may be freed as soon as this returns.
  DSN_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  DSN_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::synchronize() { DSN_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

KernelSource parse_kernel_source(const std::string& text) {
  if (text == "handwritten") return KernelSource::Handwritten;
  if (text == "vendor") return KernelSource::Vendor;
  fail(fmt::format("unknown CUDA kernel source '{}': use 'handwritten' or 'vendor' (cuDNN and "
                   "cuBLAS)", text));
}

KernelSource kernel_source_from_env() {
  const char* value = std::getenv("DSN_CUDA_KERNELS");
  if (value == nullptr || *value == '\0') return KernelSource::Handwritten;
  try {
    return parse_kernel_source(value);
  } catch (const Error& error) {
    fail(fmt::format("environment variable DSN_CUDA_KERNELS: {}; or unset it", error.what()));
  }
}

bool is_emulated() {
#if defined(DSN_DEVICE_EMULATION)
  return true;
#else
  return false;
#endif
}

Backend& install_backend(KernelSource source) {
  static std::mutex mutex;
  // Deliberately never destroyed. The CUDA runtime, and the emulation's allocation table, can be
  // torn down at exit before a static backend, whose destructor would then free device memory
  // through them (a crash in the emulation).
  static auto* installed = new std::unique_ptr<Backend>();
  std::lock_guard lock(mutex);
  if (source == KernelSource::Vendor) {
#if defined(DSN_DEVICE_EMULATION)
    fail("the vendor kernels (cuDNN, cuBLAS) need a GPU build; the device emulation runs the "
         "hand-written kernels only");
#else
    *installed = make_vendor_backend();
#endif
  } else {
    *installed = std::make_unique<CudaBackend>();
  }
  register_backend(installed->get());
  return **installed;
}

}  // namespace dsn::cuda
