// Convolution and transposed convolution ops.
#include "engine/ops/common.h"

namespace dsn::ops {
namespace {

using detail::common_device;
using detail::empty_float;

void check_bias(const Tensor& bias, std::int64_t channels, const char* op) {
  if (!bias.defined()) return;
  check_float(bias, 1, std::string(op) + " bias");
  check_shape(bias, {channels}, std::string(op) + " bias");
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
              const Conv2dParams& params, bool relu) {
  check_float(x, 4, "conv2d input");
  check_float(weight, 4, "conv2d weight");
  const Device device = common_device("conv2d", {&x, &weight, &bias});
  DSN_CHECK(weight.size(1) == x.size(1), "conv2d: weight {} expects {} input channels, input {} "
            "has {}", to_string(weight.shape()), weight.size(1), to_string(x.shape()), x.size(1));
  check_bias(bias, weight.size(0), "conv2d");

  Conv2dShape shape;
  shape.n = x.size(0);
  shape.c = x.size(1);
  shape.h = x.size(2);
  shape.w = x.size(3);
  shape.k = weight.size(0);
  shape.r = weight.size(2);
  shape.s = weight.size(3);
  shape.stride_h = params.stride_h;
  shape.stride_w = params.stride_w;
  shape.pad_h = params.pad_h;
  shape.pad_w = params.pad_w;
  validate(shape);

  Backend& backend = backend_for(device);
  Tensor y = empty_float({shape.n, shape.k, shape.out_h(), shape.out_w()}, device);
  backend.conv2d_forward(shape, x.data<float>(), weight.data<float>(),
                         bias.defined() ? bias.data<float>() : nullptr, y.data<float>(), relu);

  if (autograd::needs_grad({&x, &weight, &bias})) {
    autograd::record(y, "conv2d", {x, weight, bias},
                     [shape, relu, x, weight, has_bias = bias.defined()](
                         const Tensor& grad_y, const Tensor& y) -> std::vector<Tensor> {
                       Backend& backend = backend_for(grad_y.device());
                       Tensor dy = grad_y;
                       if (relu) {
                         dy = detail::empty_like(grad_y);
                         backend.relu_backward(dy.numel(), y.data<float>(), grad_y.data<float>(),
                                               dy.data<float>());
                       }
                       Tensor dx, dw, db;
                       if (x.requires_grad()) {
                         dx = detail::empty_like(x);
                         backend.conv2d_backward_data(shape, dy.data<float>(),
                                                      weight.data<float>(), dx.data<float>());
                       }
                       if (weight.requires_grad() || has_bias) {
                         dw = detail::empty_like(weight);
                         if (has_bias) db = empty_float({shape.k}, grad_y.device());
                         backend.conv2d_backward_weight(shape, x.data<float>(), dy.data<float>(),
                                                        dw.data<float>(),
                                                        has_bias ? db.data<float>() : nullptr);
                       }
                       return {dx, dw, db};
                     });
  }
  return y;
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const Conv2dParams& params) {
  check_float(x, 4, "conv_transpose2d input");
  check_float(weight, 4, "conv_transpose2d weight");
  const Device device = common_device("conv_transpose2d", {&x, &weight, &bias});
  DSN_CHECK(weight.size(0) == x.size(1), "conv_transpose2d: weight {} expects {} input channels, "
            "input {} has {}", to_string(weight.shape()), weight.size(0), to_string(x.shape()),
            x.size(1));
  check_bias(bias, weight.size(1), "conv_transpose2d");

  // The transposed convolution is the backward-data pass of this convolution, whose input is
  // our output and whose output is our input.
  const Conv2dShape shape = transposed_conv_as_conv(
      x.size(0), x.size(1), x.size(2), x.size(3), weight.size(1), weight.size(2), weight.size(3),
      params.stride_h, params.stride_w, params.pad_h, params.pad_w);
  validate(shape);

  Backend& backend = backend_for(device);
  Tensor y = empty_float({shape.n, shape.c, shape.h, shape.w}, device);
  backend.conv2d_backward_data(shape, x.data<float>(), weight.data<float>(), y.data<float>());
  if (bias.defined()) {
    backend.bias_add(shape.n, shape.c, shape.h * shape.w, bias.data<float>(), y.data<float>());
  }

  if (autograd::needs_grad({&x, &weight, &bias})) {
    autograd::record(y, "conv_transpose2d", {x, weight, bias},
                     [shape, x, weight, has_bias = bias.defined()](
                         const Tensor& dy, const Tensor&) -> std::vector<Tensor> {
                       Backend& backend = backend_for(dy.device());
                       Tensor dx, dw, db;
                       if (x.requires_grad()) {
                         dx = detail::empty_like(x);
                         backend.conv2d_forward(shape, dy.data<float>(), weight.data<float>(),
                                                nullptr, dx.data<float>(), false);
                       }
                       if (weight.requires_grad()) {
                         dw = detail::empty_like(weight);
                         backend.conv2d_backward_weight(shape, dy.data<float>(), x.data<float>(),
                                                        dw.data<float>(), nullptr);
                       }
                       if (has_bias) {
                         db = empty_float({shape.c}, dy.device());
                         backend.bias_backward(shape.n, shape.c, shape.h * shape.w,
                                               dy.data<float>(), db.data<float>());
                       }
                       return {dx, dw, db};
                     });
  }
  return y;
}

}  // namespace dsn::ops
