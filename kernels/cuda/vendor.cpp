// The vendor baseline: cuDNN convolution (forward, backward-data, backward-weight and bias),
// batch norm (training forward and backward, inference forward) and softmax, and cuBLAS GEMM,
// in place of the hand-written kernels, so one process can compare both. Pooling, the fused
// cross-entropy and the element-wise ops stay hand-written: cuDNN has no Caffe ceil rounding and
// its max-pool backward needs the input and output instead of the argmax the engine keeps.
//
// Math is strict FP32: cuDNN runs with CUDNN_FMA_MATH and cuBLAS with CUBLAS_PEDANTIC_MATH, so
// neither uses TF32 tensor cores. Convolution algorithms are chosen per shape by
// cudnnFind*AlgorithmEx (timing every engine once) and cached.
#include <cublas_v2.h>
#include <cudnn.h>

#include <map>
#include <memory>
#include <tuple>

#include <spdlog/spdlog.h>

#include "engine/error.h"
#include "kernels/cuda/backend_impl.h"
#include "kernels/cuda/check.h"

namespace dsn::cuda {
namespace {

// RAII for cuDNN descriptors.
template <typename T, cudnnStatus_t (*Destroy)(T)>
struct Descriptor {
  T handle = nullptr;
  Descriptor() = default;
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  ~Descriptor() {
    if (handle) DSN_CUDNN_CHECK_LOG(Destroy(handle));
  }
};

struct TensorDesc : Descriptor<cudnnTensorDescriptor_t, cudnnDestroyTensorDescriptor> {
  TensorDesc(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
    DSN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&handle));
    DSN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(handle, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                               int(n), int(c), int(h), int(w)));
  }
};

struct FilterDesc : Descriptor<cudnnFilterDescriptor_t, cudnnDestroyFilterDescriptor> {
  explicit FilterDesc(const Conv2dShape& s) {
    DSN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&handle));
    DSN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(handle, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                               int(s.k), int(s.c), int(s.r), int(s.s)));
  }
};

struct ConvDesc : Descriptor<cudnnConvolutionDescriptor_t, cudnnDestroyConvolutionDescriptor> {
  explicit ConvDesc(const Conv2dShape& s) {
    DSN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&handle));
    DSN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(handle, int(s.pad_h), int(s.pad_w),
                                                    int(s.stride_h), int(s.stride_w), 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DSN_CUDNN_CHECK(cudnnSetConvolutionMathType(handle, CUDNN_FMA_MATH));
  }
};

// The descriptors of one convolution shape.
struct ConvDescriptors {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  explicit ConvDescriptors(const Conv2dShape& s)
      : x(s.n, s.c, s.h, s.w), y(s.n, s.k, s.out_h(), s.out_w()), w(s), conv(s) {}
};

using ShapeKey = std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                            std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                            std::int64_t, std::int64_t>;

ShapeKey key_of(const Conv2dShape& s) {
  return {s.n, s.c, s.h, s.w, s.k, s.r, s.s, s.stride_h, s.stride_w, s.pad_h, s.pad_w};
}

// Device scratch memory from the caching allocator, returned on scope exit.
class Scratch {
 public:
  Scratch(Allocator& allocator, std::size_t bytes) : allocator_(allocator), bytes_(bytes) {
    if (bytes_ > 0) data_ = allocator_.allocate(bytes_);
  }
  ~Scratch() {
    if (data_) allocator_.deallocate(data_, bytes_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return data_; }
  std::size_t bytes() const { return bytes_; }

 private:
  Allocator& allocator_;
  std::size_t bytes_;
  void* data_ = nullptr;
};

// Upper bound on the workspace offered to cudnnFind, small next to an H200's memory. NOTE: that
// 1 GiB admits every engine on the three networks' layers at batch 16 is an estimate, not yet
// checked on a GPU; an engine needing more is skipped by cudnnFind, not an error.
constexpr std::size_t kFindWorkspaceBytes = std::size_t{1} << 30;

class VendorBackend final : public CudaBackend {
 public:
  VendorBackend() {
    DSN_CUDNN_CHECK(cudnnCreate(&cudnn_));
    DSN_CUDNN_CHECK(cudnnSetStream(cudnn_, reinterpret_cast<cudaStream_t>(stream_)));
    DSN_CUBLAS_CHECK(cublasCreate(&cublas_));
    DSN_CUBLAS_CHECK(cublasSetStream(cublas_, reinterpret_cast<cudaStream_t>(stream_)));
    DSN_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_PEDANTIC_MATH));
    spdlog::info("CUDA backend: cuDNN {} and cuBLAS in strict FP32 (no TF32) for convolution, "
                 "batch norm, softmax and GEMM; hand-written kernels for the rest",
                 cudnnGetVersion());
  }
  ~VendorBackend() override {
    DSN_CUDA_CHECK_LOG(cudaStreamSynchronize(stream_));
    DSN_CUBLAS_CHECK_LOG(cublasDestroy(cublas_));
    DSN_CUDNN_CHECK_LOG(cudnnDestroy(cudnn_));
  }

  std::string name() const override { return "cuda (cuDNN and cuBLAS baseline)"; }

  void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                      float* y, bool relu) override {
    validate(s);
    ConvDescriptors d(s);
    // y is overwritten by the timing runs, which is fine: the real call follows.
    const auto& algo = cached_algorithm(
        forward_algos_, s, "forward", [&](Scratch& search, int* count, auto* result) {
          DSN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
              cudnn_, d.x.handle, x, d.w.handle, w, d.conv.handle, d.y.handle, y, 1, count,
              result, search.get(), search.bytes()));
        });
    Scratch workspace(allocator_, algo.memory);
    const float one = 1.0f, zero = 0.0f;
    DSN_CUDNN_CHECK(cudnnConvolutionForward(cudnn_, &one, d.x.handle, x, d.w.handle, w,
                                            d.conv.handle, algo.algo, workspace.get(),
                                            workspace.bytes(), &zero, d.y.handle, y));
    if (bias != nullptr) {
      TensorDesc bias_desc(1, s.k, 1, 1);
      DSN_CUDNN_CHECK(cudnnAddTensor(cudnn_, &one, bias_desc.handle, bias, &one, d.y.handle, y));
    }
    if (relu) relu_forward(s.n * s.k * s.out_h() * s.out_w(), y, y);
  }

  void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w,
                            float* dx) override {
    validate(s);
    ConvDescriptors d(s);
    const auto& algo = cached_algorithm(
        data_algos_, s, "backward-data", [&](Scratch& search, int* count, auto* result) {
          DSN_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
              cudnn_, d.w.handle, w, d.y.handle, dy, d.conv.handle, d.x.handle, dx, 1, count,
              result, search.get(), search.bytes()));
        });
    Scratch workspace(allocator_, algo.memory);
    const float one = 1.0f, zero = 0.0f;
    DSN_CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn_, &one, d.w.handle, w, d.y.handle, dy,
                                                 d.conv.handle, algo.algo,
                                                 workspace.get(), workspace.bytes(), &zero,
                                                 d.x.handle, dx));
  }

  void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                              float* dbias) override {
    validate(s);
    ConvDescriptors d(s);
    const auto& algo = cached_algorithm(
        filter_algos_, s, "backward-filter", [&](Scratch& search, int* count, auto* result) {
          DSN_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
              cudnn_, d.x.handle, x, d.y.handle, dy, d.conv.handle, d.w.handle, dw, 1, count,
              result, search.get(), search.bytes()));
        });
    Scratch workspace(allocator_, algo.memory);
    const float one = 1.0f, zero = 0.0f;
    DSN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn_, &one, d.x.handle, x, d.y.handle, dy,
                                                   d.conv.handle, algo.algo,
                                                   workspace.get(), workspace.bytes(), &zero,
                                                   d.w.handle, dw));
    if (dbias != nullptr) {
      TensorDesc bias_desc(1, s.k, 1, 1);
      DSN_CUDNN_CHECK(cudnnConvolutionBackwardBias(cudnn_, &one, d.y.handle, dy, &zero,
                                                   bias_desc.handle, dbias));
    }
  }

  void batch_norm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                                const float* beta, float* y, float* save_mean,
                                float* save_inv_std, float* running_mean,
                                float* running_var) override {
    check_eps(s);
    TensorDesc data(s.n, s.c, s.hw, 1), channel(1, s.c, 1, 1);
    const float one = 1.0f, zero = 0.0f;
    DSN_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
        cudnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, data.handle, x, data.handle, y,
        channel.handle, gamma, beta, s.momentum, running_mean, running_var, s.eps, save_mean,
        save_inv_std));
  }

  void batch_norm_forward_inference(const BatchNormShape& s, const float* x, const float* gamma,
                                    const float* beta, const float* running_mean,
                                    const float* running_var, float* y) override {
    check_eps(s);
    TensorDesc data(s.n, s.c, s.hw, 1), channel(1, s.c, 1, 1);
    const float one = 1.0f, zero = 0.0f;
    DSN_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
        cudnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, data.handle, x, data.handle, y,
        channel.handle, gamma, beta, running_mean, running_var, s.eps));
  }

  void batch_norm_backward_train(const BatchNormShape& s, const float* x, const float* dy,
                                 const float* gamma, const float* save_mean,
                                 const float* save_inv_std, float* dx, float* dgamma,
                                 float* dbeta) override {
    check_eps(s);
    TensorDesc data(s.n, s.c, s.hw, 1), channel(1, s.c, 1, 1);
    // cuDNN always writes both parameter gradients.
    Scratch spare(allocator_, (dgamma && dbeta) ? 0 : 2 * std::size_t(s.c) * sizeof(float));
    float* gamma_grad = dgamma ? dgamma : static_cast<float*>(spare.get());
    float* beta_grad = dbeta ? dbeta : static_cast<float*>(spare.get()) + s.c;
    const float one = 1.0f, zero = 0.0f;
    DSN_CUDNN_CHECK(cudnnBatchNormalizationBackward(
        cudnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, data.handle, x, data.handle,
        dy, data.handle, dx, channel.handle, gamma, gamma_grad, beta_grad, s.eps, save_mean,
        save_inv_std));
  }

  void softmax_forward(std::int64_t rows, std::int64_t classes, const float* x,
                       float* y) override {
    TensorDesc desc(rows, classes, 1, 1);
    const float one = 1.0f, zero = 0.0f;
    DSN_CUDNN_CHECK(cudnnSoftmaxForward(cudnn_, CUDNN_SOFTMAX_ACCURATE,
                                        CUDNN_SOFTMAX_MODE_INSTANCE, &one, desc.handle, x, &zero,
                                        desc.handle, y));
  }

  void softmax_backward(std::int64_t rows, std::int64_t classes, const float* y,
                        const float* dy, float* dx) override {
    TensorDesc desc(rows, classes, 1, 1);
    const float one = 1.0f, zero = 0.0f;
    DSN_CUDNN_CHECK(cudnnSoftmaxBackward(cudnn_, CUDNN_SOFTMAX_ACCURATE,
                                         CUDNN_SOFTMAX_MODE_INSTANCE, &one, desc.handle, y,
                                         desc.handle, dy, &zero, desc.handle, dx));
  }

  void gemm(const GemmShape& s, const float* a, const float* b, float* c) override {
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
    const cublasOperation_t op_a = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    DSN_CUBLAS_CHECK(cublasSgemm(cublas_, op_b, op_a, int(s.n), int(s.m), int(s.k), &s.alpha, b,
                                 int(s.lead_b()), a, int(s.lead_a()), &s.beta, c,
                                 int(s.lead_c())));
  }

 private:
  static void check_eps(const BatchNormShape& s) {
    DSN_CHECK(s.eps >= CUDNN_BN_MIN_EPSILON, "cuDNN batch norm needs eps >= {}, got {}",
              CUDNN_BN_MIN_EPSILON, s.eps);
  }

  // Returns the cached best algorithm of `cache` for shape s, timing every cuDNN engine with
  // `find(search_workspace, &count, &result)` on first use of the shape.
  template <typename Perf, typename Find>
  const Perf& cached_algorithm(std::map<ShapeKey, Perf>& cache, const Conv2dShape& s,
                               const char* direction, Find find) {
    auto found = cache.find(key_of(s));
    if (found != cache.end()) return found->second;
    Scratch search(allocator_, kFindWorkspaceBytes);
    int count = 0;
    Perf result{};
    find(search, &count, &result);
    DSN_CHECK(count > 0 && result.status == CUDNN_STATUS_SUCCESS,
              "cuDNN found no {} algorithm for the convolution of input ({}, {}, {}, {}) with "
              "{}x{} filters to {} channels",
              direction, s.n, s.c, s.h, s.w, s.r, s.s, s.k);
    return cache.emplace(key_of(s), result).first->second;
  }

  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::map<ShapeKey, cudnnConvolutionFwdAlgoPerf_t> forward_algos_;
  std::map<ShapeKey, cudnnConvolutionBwdDataAlgoPerf_t> data_algos_;
  std::map<ShapeKey, cudnnConvolutionBwdFilterAlgoPerf_t> filter_algos_;
};

}  // namespace

std::unique_ptr<Backend> make_vendor_backend() { return std::make_unique<VendorBackend>(); }

}  // namespace dsn::cuda
