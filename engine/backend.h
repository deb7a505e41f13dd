// The one place where an op's implementation is chosen: every kernel family has the same
// signature on each backend, and ops call backend_for(tensor.device()). There is no silent
// fallback from one device to another; asking for a backend that is not linked in throws.
//
// Pointers passed to a backend point into that backend's memory. Shapes follow the kernel
// headers under kernels/.
#pragma once

#include <cstdint>
#include <string>

#include "engine/allocator.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/layout.h"
#include "kernels/pool2d.h"

namespace dsn {

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "cpu", "cuda", "cuda (emulated)", ...
  virtual Device device() const = 0;
  virtual Allocator& allocator() = 0;

  // Memory movement. copy() stays on this backend's device.
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_from_host(void* dst, const void* host_src, std::size_t bytes) = 0;
  virtual void synchronize() {}

  // Convolution (kernels/conv2d.h).
  virtual void conv2d_forward(const Conv2dShape& shape, const float* x, const float* w,
                              const float* bias, float* y, bool relu) = 0;
  virtual void conv2d_backward_data(const Conv2dShape& shape, const float* dy, const float* w,
                                    float* dx) = 0;
  virtual void conv2d_backward_weight(const Conv2dShape& shape, const float* x, const float* dy,
                                      float* dw, float* dbias) = 0;

  // Pooling (kernels/pool2d.h).
  virtual void max_pool2d_forward(const Pool2dShape& shape, const float* x, float* y,
                                  std::int32_t* argmax) = 0;
  virtual void max_pool2d_backward(const Pool2dShape& shape, const float* dy,
                                   const std::int32_t* argmax, float* dx) = 0;
  virtual void avg_pool2d_forward(const Pool2dShape& shape, const float* x, float* y) = 0;
  virtual void avg_pool2d_backward(const Pool2dShape& shape, const float* dy, float* dx) = 0;
  virtual void global_avg_pool_forward(std::int64_t n, std::int64_t c, std::int64_t hw,
                                       const float* x, float* y) = 0;
  virtual void global_avg_pool_backward(std::int64_t n, std::int64_t c, std::int64_t hw,
                                        const float* dy, float* dx) = 0;

  // Batch normalisation (kernels/batch_norm.h).
  virtual void batch_norm_forward_train(const BatchNormShape& shape, const float* x,
                                        const float* gamma, const float* beta, float* y,
                                        float* save_mean, float* save_inv_std,
                                        float* running_mean, float* running_var) = 0;
  virtual void batch_norm_forward_inference(const BatchNormShape& shape, const float* x,
                                            const float* gamma, const float* beta,
                                            const float* running_mean,
                                            const float* running_var, float* y) = 0;
  virtual void batch_norm_backward_train(const BatchNormShape& shape, const float* x,
                                         const float* dy, const float* gamma,
                                         const float* save_mean, const float* save_inv_std,
                                         float* dx, float* dgamma, float* dbeta) = 0;
  virtual void batch_norm_backward_inference(const BatchNormShape& shape, const float* x,
                                             const float* dy, const float* gamma,
                                             const float* running_mean,
                                             const float* running_var, float* dx, float* dgamma,
                                             float* dbeta) = 0;

  // Element-wise (kernels/elementwise.h).
  virtual void fill(std::int64_t count, float value, float* y) = 0;
  virtual void relu_forward(std::int64_t count, const float* x, float* y) = 0;
  virtual void relu_backward(std::int64_t count, const float* y, const float* dy, float* dx) = 0;
  virtual void add(std::int64_t count, const float* a, const float* b, float* y) = 0;
  virtual void accumulate(std::int64_t count, const float* x, float* y) = 0;
  virtual void scale(std::int64_t count, float alpha, const float* x, float* y) = 0;
  virtual void dropout(std::int64_t count, const DropoutParams& params, const float* x,
                       float* y) = 0;
  virtual void bias_add(std::int64_t n, std::int64_t c, std::int64_t hw, const float* bias,
                        float* y) = 0;
  virtual void bias_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy,
                             float* dbias) = 0;

  // Layout (kernels/layout.h).
  virtual void channel_insert(std::int64_t n, std::int64_t c_src, std::int64_t c_dst,
                              std::int64_t hw, std::int64_t channel_offset, const float* src,
                              float* dst) = 0;
  virtual void channel_slice(std::int64_t n, std::int64_t c_src, std::int64_t c_dst,
                             std::int64_t hw, std::int64_t channel_offset, const float* src,
                             float* dst) = 0;
  virtual void crop_forward(const CropShape& shape, const float* x, float* y) = 0;
  virtual void crop_backward(const CropShape& shape, const float* dy, float* dx) = 0;

  // GEMM (kernels/gemm.h).
  virtual void gemm(const GemmShape& shape, const float* a, const float* b, float* c) = 0;

  // Softmax (kernels/softmax.h).
  virtual void softmax_forward(std::int64_t rows, std::int64_t classes, const float* x,
                               float* y) = 0;
  virtual void softmax_backward(std::int64_t rows, std::int64_t classes, const float* y,
                                const float* dy, float* dx) = 0;
  virtual void softmax_cross_entropy_forward(std::int64_t rows, std::int64_t classes,
                                             const float* logits, const std::int32_t* labels,
                                             float* loss, float* probs) = 0;
  virtual void softmax_cross_entropy_backward(std::int64_t rows, std::int64_t classes,
                                              const float* probs, const std::int32_t* labels,
                                              const float* dloss, float* dlogits) = 0;

  // Reductions (kernels/reduce.h): the sum of x, written as one float to `out`.
  virtual void sum(std::int64_t count, const float* x, float* out) = 0;
};

// The backend that serves `device`. Throws dsn::Error when none is registered for it.
Backend& backend_for(Device device);

// Makes `backend` serve its device from now on (the CUDA libraries call this from their
// install function). The backend must outlive every tensor on that device.
void register_backend(Backend* backend);

// The CPU backend, always registered.
Backend& cpu_backend();

}  // namespace dsn
