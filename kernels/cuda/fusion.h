// CUDA twin of kernels/fusion.h: the side-output fusion passes (bilinear upsampling, top-left
// crop and sum) and their adjoint, bit-identical to dsn::cpu::fusion_forward and
// fusion_backward. The pass's map pointers are device memory and every call is enqueued on
// `stream`.
#pragma once

#include "kernels/cuda/stream.h"
#include "kernels/fusion.h"

namespace dsn::cuda {

// For every output of the pass: out = base + sum over terms of crop(up_f(term map)).
void fusion_forward(const FusionPass& pass, Stream stream);

// For every output of the pass (a source map's gradient): out = base + sum over terms of
// up_f^T(crop^T(term map)).
void fusion_backward(const FusionPass& pass, Stream stream);

}  // namespace dsn::cuda
