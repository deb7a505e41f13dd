// Side-output fusion of deeply supervised networks: score maps brought onto a common grid by
// Caffe's frozen bilinear upsampling and a top-left crop, then summed. One call computes every
// output of a FusionPass, so the `paper` preset of DSN-VGG-Face needs three passes each way:
//   forward   {R(4), R(3)}, {R(2), R(1)}, {fused map}
//   backward  {dR(1), dR(2)}, {dR(3), dR(4)}, {dR(5), dR(6)}
// where R(m) = A(m) + sum over the sources i of m of crop(up_f(R(i))) (the DSS short connections
// with r = 1) and the fused map is the sum of crop(up_f(R(m))) over all sides at the input size.
//
// up_f for f >= 2 is the transposed convolution with kernel 2f, stride f and pad 0 whose frozen
// weights come from Caffe's bilinear filler, as dsn::init::bilinear_upsampling builds them:
//   weight(a, b) = float(w(a) * w(b)) for taps a, b in [0, 2f), computed in double, with
//   w(a) = 1 - |a / f - c| and c = (2f - 1 - f % 2) / (2f).
// A map of size h gives (h + 1) f rows. For even f this is bilinear interpolation. up_1 is the
// identity, which the filler's 2 x 2 kernel (weights 1, 0, 0, 0) also computes once cropped.
// crop keeps rows [0, out_h) and columns [0, out_w) (Caffe's Crop with offset 0).
//
// Every map is (N, C, h, w) contiguous float32, and each of the N * C planes is fused on its own
// (DSN's score maps have C = 1).
#pragma once

#include <cstdint>

namespace dsn {

inline constexpr int kFusionMaxTerms = 6;
inline constexpr int kFusionMaxOutputs = 6;
// Bounds the 4 f^2 taps that one backward thread gathers per term.
inline constexpr std::int64_t kFusionMaxFactor = 1024;

// One summand of a fusion output.
struct FusionTerm {
  const float* map = nullptr;  // (N, C, h, w)
  std::int64_t h = 0, w = 0;
  std::int64_t factor = 1;  // f of up_f: 1 for a crop only, >= 2 for bilinear upsampling
};

// out = base + the sum of the terms, all (N, C, h, w) except the terms.
struct FusionOutput {
  float* out = nullptr;         // (N, C, h, w)
  const float* base = nullptr;  // (N, C, h, w), or null for zeros; may be equal to out
  std::int64_t h = 0, w = 0;
  int terms = 0;  // number of entries of `term` in use
  FusionTerm term[kFusionMaxTerms];
};

// Outputs computed by one call. No output may overlap a term map or another output of the same
// pass, so outputs that depend on each other go to consecutive passes.
struct FusionPass {
  std::int64_t n = 1, c = 1;
  int outputs = 0;  // number of entries of `output` in use
  FusionOutput output[kFusionMaxOutputs];
};

enum class FusionDirection { forward, backward };

// Checks the counts, sizes, factors and the aliasing rules above, and that every upsampled map
// covers the window it is cropped to. Throws dsn::Error naming the output and term.
// Forward: each term is a source map of size (h_t, w_t), which needs (h_t + 1) f >= h, or
// h_t >= h for f = 1 (the same for the widths). Backward: each term is the gradient of a forward
// output of size (h_t, w_t) that this output's map fed, so it needs (h + 1) f >= h_t, or
// h >= h_t for f = 1.
void validate(const FusionPass& pass, FusionDirection direction);

// Weight of tap (a, b), a and b in [0, 2 factor), of Caffe's bilinear upsampling kernel, computed
// exactly as dsn::init::bilinear_upsampling computes it. Returns 1 for factor 1 and tap (0, 0).
float bilinear_tap_weight(std::int64_t factor, std::int64_t a, std::int64_t b);

namespace cpu {

// For every output: out = base + sum over terms of crop_{h x w}(up_f(term map)). Each element
// starts from base and adds the terms in index order, each term's taps by ascending source row
// and then column, with fused multiply-adds. The CUDA twin keeps the same order and matches bit
// for bit.
void fusion_forward(const FusionPass& pass);

// Computes the adjoint of fusion_forward. Every output is a source map's gradient of size h x w,
// and out = base + sum over terms of up_f^T(crop^T(term map)), where each term map is the
// gradient of a forward output that the source fed with factor f. Element (i, j) gathers the
// term's values at (i f + a, j f + b) inside the term map times weight (a, b), in ascending
// (a, b) order.
void fusion_backward(const FusionPass& pass);

}  // namespace cpu
}  // namespace dsn
