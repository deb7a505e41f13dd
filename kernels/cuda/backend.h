// The CUDA backend: the engine's Backend interface over the hand-written kernels in
// kernels/cuda/, device memory from a caching allocator, and one explicit stream. The same
// source builds against the real runtime (target dsn_cuda) and the device emulation
// (dsn_cuda_emu), where it runs on the CPU for tests.
#pragma once

#include <memory>
#include <string>

#include "engine/backend.h"

namespace dsn::cuda {

// The implementation of the ops that have a vendor equivalent: cuDNN for convolution,
// batch norm (except the inference-mode backward) and softmax, cuBLAS for GEMM, both in strict
// FP32. Pooling stays hand-written in both (see vendor.cpp). The vendor libraries exist in the
// nvcc build only.
enum class KernelSource { Handwritten, Vendor };

// Parses "handwritten" or "vendor"; throws dsn::Error naming the accepted values otherwise.
KernelSource parse_kernel_source(const std::string& text);

// Returns the source named by the DSN_CUDA_KERNELS environment variable, Handwritten when unset.
KernelSource kernel_source_from_env();

// Creates the backend for device 0 and registers it for Device::cuda(). Later calls replace
// the registered backend; tensors allocated by an earlier one must be gone by then.
Backend& install_backend(KernelSource source = kernel_source_from_env());

// True in the build that runs the kernels on the CPU device emulation.
bool is_emulated();

}  // namespace dsn::cuda
