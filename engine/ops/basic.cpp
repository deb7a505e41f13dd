// Element-wise, linear, layout and reduction ops.
#include "engine/ops/common.h"

namespace dsn::ops {

using detail::empty_float;
using detail::empty_like;

Tensor relu(const Tensor& x) {
  DSN_CHECK(x.defined() && x.dtype() == DType::Float32, "relu: expected a float32 tensor");
  Tensor y = empty_like(x);
  backend_for(x.device()).relu_forward(x.numel(), x.data<float>(), y.data<float>());
  if (autograd::needs_grad({&x})) {
    autograd::record(y, "relu", {x}, [](const Tensor& dy, const Tensor& y) -> std::vector<Tensor> {
      Tensor dx = empty_like(dy);
      backend_for(dy.device())
          .relu_backward(dy.numel(), y.data<float>(), dy.data<float>(), dx.data<float>());
      return {dx};
    });
  }
  return y;
}

Tensor dropout(const Tensor& x, float p, bool training, std::uint64_t seed,
               std::uint64_t offset) {
  DSN_CHECK(p >= 0.0f && p < 1.0f, "dropout: probability must be in [0, 1), got {}", p);
  if (!training || p == 0.0f) return x;
  const DropoutParams params{p, seed, offset};
  Tensor y = empty_like(x);
  backend_for(x.device()).dropout(x.numel(), params, x.data<float>(), y.data<float>());
  if (autograd::needs_grad({&x})) {
    autograd::record(y, "dropout", {x},
                     [params](const Tensor& dy, const Tensor&) -> std::vector<Tensor> {
                       Tensor dx = empty_like(dy);
                       backend_for(dy.device())
                           .dropout(dy.numel(), params, dy.data<float>(), dx.data<float>());
                       return {dx};
                     });
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_float(x, 2, "linear input");
  check_float(weight, 2, "linear weight");
  const Device device = detail::common_device("linear", {&x, &weight, &bias});
  const std::int64_t batch = x.size(0), in = x.size(1), out = weight.size(0);
  DSN_CHECK(weight.size(1) == in, "linear: weight {} expects {} inputs, input {} has {}",
            to_string(weight.shape()), weight.size(1), to_string(x.shape()), in);
  if (bias.defined()) check_shape(bias, {out}, "linear bias");

  Backend& backend = backend_for(device);
  Tensor y = empty_float({batch, out}, device);
  GemmShape gemm;  // y (batch, out) = x (batch, in) * weight^T (in, out)
  gemm.trans_b = true;
  gemm.m = batch;
  gemm.n = out;
  gemm.k = in;
  backend.gemm(gemm, x.data<float>(), weight.data<float>(), y.data<float>());
  if (bias.defined()) backend.bias_add(batch, out, 1, bias.data<float>(), y.data<float>());

  if (autograd::needs_grad({&x, &weight, &bias})) {
    autograd::record(
        y, "linear", {x, weight, bias},
        [x, weight, has_bias = bias.defined()](const Tensor& dy,
                                               const Tensor&) -> std::vector<Tensor> {
          Backend& backend = backend_for(dy.device());
          const std::int64_t batch = x.size(0), in = x.size(1), out = weight.size(0);
          Tensor dx, dw, db;
          if (x.requires_grad()) {
            dx = empty_like(x);  // dx (batch, in) = dy (batch, out) * weight (out, in)
            GemmShape gemm;
            gemm.m = batch;
            gemm.n = in;
            gemm.k = out;
            backend.gemm(gemm, dy.data<float>(), weight.data<float>(), dx.data<float>());
          }
          if (weight.requires_grad()) {
            dw = empty_like(weight);  // dw (out, in) = dy^T (out, batch) * x (batch, in)
            GemmShape gemm;
            gemm.trans_a = true;
            gemm.m = out;
            gemm.n = in;
            gemm.k = batch;
            backend.gemm(gemm, dy.data<float>(), x.data<float>(), dw.data<float>());
          }
          if (has_bias) {
            db = empty_float({out}, dy.device());
            backend.bias_backward(batch, out, 1, dy.data<float>(), db.data<float>());
          }
          return {dx, dw, db};
        });
  }
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  const Device device = detail::common_device("add", {&a, &b});
  DSN_CHECK(a.shape() == b.shape(), "add: shapes {} and {} differ", to_string(a.shape()),
            to_string(b.shape()));
  Tensor y = empty_like(a);
  backend_for(device).add(a.numel(), a.data<float>(), b.data<float>(), y.data<float>());
  if (autograd::needs_grad({&a, &b})) {
    autograd::record(y, "add", {a, b}, [](const Tensor& dy, const Tensor&) -> std::vector<Tensor> {
      return {dy, dy};
    });
  }
  return y;
}

Tensor scale(const Tensor& x, float alpha) {
  Tensor y = empty_like(x);
  backend_for(x.device()).scale(x.numel(), alpha, x.data<float>(), y.data<float>());
  if (autograd::needs_grad({&x})) {
    autograd::record(y, "scale", {x},
                     [alpha](const Tensor& dy, const Tensor&) -> std::vector<Tensor> {
                       Tensor dx = empty_like(dy);
                       backend_for(dy.device())
                           .scale(dy.numel(), alpha, dy.data<float>(), dx.data<float>());
                       return {dx};
                     });
  }
  return y;
}

Tensor concat_channels(const std::vector<Tensor>& inputs) {
  DSN_CHECK(!inputs.empty(), "concat_channels: no inputs");
  const Tensor& first = inputs.front();
  check_float(first, 4, "concat_channels input 0");
  std::int64_t channels = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    check_float(input, 4, fmt::format("concat_channels input {}", i));
    DSN_CHECK(input.device() == first.device(), "concat_channels: input {} is on {}, input 0 on {}",
              i, to_string(input.device()), to_string(first.device()));
    DSN_CHECK(input.size(0) == first.size(0) && input.size(2) == first.size(2) &&
                  input.size(3) == first.size(3),
              "concat_channels: input {} has shape {}, incompatible with input 0 {}", i,
              to_string(input.shape()), to_string(first.shape()));
    channels += input.size(1);
  }
  const std::int64_t n = first.size(0), hw = first.size(2) * first.size(3);
  Backend& backend = backend_for(first.device());
  Tensor y = empty_float({n, channels, first.size(2), first.size(3)}, first.device());
  std::int64_t offset = 0;
  bool any_grad = false;
  for (const Tensor& input : inputs) {
    backend.channel_insert(n, input.size(1), channels, hw, offset, input.data<float>(),
                           y.data<float>());
    offset += input.size(1);
    any_grad = any_grad || input.requires_grad();
  }
  if (any_grad && autograd::grad_enabled()) {
    std::vector<std::int64_t> widths;
    for (const Tensor& input : inputs) widths.push_back(input.size(1));
    autograd::record(y, "concat_channels", inputs,
                     [widths, n, hw, channels](const Tensor& dy,
                                               const Tensor&) -> std::vector<Tensor> {
                       Backend& backend = backend_for(dy.device());
                       std::vector<Tensor> grads;
                       std::int64_t offset = 0;
                       for (std::int64_t width : widths) {
                         Tensor dx = empty_float({n, width, dy.size(2), dy.size(3)}, dy.device());
                         backend.channel_slice(n, channels, width, hw, offset, dy.data<float>(),
                                               dx.data<float>());
                         grads.push_back(dx);
                         offset += width;
                       }
                       return grads;
                     });
  }
  return y;
}

Tensor crop(const Tensor& x, std::int64_t offset_h, std::int64_t offset_w, std::int64_t out_h,
            std::int64_t out_w) {
  check_float(x, 4, "crop input");
  CropShape shape;
  shape.n = x.size(0);
  shape.c = x.size(1);
  shape.h = x.size(2);
  shape.w = x.size(3);
  shape.offset_h = offset_h;
  shape.offset_w = offset_w;
  shape.out_h = out_h;
  shape.out_w = out_w;
  validate(shape);
  Tensor y = empty_float({shape.n, shape.c, out_h, out_w}, x.device());
  backend_for(x.device()).crop_forward(shape, x.data<float>(), y.data<float>());
  if (autograd::needs_grad({&x})) {
    autograd::record(y, "crop", {x},
                     [shape, x_shape = x.shape()](const Tensor& dy,
                                                  const Tensor&) -> std::vector<Tensor> {
                       Tensor dx = empty_float(x_shape, dy.device());
                       backend_for(dy.device())
                           .crop_backward(shape, dy.data<float>(), dx.data<float>());
                       return {dx};
                     });
  }
  return y;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor y = x.view(shape);
  if (autograd::needs_grad({&x})) {
    autograd::record(y, "reshape", {x},
                     [x_shape = x.shape()](const Tensor& dy, const Tensor&) -> std::vector<Tensor> {
                       return {dy.view(x_shape)};
                     });
  }
  return y;
}

Tensor flatten(const Tensor& x) {
  DSN_CHECK(x.dim() >= 1, "flatten: tensor of rank 0");
  const std::int64_t batch = x.size(0);
  return reshape(x, {batch, batch == 0 ? 0 : x.numel() / batch});
}

Tensor sum(const Tensor& x) {
  DSN_CHECK(x.defined() && x.dtype() == DType::Float32, "sum: expected a float32 tensor");
  Tensor y = empty_float({}, x.device());
  backend_for(x.device()).sum(x.numel(), x.data<float>(), y.data<float>());
  if (autograd::needs_grad({&x})) {
    autograd::record(y, "sum", {x},
                     [x_shape = x.shape()](const Tensor& dy, const Tensor&) -> std::vector<Tensor> {
                       const float value = dy.item();
                       return {Tensor::full(x_shape, value, dy.device())};
                     });
  }
  return y;
}

Tensor mean(const Tensor& x) {
  DSN_CHECK(x.numel() > 0, "mean of an empty tensor of shape {}", to_string(x.shape()));
  return scale(sum(x), 1.0f / static_cast<float>(x.numel()));
}

}  // namespace dsn::ops
