// Error checks for CUDA runtime, cuBLAS and cuDNN calls. DSN_*_CHECK(call) throws dsn::Error
// naming the call text, the error name and string, and file:line; DSN_*_CHECK_LOG(call) only logs
// the same message through spdlog, for destructors and other places that must not throw.
// In the emulated build (DSN_DEVICE_EMULATION) cuBLAS and cuDNN do not exist, so their checks
// fail to compile where used, and CUDA errors carry the emulation's more detailed reason.
#pragma once

#include <string>

#include <spdlog/spdlog.h>

#include "engine/error.h"

#if defined(DSN_DEVICE_EMULATION)
#include "kernels/emu/runtime.h"
#else
#include <cuda_runtime.h>
#endif

namespace dsn::cuda::detail {

[[noreturn]] inline void throw_call_error(const char* call, const std::string& error,
                                          const char* file, int line) {
  throw Error(std::string(call) + " failed: " + error + " (" + file + ":" + std::to_string(line) +
              ")");
}

inline void log_call_error(const char* call, const std::string& error, const char* file, int line) {
  spdlog::error("{} failed: {} ({}:{})", call, error, file, line);
}

inline std::string cuda_error_text(cudaError_t status) {
  std::string text = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
#if defined(DSN_DEVICE_EMULATION)
  if (!::dsn::emu::last_error_detail().empty()) {
    text += " (" + ::dsn::emu::last_error_detail() + ")";
  }
#endif
  return text;
}

}  // namespace dsn::cuda::detail

// Evaluates call once; on a status other than success, passes the call text and
// text_of(status) to handler.
#define DSN_DETAIL_CHECK_STATUS(call, success, text_of, handler) \
  do {                                                           \
    const auto dsn_status_ = (call);                             \
    if (dsn_status_ != (success)) [[unlikely]] {                 \
      handler(#call, text_of(dsn_status_), __FILE__, __LINE__);  \
    }                                                            \
  } while (0)

#define DSN_CUDA_CHECK(call)                                                       \
  DSN_DETAIL_CHECK_STATUS(call, cudaSuccess, ::dsn::cuda::detail::cuda_error_text, \
                          ::dsn::cuda::detail::throw_call_error)
#define DSN_CUDA_CHECK_LOG(call)                                                   \
  DSN_DETAIL_CHECK_STATUS(call, cudaSuccess, ::dsn::cuda::detail::cuda_error_text, \
                          ::dsn::cuda::detail::log_call_error)

#if defined(DSN_DEVICE_EMULATION)
#define DSN_CUBLAS_CHECK(call) \
  static_assert(false, "cuBLAS is not available in the device emulation build")
#define DSN_CUBLAS_CHECK_LOG(call) DSN_CUBLAS_CHECK(call)
#define DSN_CUDNN_CHECK(call) \
  static_assert(false, "cuDNN is not available in the device emulation build")
#define DSN_CUDNN_CHECK_LOG(call) DSN_CUDNN_CHECK(call)
#else
// Callers include <cublas_v2.h> or <cudnn.h> themselves; these macros name their functions only.
#define DSN_DETAIL_CUBLAS_TEXT(status) \
  (std::string(cublasGetStatusName(status)) + ": " + cublasGetStatusString(status))
#define DSN_DETAIL_CUDNN_TEXT(status) std::string(cudnnGetErrorString(status))
#define DSN_CUBLAS_CHECK(call)                                                 \
  DSN_DETAIL_CHECK_STATUS(call, CUBLAS_STATUS_SUCCESS, DSN_DETAIL_CUBLAS_TEXT, \
                          ::dsn::cuda::detail::throw_call_error)
#define DSN_CUBLAS_CHECK_LOG(call)                                             \
  DSN_DETAIL_CHECK_STATUS(call, CUBLAS_STATUS_SUCCESS, DSN_DETAIL_CUBLAS_TEXT, \
                          ::dsn::cuda::detail::log_call_error)
#define DSN_CUDNN_CHECK(call)                                                \
  DSN_DETAIL_CHECK_STATUS(call, CUDNN_STATUS_SUCCESS, DSN_DETAIL_CUDNN_TEXT, \
                          ::dsn::cuda::detail::throw_call_error)
#define DSN_CUDNN_CHECK_LOG(call)                                            \
  DSN_DETAIL_CHECK_STATUS(call, CUDNN_STATUS_SUCCESS, DSN_DETAIL_CUDNN_TEXT, \
                          ::dsn::cuda::detail::log_call_error)
#endif
