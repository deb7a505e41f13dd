// The CUDA backend class, shared by the hand-written backend (backend.cpp) and the vendor
// baseline that overrides the ops cuDNN and cuBLAS provide (vendor.cpp, nvcc build only).
// Every kernel runs on the backend's one stream; host copies synchronise that stream.
#pragma once

#include <string>

#include "engine/backend.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/caching_allocator.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/layout.h"
#include "kernels/cuda/pool2d.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/softmax.h"
#include "kernels/cuda/stream.h"

namespace dsn::cuda {

class CudaBackend : public Backend {
 public:
  CudaBackend();
  ~CudaBackend() override;

  std::string name() const override;
  Device device() const override { return Device::cuda(0); }
  Allocator& allocator() override { return allocator_; }
  CachingAllocator& caching_allocator() { return allocator_; }
  Stream stream() const { return stream_; }

  void copy(void* dst, const void* src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override;
  void copy_from_host(void* dst, const void* host_src, std::size_t bytes) override;
  void synchronize() override;

  void conv2d_forward(const Conv2dShape& shape, const float* x, const float* w, const float* bias,
                      float* y, bool relu) override {
    cuda::conv2d_forward(shape, x, w, bias, y, relu, stream_);
  }
  void conv2d_backward_data(const Conv2dShape& shape, const float* dy, const float* w,
                            float* dx) override {
    cuda::conv2d_backward_data(shape, dy, w, dx, stream_);
  }
  void conv2d_backward_weight(const Conv2dShape& shape, const float* x, const float* dy, float* dw,
                              float* dbias) override {
    cuda::conv2d_backward_weight(shape, x, dy, dw, dbias, stream_);
  }
  void max_pool2d_forward(const Pool2dShape& shape, const float* x, float* y,
                          std::int32_t* argmax) override {
    cuda::max_pool2d_forward(shape, x, y, argmax, stream_);
  }
  void max_pool2d_backward(const Pool2dShape& shape, const float* dy, const std::int32_t* argmax,
                           float* dx) override {
    cuda::max_pool2d_backward(shape, dy, argmax, dx, stream_);
  }
  void avg_pool2d_forward(const Pool2dShape& shape, const float* x, float* y) override {
    cuda::avg_pool2d_forward(shape, x, y, stream_);
  }
  void avg_pool2d_backward(const Pool2dShape& shape, const float* dy, float* dx) override {
    cuda::avg_pool2d_backward(shape, dy, dx, stream_);
  }
  void global_avg_pool_forward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* x,
                               float* y) override {
    cuda::global_avg_pool_forward(n, c, hw, x, y, stream_);
  }
  void global_avg_pool_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy,
                                float* dx) override {
    cuda::global_avg_pool_backward(n, c, hw, dy, dx, stream_);
  }
  void batch_norm_forward_train(const BatchNormShape& shape, const float* x, const float* gamma,
                                const float* beta, float* y, float* save_mean, float* save_inv_std,
                                float* running_mean, float* running_var) override {
    cuda::batch_norm_forward_train(shape, x, gamma, beta, y, save_mean, save_inv_std, running_mean,
                                   running_var, stream_);
  }
  void batch_norm_forward_inference(const BatchNormShape& shape, const float* x, const float* gamma,
                                    const float* beta, const float* running_mean,
                                    const float* running_var, float* y) override {
    cuda::batch_norm_forward_inference(shape, x, gamma, beta, running_mean, running_var, y,
                                       stream_);
  }
  void batch_norm_backward_train(const BatchNormShape& shape, const float* x, const float* dy,
                                 const float* gamma, const float* save_mean,
                                 const float* save_inv_std, float* dx, float* dgamma,
                                 float* dbeta) override {
    cuda::batch_norm_backward_train(shape, x, dy, gamma, save_mean, save_inv_std, dx, dgamma, dbeta,
                                    stream_);
  }
  void batch_norm_backward_inference(const BatchNormShape& shape, const float* x, const float* dy,
                                     const float* gamma, const float* running_mean,
                                     const float* running_var, float* dx, float* dgamma,
                                     float* dbeta) override {
    cuda::batch_norm_backward_inference(shape, x, dy, gamma, running_mean, running_var, dx, dgamma,
                                        dbeta, stream_);
  }
  void fill(std::int64_t count, float value, float* y) override {
    cuda::fill(count, value, y, stream_);
  }
  void relu_forward(std::int64_t count, const float* x, float* y) override {
    cuda::relu_forward(count, x, y, stream_);
  }
  void relu_backward(std::int64_t count, const float* y, const float* dy, float* dx) override {
    cuda::relu_backward(count, y, dy, dx, stream_);
  }
  void add(std::int64_t count, const float* a, const float* b, float* y) override {
    cuda::add(count, a, b, y, stream_);
  }
  void accumulate(std::int64_t count, const float* x, float* y) override {
    cuda::accumulate(count, x, y, stream_);
  }
  void scale(std::int64_t count, float alpha, const float* x, float* y) override {
    cuda::scale(count, alpha, x, y, stream_);
  }
  void dropout(std::int64_t count, const DropoutParams& params, const float* x, float* y) override {
    cuda::dropout(count, params, x, y, stream_);
  }
  void bias_add(std::int64_t n, std::int64_t c, std::int64_t hw, const float* bias,
                float* y) override {
    cuda::bias_add(n, c, hw, bias, y, stream_);
  }
  void bias_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy,
                     float* dbias) override {
    cuda::bias_backward(n, c, hw, dy, dbias, stream_);
  }
  void channel_insert(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                      std::int64_t channel_offset, const float* src, float* dst) override {
    cuda::channel_insert(n, c_src, c_dst, hw, channel_offset, src, dst, stream_);
  }
  void channel_slice(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                     std::int64_t channel_offset, const float* src, float* dst) override {
    cuda::channel_slice(n, c_src, c_dst, hw, channel_offset, src, dst, stream_);
  }
  void crop_forward(const CropShape& shape, const float* x, float* y) override {
    cuda::crop_forward(shape, x, y, stream_);
  }
  void crop_backward(const CropShape& shape, const float* dy, float* dx) override {
    cuda::crop_backward(shape, dy, dx, stream_);
  }
  void gemm(const GemmShape& shape, const float* a, const float* b, float* c) override {
    cuda::gemm(shape, a, b, c, stream_);
  }
  void softmax_forward(std::int64_t rows, std::int64_t classes, const float* x, float* y) override {
    cuda::softmax_forward(rows, classes, x, y, stream_);
  }
  void softmax_backward(std::int64_t rows, std::int64_t classes, const float* y, const float* dy,
                        float* dx) override {
    cuda::softmax_backward(rows, classes, y, dy, dx, stream_);
  }
  void softmax_cross_entropy_forward(std::int64_t rows, std::int64_t classes, const float* logits,
                                     const std::int32_t* labels, float* loss,
                                     float* probs) override {
    cuda::softmax_cross_entropy_forward(rows, classes, logits, labels, loss, probs, stream_);
  }
  void softmax_cross_entropy_backward(std::int64_t rows, std::int64_t classes, const float* probs,
                                      const std::int32_t* labels, const float* dloss,
                                      float* dlogits) override {
    cuda::softmax_cross_entropy_backward(rows, classes, probs, labels, dloss, dlogits, stream_);
  }
  void sum(std::int64_t count, const float* x, float* out) override {
    cuda::sum(count, x, out, stream_);
  }

 protected:
  CachingAllocator allocator_;
  Stream stream_ = nullptr;
};

}  // namespace dsn::cuda
