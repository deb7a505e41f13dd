// Batch normalisation op.
#include "engine/ops/common.h"

namespace dsn::ops {

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                  Tensor& running_mean, Tensor& running_var, BatchNormMode mode,
                  double momentum, double eps) {
  check_float(x, 4, "batch_norm input");
  const std::int64_t channels = x.size(1);
  check_shape(gamma, {channels}, "batch_norm gamma");
  check_shape(beta, {channels}, "batch_norm beta");
  check_shape(running_mean, {channels}, "batch_norm running_mean");
  check_shape(running_var, {channels}, "batch_norm running_var");
  const Device device =
      detail::common_device("batch_norm", {&x, &gamma, &beta, &running_mean, &running_var});
  DSN_CHECK(eps > 0, "batch_norm: eps must be positive, got {}", eps);

  BatchNormShape shape;
  shape.n = x.size(0);
  shape.c = channels;
  shape.hw = x.size(2) * x.size(3);
  shape.eps = eps;
  shape.momentum = momentum;
  DSN_CHECK(mode == BatchNormMode::Inference || shape.n * shape.hw > 1,
            "batch_norm: training mode needs more than one value per channel, input {}",
            to_string(x.shape()));

  Backend& backend = backend_for(device);
  Tensor y = detail::empty_like(x);
  Tensor save_mean, save_inv_std;
  if (mode == BatchNormMode::Train) {
    save_mean = detail::empty_float({channels}, device);
    save_inv_std = detail::empty_float({channels}, device);
    backend.batch_norm_forward_train(shape, x.data<float>(), gamma.data<float>(),
                                     beta.data<float>(), y.data<float>(),
                                     save_mean.data<float>(), save_inv_std.data<float>(),
                                     running_mean.data<float>(), running_var.data<float>());
  } else {
    backend.batch_norm_forward_inference(shape, x.data<float>(), gamma.data<float>(),
                                         beta.data<float>(), running_mean.data<float>(),
                                         running_var.data<float>(), y.data<float>());
  }

  if (autograd::needs_grad({&x, &gamma, &beta})) {
    // Inference mode reads the running statistics in backward: copy them, since a later
    // training-mode call may update them in place before this graph is differentiated.
    Tensor mean_used = mode == BatchNormMode::Train ? save_mean : running_mean.clone();
    Tensor var_used = mode == BatchNormMode::Train ? save_inv_std : running_var.clone();
    autograd::record(
        y, "batch_norm", {x, gamma, beta},
        [shape, mode, x, gamma, mean_used, var_used](const Tensor& dy,
                                                     const Tensor&) -> std::vector<Tensor> {
          Backend& backend = backend_for(dy.device());
          Tensor dx = detail::empty_like(x);
          Tensor dgamma = detail::empty_like(gamma);
          Tensor dbeta = detail::empty_like(gamma);
          if (mode == BatchNormMode::Train) {
            backend.batch_norm_backward_train(shape, x.data<float>(), dy.data<float>(),
                                              gamma.data<float>(), mean_used.data<float>(),
                                              var_used.data<float>(), dx.data<float>(),
                                              dgamma.data<float>(), dbeta.data<float>());
          } else {
            backend.batch_norm_backward_inference(shape, x.data<float>(), dy.data<float>(),
                                                  gamma.data<float>(), mean_used.data<float>(),
                                                  var_used.data<float>(), dx.data<float>(),
                                                  dgamma.data<float>(), dbeta.data<float>());
          }
          return {dx, dgamma, dbeta};
        });
  }
  return y;
}

}  // namespace dsn::ops
