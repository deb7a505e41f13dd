// Softmax and the fused log-softmax cross-entropy loss.
#include "engine/ops/common.h"
#include "kernels/softmax.h"

namespace dsn::ops {

Tensor softmax(const Tensor& x) {
  check_float(x, 2, "softmax input");
  const std::int64_t rows = x.size(0), classes = x.size(1);
  Tensor y = detail::empty_like(x);
  backend_for(x.device()).softmax_forward(rows, classes, x.data<float>(), y.data<float>());
  if (autograd::needs_grad({&x})) {
    autograd::record(y, "softmax", {x},
                     [rows, classes](const Tensor& dy, const Tensor& y) -> std::vector<Tensor> {
                       Tensor dx = detail::empty_like(dy);
                       backend_for(dy.device())
                           .softmax_backward(rows, classes, y.data<float>(), dy.data<float>(),
                                             dx.data<float>());
                       return {dx};
                     });
  }
  return y;
}

Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels) {
  check_float(logits, 2, "softmax_cross_entropy logits");
  DSN_CHECK(labels.defined() && labels.dtype() == DType::Int32,
            "softmax_cross_entropy: labels must be an int32 tensor");
  const std::int64_t rows = logits.size(0), classes = logits.size(1);
  check_shape(labels, {rows}, "softmax_cross_entropy labels");
  const Device device = detail::common_device("softmax_cross_entropy", {&logits, &labels});
  DSN_CHECK(rows > 0, "softmax_cross_entropy: empty batch");

  Backend& backend = backend_for(device);
  Tensor loss_rows = detail::empty_float({rows}, device);
  Tensor probs = detail::empty_like(logits);
  backend.softmax_cross_entropy_forward(rows, classes, logits.data<float>(),
                                        labels.data<std::int32_t>(), loss_rows.data<float>(),
                                        probs.data<float>());
  Tensor loss = detail::empty_float({}, device);
  backend.sum(rows, loss_rows.data<float>(), loss.data<float>());
  backend.scale(1, 1.0f / static_cast<float>(rows), loss.data<float>(), loss.data<float>());

  if (autograd::needs_grad({&logits})) {
    autograd::record(loss, "softmax_cross_entropy", {logits},
                     [rows, classes, probs, labels](const Tensor& dloss,
                                                    const Tensor&) -> std::vector<Tensor> {
                       // Each row's loss enters the mean with weight 1 / rows.
                       const float row_weight = dloss.item() / static_cast<float>(rows);
                       Tensor drow = Tensor::full({rows}, row_weight, dloss.device());
                       Tensor dlogits = detail::empty_like(probs);
                       backend_for(dloss.device())
                           .softmax_cross_entropy_backward(rows, classes, probs.data<float>(),
                                                           labels.data<std::int32_t>(),
                                                           drow.data<float>(),
                                                           dlogits.data<float>());
                       return {dlogits};
                     });
  }
  return loss;
}

}  // namespace dsn::ops
