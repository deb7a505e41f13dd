// Pooling ops: max and average with Caffe rounding, and global average pooling.
#include "engine/ops/common.h"

namespace dsn::ops {
namespace {

Pool2dShape make_shape(const Tensor& x, const Pool2dParams& params) {
  Pool2dShape shape;
  shape.n = x.size(0);
  shape.c = x.size(1);
  shape.h = x.size(2);
  shape.w = x.size(3);
  shape.kernel_h = params.kernel_h;
  shape.kernel_w = params.kernel_w;
  shape.stride_h = params.stride_h;
  shape.stride_w = params.stride_w;
  shape.pad_h = params.pad_h;
  shape.pad_w = params.pad_w;
  shape.ceil_mode = params.ceil_mode;
  validate(shape);
  return shape;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dParams& params) {
  check_float(x, 4, "max_pool2d input");
  const Pool2dShape shape = make_shape(x, params);
  Backend& backend = backend_for(x.device());
  const Shape out_shape{shape.n, shape.c, shape.out_h(), shape.out_w()};
  Tensor y = detail::empty_float(out_shape, x.device());
  Tensor argmax = Tensor::empty(out_shape, DType::Int32, x.device());
  backend.max_pool2d_forward(shape, x.data<float>(), y.data<float>(),
                             argmax.data<std::int32_t>());
  if (autograd::needs_grad({&x})) {
    autograd::record(y, "max_pool2d", {x},
                     [shape, argmax, x_shape = x.shape()](const Tensor& dy,
                                                          const Tensor&) -> std::vector<Tensor> {
                       Tensor dx = detail::empty_float(x_shape, dy.device());
                       backend_for(dy.device())
                           .max_pool2d_backward(shape, dy.data<float>(),
                                                argmax.data<std::int32_t>(), dx.data<float>());
                       return {dx};
                     });
  }
  return y;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& params) {
  check_float(x, 4, "avg_pool2d input");
  const Pool2dShape shape = make_shape(x, params);
  Tensor y = detail::empty_float({shape.n, shape.c, shape.out_h(), shape.out_w()}, x.device());
  backend_for(x.device()).avg_pool2d_forward(shape, x.data<float>(), y.data<float>());
  if (autograd::needs_grad({&x})) {
    autograd::record(y, "avg_pool2d", {x},
                     [shape, x_shape = x.shape()](const Tensor& dy,
                                                  const Tensor&) -> std::vector<Tensor> {
                       Tensor dx = detail::empty_float(x_shape, dy.device());
                       backend_for(dy.device())
                           .avg_pool2d_backward(shape, dy.data<float>(), dx.data<float>());
                       return {dx};
                     });
  }
  return y;
}

Tensor global_avg_pool2d(const Tensor& x) {
  check_float(x, 4, "global_avg_pool2d input");
  const std::int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  DSN_CHECK(hw > 0, "global_avg_pool2d: empty spatial size in {}", to_string(x.shape()));
  Tensor y = detail::empty_float({n, c}, x.device());
  backend_for(x.device()).global_avg_pool_forward(n, c, hw, x.data<float>(), y.data<float>());
  if (autograd::needs_grad({&x})) {
    autograd::record(y, "global_avg_pool2d", {x},
                     [n, c, hw, x_shape = x.shape()](const Tensor& dy,
                                                     const Tensor&) -> std::vector<Tensor> {
                       Tensor dx = detail::empty_float(x_shape, dy.device());
                       backend_for(dy.device())
                           .global_avg_pool_backward(n, c, hw, dy.data<float>(), dx.data<float>());
                       return {dx};
                     });
  }
  return y;
}

}  // namespace dsn::ops
