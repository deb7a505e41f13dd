// The vendor baselines of dsn_bench_cuda: cuDNN convolution, batch norm and softmax, and cuBLAS
// SGEMM, in strict FP32. They call the libraries directly, not through the engine's backend,
// with descriptors built before timing so that only the library call is timed.
//
// Strict FP32 means no TF32: convolution descriptors carry CUDNN_FMA_MATH, algorithms that cuDNN
// reports with a tensor-op math type are skipped, and cuBLAS runs in CUBLAS_PEDANTIC_MATH.
// Each convolution shape and direction uses the fastest algorithm that
// cudnnFind*AlgorithmEx measures with a workspace of at most kFindWorkspaceBytes, including
// non-deterministic ones (the hand-written backward-weight kernel is deterministic).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/gemm.h"

// cuDNN's descriptor type, declared here so that this header does not include cudnn.h.
struct cudnnTensorStruct;

namespace dsn::bench::vendor {

inline constexpr std::size_t kFindWorkspaceBytes = std::size_t{2} << 30;

// Creates the cuDNN and cuBLAS handles on the benchmark stream and the shared workspace. Call
// after init_device().
void init();
void shutdown();

// Adds the cuDNN and cuBLAS versions and the math settings to the benchmark context.
void add_context();

enum class ConvDirection {
  Forward,         // operands (x, w) -> y
  BackwardData,    // operands (dy, w) -> dx
  BackwardFilter,  // operands (x, dy) -> dw
};

// One convolution direction through cuDNN, with the operand order of the dsn::cuda launchers.
class Convolution {
 public:
  Convolution(const Conv2dShape& shape, ConvDirection direction);
  ~Convolution();
  Convolution(const Convolution&) = delete;
  Convolution& operator=(const Convolution&) = delete;

  // Chooses the algorithm (measured once per shape and direction in a process, then cached),
  // running it on these buffers. Throws dsn::Error when no strict-FP32 algorithm succeeds.
  void prepare(const float* first, const float* second, float* out);
  // Enqueues the convolution on the benchmark stream. Call prepare() first.
  void run(const float* first, const float* second, float* out);
  // The chosen algorithm, its workspace and determinism, for the benchmark label.
  std::string label() const;

 private:
  struct Descriptors;
  std::unique_ptr<Descriptors> descriptors_;
  Conv2dShape shape_;
  ConvDirection direction_;
  int algorithm_ = -1;
  std::size_t workspace_bytes_ = 0;
  bool deterministic_ = false;
};

// cudnnBatchNormalization* in spatial mode on x viewed as (N, C, H * W, 1).
class BatchNorm {
 public:
  explicit BatchNorm(const BatchNormShape& shape);
  ~BatchNorm();
  BatchNorm(const BatchNorm&) = delete;
  BatchNorm& operator=(const BatchNorm&) = delete;

  void forward_train(const float* x, const float* gamma, const float* beta, float* y,
                     float* save_mean, float* save_inv_std, float* running_mean,
                     float* running_var);
  void forward_inference(const float* x, const float* gamma, const float* beta,
                         const float* running_mean, const float* running_var, float* y);
  void backward_train(const float* x, const float* dy, const float* gamma,
                      const float* save_mean, const float* save_inv_std, float* dx,
                      float* dgamma, float* dbeta);

 private:
  struct Descriptors;
  std::unique_ptr<Descriptors> descriptors_;
  BatchNormShape shape_;
};

// cudnnSoftmaxForward / Backward, CUDNN_SOFTMAX_ACCURATE over each row of (rows, classes).
class Softmax {
 public:
  Softmax(std::int64_t rows, std::int64_t classes);
  ~Softmax();
  Softmax(const Softmax&) = delete;
  Softmax& operator=(const Softmax&) = delete;

  void forward(const float* x, float* y);
  void backward(const float* y, const float* dy, float* dx);

 private:
  cudnnTensorStruct* descriptor_ = nullptr;  // cudnnTensorDescriptor_t
};

// cublasSgemm on the row-major problem of `shape`.
void gemm(const GemmShape& shape, const float* a, const float* b, float* c);

}  // namespace dsn::bench::vendor
