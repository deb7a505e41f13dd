// The backend registry and the CPU backend, which forwards every call to the kernels in
// kernels/cpu/.
#include "engine/backend.h"

#include <array>
#include <cstring>
#include <mutex>

#include "engine/error.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"

namespace dsn {
namespace {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::cpu(); }
  Allocator& allocator() override { return allocator_; }

  void copy(void* dst, const void* src, std::size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override {
    std::memcpy(host_dst, src, bytes);
  }
  void copy_from_host(void* dst, const void* host_src, std::size_t bytes) override {
    std::memcpy(dst, host_src, bytes);
  }

  void conv2d_forward(const Conv2dShape& shape, const float* x, const float* w,
                      const float* bias, float* y, bool relu) override {
    cpu::conv2d_forward(shape, x, w, bias, y, relu);
  }
  void conv2d_backward_data(const Conv2dShape& shape, const float* dy, const float* w,
                            float* dx) override {
    cpu::conv2d_backward_data(shape, dy, w, dx);
  }
  void conv2d_backward_weight(const Conv2dShape& shape, const float* x, const float* dy,
                              float* dw, float* dbias) override {
    cpu::conv2d_backward_weight(shape, x, dy, dw, dbias);
  }

  void max_pool2d_forward(const Pool2dShape& shape, const float* x, float* y,
                          std::int32_t* argmax) override {
    cpu::max_pool2d_forward(shape, x, y, argmax);
  }
  void max_pool2d_backward(const Pool2dShape& shape, const float* dy,
                           const std::int32_t* argmax, float* dx) override {
    cpu::max_pool2d_backward(shape, dy, argmax, dx);
  }
  void avg_pool2d_forward(const Pool2dShape& shape, const float* x, float* y) override {
    cpu::avg_pool2d_forward(shape, x, y);
  }
  void avg_pool2d_backward(const Pool2dShape& shape, const float* dy, float* dx) override {
    cpu::avg_pool2d_backward(shape, dy, dx);
  }
  void global_avg_pool_forward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* x,
                               float* y) override {
    cpu::global_avg_pool_forward(n, c, hw, x, y);
  }
  void global_avg_pool_backward(std::int64_t n, std::int64_t c, std::int64_t hw,
                                const float* dy, float* dx) override {
    cpu::global_avg_pool_backward(n, c, hw, dy, dx);
  }

  void batch_norm_forward_train(const BatchNormShape& shape, const float* x, const float* gamma,
                                const float* beta, float* y, float* save_mean,
                                float* save_inv_std, float* running_mean,
                                float* running_var) override {
    cpu::batch_norm_forward_train(shape, x, gamma, beta, y, save_mean, save_inv_std,
                                  running_mean, running_var);
  }
  void batch_norm_forward_inference(const BatchNormShape& shape, const float* x,
                                    const float* gamma, const float* beta,
                                    const float* running_mean, const float* running_var,
                                    float* y) override {
    cpu::batch_norm_forward_inference(shape, x, gamma, beta, running_mean, running_var, y);
  }
  void batch_norm_backward_train(const BatchNormShape& shape, const float* x, const float* dy,
                                 const float* gamma, const float* save_mean,
                                 const float* save_inv_std, float* dx, float* dgamma,
                                 float* dbeta) override {
    cpu::batch_norm_backward_train(shape, x, dy, gamma, save_mean, save_inv_std, dx, dgamma,
                                   dbeta);
  }
  void batch_norm_backward_inference(const BatchNormShape& shape, const float* x,
                                     const float* dy, const float* gamma,
                                     const float* running_mean, const float* running_var,
                                     float* dx, float* dgamma, float* dbeta) override {
    cpu::batch_norm_backward_inference(shape, x, dy, gamma, running_mean, running_var, dx,
                                       dgamma, dbeta);
  }

  void fill(std::int64_t count, float value, float* y) override { cpu::fill(count, value, y); }
  void relu_forward(std::int64_t count, const float* x, float* y) override {
    cpu::relu_forward(count, x, y);
  }
  void relu_backward(std::int64_t count, const float* y, const float* dy, float* dx) override {
    cpu::relu_backward(count, y, dy, dx);
  }
  void add(std::int64_t count, const float* a, const float* b, float* y) override {
    cpu::add(count, a, b, y);
  }
  void accumulate(std::int64_t count, const float* x, float* y) override {
    cpu::accumulate(count, x, y);
  }
  void scale(std::int64_t count, float alpha, const float* x, float* y) override {
    cpu::scale(count, alpha, x, y);
  }
  void dropout(std::int64_t count, const DropoutParams& params, const float* x,
               float* y) override {
    cpu::dropout(count, params, x, y);
  }
  void bias_add(std::int64_t n, std::int64_t c, std::int64_t hw, const float* bias,
                float* y) override {
    cpu::bias_add(n, c, hw, bias, y);
  }
  void bias_backward(std::int64_t n, std::int64_t c, std::int64_t hw, const float* dy,
                     float* dbias) override {
    cpu::bias_backward(n, c, hw, dy, dbias);
  }

  void channel_insert(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                      std::int64_t channel_offset, const float* src, float* dst) override {
    cpu::channel_insert(n, c_src, c_dst, hw, channel_offset, src, dst);
  }
  void channel_slice(std::int64_t n, std::int64_t c_src, std::int64_t c_dst, std::int64_t hw,
                     std::int64_t channel_offset, const float* src, float* dst) override {
    cpu::channel_slice(n, c_src, c_dst, hw, channel_offset, src, dst);
  }
  void crop_forward(const CropShape& shape, const float* x, float* y) override {
    cpu::crop_forward(shape, x, y);
  }
  void crop_backward(const CropShape& shape, const float* dy, float* dx) override {
    cpu::crop_backward(shape, dy, dx);
  }

  void gemm(const GemmShape& shape, const float* a, const float* b, float* c) override {
    cpu::gemm(shape, a, b, c);
  }

  void softmax_forward(std::int64_t rows, std::int64_t classes, const float* x,
                       float* y) override {
    cpu::softmax_forward(rows, classes, x, y);
  }
  void softmax_backward(std::int64_t rows, std::int64_t classes, const float* y,
                        const float* dy, float* dx) override {
    cpu::softmax_backward(rows, classes, y, dy, dx);
  }
  void softmax_cross_entropy_forward(std::int64_t rows, std::int64_t classes,
                                     const float* logits, const std::int32_t* labels,
                                     float* loss, float* probs) override {
    cpu::softmax_cross_entropy_forward(rows, classes, logits, labels, loss, probs);
  }
  void softmax_cross_entropy_backward(std::int64_t rows, std::int64_t classes,
                                      const float* probs, const std::int32_t* labels,
                                      const float* dloss, float* dlogits) override {
    cpu::softmax_cross_entropy_backward(rows, classes, probs, labels, dloss, dlogits);
  }

  void sum(std::int64_t count, const float* x, float* out) override {
    *out = static_cast<float>(cpu::sum(count, x));
  }

 private:
  CpuAllocator allocator_;
};

struct Registry {
  std::mutex mutex;
  Backend* cuda = nullptr;
};

Registry& registry() {
  static Registry instance;
  return instance;
}

}  // namespace

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

void register_backend(Backend* backend) {
  DSN_CHECK(backend != nullptr, "register_backend: null backend");
  DSN_CHECK(backend->device().is_cuda(), "register_backend: only a CUDA backend can be added, "
            "got one for {}", to_string(backend->device()));
  std::lock_guard lock(registry().mutex);
  registry().cuda = backend;
}

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu_backend();
  std::lock_guard lock(registry().mutex);
  DSN_CHECK(registry().cuda != nullptr,
            "no backend for {} is linked into this program; build with the CUDA toolkit (or the "
            "device emulation) and call dsn::cuda::install_backend() first",
            to_string(device));
  DSN_CHECK(registry().cuda->device() == device,
            "no backend for {}: the installed CUDA backend serves {} only", to_string(device),
            to_string(registry().cuda->device()));
  return *registry().cuda;
}

}  // namespace dsn
