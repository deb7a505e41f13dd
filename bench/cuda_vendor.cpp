#include "bench/cuda_vendor.h"

#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include <array>
#include <map>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "bench/cuda_harness.h"
#include "engine/error.h"
#include "kernels/cuda/check.h"

namespace dsn::bench::vendor {
namespace {

struct Handles {
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
  DeviceArray<unsigned char> workspace;
};

std::unique_ptr<Handles> handles;

Handles& get() {
  DSN_CHECK(handles != nullptr, "dsn_bench_cuda: vendor::init() was not called");
  return *handles;
}

// The algorithm that cudnnFind chose for one shape and direction.
struct Choice {
  int algorithm = 0;
  std::size_t workspace_bytes = 0;
  bool deterministic = false;
};

using ChoiceKey = std::tuple<int, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                             std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                             std::int64_t, std::int64_t, std::int64_t>;

std::map<ChoiceKey, Choice>& choices() {
  static std::map<ChoiceKey, Choice> cache;
  return cache;
}

ChoiceKey key_of(const Conv2dShape& s, ConvDirection direction) {
  return {int(direction), s.n, s.c, s.h, s.w, s.k, s.r, s.s, s.stride_h, s.stride_w, s.pad_h,
          s.pad_w};
}

// cuDNN 9 algorithm names, indexed by the enum values of cudnn_cnn.h.
constexpr std::array<const char*, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> kForwardNames = {
    "implicit_gemm", "implicit_precomp_gemm", "gemm",     "direct",
    "fft",           "fft_tiling",            "winograd", "winograd_nonfused"};
constexpr std::array<const char*, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT> kDataNames = {
    "algo_0", "algo_1", "fft", "fft_tiling", "winograd", "winograd_nonfused"};
constexpr std::array<const char*, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT> kFilterNames = {
    "algo_0", "algo_1", "fft", "algo_3", "winograd", "winograd_nonfused", "fft_tiling"};

bool is_tensor_op(cudnnMathType_t math) {
  return math == CUDNN_TENSOR_OP_MATH || math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// Returns the fastest successful strict-FP32 result of a cudnnFind call, whose results come
// sorted by time. Throws dsn::Error when there is none.
template <typename Perf>
Choice fastest(const std::vector<Perf>& results, int count, const char* direction) {
  for (int i = 0; i < count; ++i) {
    const Perf& perf = results[static_cast<std::size_t>(i)];
    if (perf.status != CUDNN_STATUS_SUCCESS || is_tensor_op(perf.mathType)) continue;
    return Choice{int(perf.algo), perf.memory, perf.determinism == CUDNN_DETERMINISTIC};
  }
  fail(fmt::format("cuDNN found no strict-FP32 {} algorithm within a {} MiB workspace", direction,
                   kFindWorkspaceBytes >> 20));
}

constexpr float kOne = 1.0f, kZero = 0.0f;

}  // namespace

void init() {
  if (handles) return;
  auto created = std::make_unique<Handles>();
  DSN_CUDNN_CHECK(cudnnCreate(&created->cudnn));
  DSN_CUDNN_CHECK(cudnnSetStream(created->cudnn, device().stream));
  DSN_CUBLAS_CHECK(cublasCreate(&created->cublas));
  DSN_CUBLAS_CHECK(cublasSetStream(created->cublas, device().stream));
  DSN_CUBLAS_CHECK(cublasSetMathMode(created->cublas, CUBLAS_PEDANTIC_MATH));
  created->workspace = DeviceArray<unsigned char>(std::int64_t(kFindWorkspaceBytes));
  handles = std::move(created);
}

void shutdown() {
  if (!handles) return;
  DSN_CUBLAS_CHECK_LOG(cublasDestroy(handles->cublas));
  DSN_CUDNN_CHECK_LOG(cudnnDestroy(handles->cudnn));
  handles.reset();
}

void add_context() {
  const std::size_t cudnn = cudnnGetVersion();
  int cublas = 0;
  DSN_CUBLAS_CHECK(cublasGetVersion(get().cublas, &cublas));
  benchmark::AddCustomContext(
      "cudnn", fmt::format("{}.{}.{}", cudnn / 10000, cudnn % 10000 / 100, cudnn % 100));
  benchmark::AddCustomContext(
      "cublas", fmt::format("{}.{}.{}", cublas / 10000, cublas % 10000 / 100, cublas % 100));
  benchmark::AddCustomContext(
      "vendor_math", "strict FP32, no TF32: cuDNN convolutions with CUDNN_FMA_MATH (tensor-op "
                     "results of cudnnFind skipped), cuBLAS with CUBLAS_PEDANTIC_MATH");
  benchmark::AddCustomContext(
      "vendor_algorithm",
      fmt::format("fastest result of cudnnFind*AlgorithmEx per shape and direction, workspace "
                  "at most {} MiB, non-deterministic algorithms allowed",
                  kFindWorkspaceBytes >> 20));
}

// --- Convolution ---------------------------------------------------------------------------

struct Convolution::Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;

  ~Descriptors() {
    if (conv) DSN_CUDNN_CHECK_LOG(cudnnDestroyConvolutionDescriptor(conv));
    if (w) DSN_CUDNN_CHECK_LOG(cudnnDestroyFilterDescriptor(w));
    if (y) DSN_CUDNN_CHECK_LOG(cudnnDestroyTensorDescriptor(y));
    if (x) DSN_CUDNN_CHECK_LOG(cudnnDestroyTensorDescriptor(x));
  }
};

Convolution::Convolution(const Conv2dShape& s, ConvDirection direction)
    : descriptors_(std::make_unique<Descriptors>()), shape_(s), direction_(direction) {
  validate(s);
  Descriptors& d = *descriptors_;
  DSN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.x));
  DSN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(s.n),
                                             int(s.c), int(s.h), int(s.w)));
  DSN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.y));
  DSN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(s.n),
                                             int(s.k), int(s.out_h()), int(s.out_w())));
  DSN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d.w));
  DSN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(s.k),
                                             int(s.c), int(s.r), int(s.s)));
  DSN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d.conv));
  DSN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d.conv, int(s.pad_h), int(s.pad_w),
                                                  int(s.stride_h), int(s.stride_w), 1, 1,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  DSN_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, CUDNN_FMA_MATH));
}

Convolution::~Convolution() = default;

void Convolution::prepare(const float* first, const float* second, float* out) {
  const ChoiceKey key = key_of(shape_, direction_);
  auto found = choices().find(key);
  if (found == choices().end()) {
    Handles& h = get();
    Descriptors& d = *descriptors_;
    int count = 0;
    Choice choice;
    switch (direction_) {
      case ConvDirection::Forward: {
        std::vector<cudnnConvolutionFwdAlgoPerf_t> results(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
        DSN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
            h.cudnn, d.x, first, d.w, second, d.conv, d.y, out, int(results.size()), &count,
            results.data(), h.workspace.get(), h.workspace.bytes()));
        choice = fastest(results, count, "forward");
        break;
      }
      case ConvDirection::BackwardData: {
        std::vector<cudnnConvolutionBwdDataAlgoPerf_t> results(
            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
        DSN_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
            h.cudnn, d.w, second, d.y, first, d.conv, d.x, out, int(results.size()), &count,
            results.data(), h.workspace.get(), h.workspace.bytes()));
        choice = fastest(results, count, "backward-data");
        break;
      }
      case ConvDirection::BackwardFilter: {
        std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> results(
            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
        DSN_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
            h.cudnn, d.x, first, d.y, second, d.conv, d.w, out, int(results.size()), &count,
            results.data(), h.workspace.get(), h.workspace.bytes()));
        choice = fastest(results, count, "backward-filter");
        break;
      }
    }
    found = choices().emplace(key, choice).first;
  }
  algorithm_ = found->second.algorithm;
  workspace_bytes_ = found->second.workspace_bytes;
  deterministic_ = found->second.deterministic;
}

void Convolution::run(const float* first, const float* second, float* out) {
  DSN_CHECK(algorithm_ >= 0, "vendor::Convolution::run called before prepare()");
  Handles& h = get();
  Descriptors& d = *descriptors_;
  void* workspace = h.workspace.get();
  switch (direction_) {
    case ConvDirection::Forward:
      DSN_CUDNN_CHECK(cudnnConvolutionForward(
          h.cudnn, &kOne, d.x, first, d.w, second, d.conv,
          cudnnConvolutionFwdAlgo_t(algorithm_), workspace, workspace_bytes_, &kZero, d.y, out));
      break;
    case ConvDirection::BackwardData:
      DSN_CUDNN_CHECK(cudnnConvolutionBackwardData(
          h.cudnn, &kOne, d.w, second, d.y, first, d.conv,
          cudnnConvolutionBwdDataAlgo_t(algorithm_), workspace, workspace_bytes_, &kZero, d.x,
          out));
      break;
    case ConvDirection::BackwardFilter:
      DSN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
          h.cudnn, &kOne, d.x, first, d.y, second, d.conv,
          cudnnConvolutionBwdFilterAlgo_t(algorithm_), workspace, workspace_bytes_, &kZero, d.w,
          out));
      break;
  }
}

std::string Convolution::label() const {
  const char* name = "unknown";
  const auto pick = [&](const auto& names) {
    if (algorithm_ >= 0 && std::size_t(algorithm_) < names.size()) name = names[algorithm_];
  };
  switch (direction_) {
    case ConvDirection::Forward:
      pick(kForwardNames);
      break;
    case ConvDirection::BackwardData:
      pick(kDataNames);
      break;
    case ConvDirection::BackwardFilter:
      pick(kFilterNames);
      break;
  }
  return fmt::format("cudnn {} workspace {:.1f} MiB {}", name,
                     double(workspace_bytes_) / double(1 << 20),
                     deterministic_ ? "deterministic" : "non-deterministic");
}

// --- Batch norm ----------------------------------------------------------------------------

struct BatchNorm::Descriptors {
  cudnnTensorDescriptor_t data = nullptr, channel = nullptr;

  ~Descriptors() {
    if (channel) DSN_CUDNN_CHECK_LOG(cudnnDestroyTensorDescriptor(channel));
    if (data) DSN_CUDNN_CHECK_LOG(cudnnDestroyTensorDescriptor(data));
  }
};

BatchNorm::BatchNorm(const BatchNormShape& s)
    : descriptors_(std::make_unique<Descriptors>()), shape_(s) {
  DSN_CHECK(s.eps >= CUDNN_BN_MIN_EPSILON, "cuDNN batch norm needs eps >= {}, got {}",
            CUDNN_BN_MIN_EPSILON, s.eps);
  Descriptors& d = *descriptors_;
  DSN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.data));
  DSN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.data, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                             int(s.n), int(s.c), int(s.hw), 1));
  DSN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.channel));
  DSN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.channel, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1,
                                             int(s.c), 1, 1));
}

BatchNorm::~BatchNorm() = default;

void BatchNorm::forward_train(const float* x, const float* gamma, const float* beta, float* y,
                              float* save_mean, float* save_inv_std, float* running_mean,
                              float* running_var) {
  Descriptors& d = *descriptors_;
  DSN_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      get().cudnn, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, d.data, x, d.data, y, d.channel, gamma,
      beta, shape_.momentum, running_mean, running_var, shape_.eps, save_mean, save_inv_std));
}

void BatchNorm::forward_inference(const float* x, const float* gamma, const float* beta,
                                  const float* running_mean, const float* running_var, float* y) {
  Descriptors& d = *descriptors_;
  DSN_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      get().cudnn, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, d.data, x, d.data, y, d.channel, gamma,
      beta, running_mean, running_var, shape_.eps));
}

void BatchNorm::backward_train(const float* x, const float* dy, const float* gamma,
                               const float* save_mean, const float* save_inv_std, float* dx,
                               float* dgamma, float* dbeta) {
  Descriptors& d = *descriptors_;
  DSN_CUDNN_CHECK(cudnnBatchNormalizationBackward(
      get().cudnn, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, &kOne, &kZero, d.data, x, d.data, dy,
      d.data, dx, d.channel, gamma, dgamma, dbeta, shape_.eps, save_mean, save_inv_std));
}

// --- Softmax and GEMM ----------------------------------------------------------------------

Softmax::Softmax(std::int64_t rows, std::int64_t classes) {
  DSN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&descriptor_));
  DSN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(descriptor_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                             int(rows), int(classes), 1, 1));
}

Softmax::~Softmax() { DSN_CUDNN_CHECK_LOG(cudnnDestroyTensorDescriptor(descriptor_)); }

void Softmax::forward(const float* x, float* y) {
  DSN_CUDNN_CHECK(cudnnSoftmaxForward(get().cudnn, CUDNN_SOFTMAX_ACCURATE,
                                      CUDNN_SOFTMAX_MODE_INSTANCE, &kOne, descriptor_, x, &kZero,
                                      descriptor_, y));
}

void Softmax::backward(const float* y, const float* dy, float* dx) {
  DSN_CUDNN_CHECK(cudnnSoftmaxBackward(get().cudnn, CUDNN_SOFTMAX_ACCURATE,
                                       CUDNN_SOFTMAX_MODE_INSTANCE, &kOne, descriptor_, y,
                                       descriptor_, dy, &kZero, descriptor_, dx));
}

void gemm(const GemmShape& s, const float* a, const float* b, float* c) {
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so the operands swap.
  const cublasOperation_t op_a = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  DSN_CUBLAS_CHECK(cublasSgemm(get().cublas, op_b, op_a, int(s.n), int(s.m), int(s.k), &s.alpha,
                               b, int(s.lead_b()), a, int(s.lead_a()), &s.beta, c,
                               int(s.lead_c())));
}

}  // namespace dsn::bench::vendor
