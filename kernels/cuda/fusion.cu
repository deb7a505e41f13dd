// Side-output fusion passes on the GPU, the CUDA twin of kernels/cpu/fusion.cpp (definitions in
// kernels/fusion.h): out = base + sum of cropped bilinear upsamplings, and the adjoint gather.
//
// One launch computes every output of a FusionPass: blockIdx.y selects the output and a
// grid-stride loop over its (N, C, h, w) elements gives each thread whole output elements. The
// pass travels by value as the kernel argument (about 1.4 KB, under the 4 KB limit), so no
// descriptor copy precedes the launch. A forward element reads at most 4 source values per term,
// and a backward element gathers the 2f x 2f footprint of its source pixel from each term.
//
// Design choice a reader may question: each output element is summed by one thread, in the CPU
// twin's order and with __fmaf_rn where the twin calls std::fma. nvcc's default contraction
// cannot change an explicit fma, and no other multiply feeds an add, so the results match the
// CPU twin bit for bit on a GPU too. The tap weights are recomputed per tap instead of being read
// from a table: for the power-of-two factors of the networks here they are exact integer
// products, and other factors repeat the CPU twin's double-precision formula.
// NOTE: the bit-for-bit agreement follows from IEEE rounding of every operation on both sides,
// but so far it has been tested in the device emulation only, not on a GPU.
// NOTE: a backward thread loops over 4 f^2 taps per term, so for f = 32 the few source pixels of
// the deepest side (8 x 8 per image at 224 input) take thousands of steps each. Splitting the
// footprint over a warp would be faster but would change the summation order.
#include "kernels/cuda/compat.cuh"

#include "kernels/cuda/fusion.h"

#include <algorithm>
#include <cstdint>

#include "engine/error.h"

namespace dsn::cuda {
namespace {

constexpr int kBlockThreads = 256;
static_assert(sizeof(FusionPass) <= 4096, "a FusionPass must fit CUDA's 4 KB kernel parameters");
// Grids stop growing here and loop instead. 65535 blocks of 256 threads are about 60 times what
// an H200 (132 SMs of 2048 threads) holds at once.
constexpr std::int64_t kMaxBlocks = 65535;

__device__ __forceinline__ std::int64_t abs64(std::int64_t value) {
  return value < 0 ? -value : value;
}

// Weight of tap (a, b) of the bilinear kernel of `factor` >= 2, equal to
// dsn::bilinear_tap_weight. For an even power of two f <= 2048 the double formula is exact:
// w(a) = (2f - |2a - 2f + 1|) / (2f), so the product is an integer below 2^24 times the power
// of two 1 / (4 f^2), which float represents exactly.
__device__ __forceinline__ float tap_weight(std::int64_t factor, std::int64_t a, std::int64_t b) {
  if ((factor & (factor - 1)) == 0) {
    const std::int64_t kernel = 2 * factor;
    const std::int64_t numerator_a = kernel - abs64(2 * a - kernel + 1);
    const std::int64_t numerator_b = kernel - abs64(2 * b - kernel + 1);
    return static_cast<float>(numerator_a * numerator_b) *
           (1.0f / static_cast<float>(kernel * kernel));
  }
  const double center = static_cast<double>(2 * factor - 1 - factor % 2) / (2.0 * factor);
  const double weight_a = 1.0 - fabs(static_cast<double>(a) / factor - center);
  const double weight_b = 1.0 - fabs(static_cast<double>(b) / factor - center);
  return static_cast<float>(weight_a * weight_b);
}

// Returns acc plus element (y, x) of crop(up_f(map)) for one plane of the term, summed in the
// order of add_upsampled in kernels/cpu/fusion.cpp.
__device__ __forceinline__ float add_upsampled(FusionTerm term, std::int64_t plane, std::int64_t y,
                                               std::int64_t x, float acc) {
  const float* map = term.map + plane * term.h * term.w;
  const std::int64_t f = term.factor;
  if (f == 1) return acc + map[y * term.w + x];
  for (std::int64_t i = y / f - 1; i <= y / f; ++i) {
    if (i < 0 || i >= term.h) continue;
    for (std::int64_t j = x / f - 1; j <= x / f; ++j) {
      if (j < 0 || j >= term.w) continue;
      acc = __fmaf_rn(map[i * term.w + j], tap_weight(f, y - i * f, x - j * f), acc);
    }
  }
  return acc;
}

// Returns acc plus element (i, j) of up_f^T(crop^T(map)), summed in the order of add_gathered
// in kernels/cpu/fusion.cpp.
__device__ __forceinline__ float add_gathered(FusionTerm term, std::int64_t plane, std::int64_t i,
                                              std::int64_t j, float acc) {
  const float* map = term.map + plane * term.h * term.w;
  const std::int64_t f = term.factor;
  if (f == 1) return i < term.h && j < term.w ? acc + map[i * term.w + j] : acc;
  for (std::int64_t a = 0; a < 2 * f && i * f + a < term.h; ++a) {
    for (std::int64_t b = 0; b < 2 * f && j * f + b < term.w; ++b) {
      acc = __fmaf_rn(map[(i * f + a) * term.w + j * f + b], tap_weight(f, a, b), acc);
    }
  }
  return acc;
}

template <bool kForward>
__global__ void fusion_gather_per_element(FusionPass pass) {
  const int o = static_cast<int>(blockIdx.y);
  float* out = pass.output[o].out;
  const float* base = pass.output[o].base;
  const std::int64_t h = pass.output[o].h, w = pass.output[o].w;
  const int terms = pass.output[o].terms;
  const std::int64_t count = pass.n * pass.c * h * w;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       index < count; index += stride) {
    const std::int64_t plane = index / (h * w);
    const std::int64_t y = index / w % h, x = index % w;
    float acc = base != nullptr ? base[index] : 0.0f;
    for (int t = 0; t < terms; ++t) {
      const FusionTerm term = pass.output[o].term[t];
      if constexpr (kForward) {
        acc = add_upsampled(term, plane, y, x, acc);
      } else {
        acc = add_gathered(term, plane, y, x, acc);
      }
    }
    out[index] = acc;
  }
}

template <bool kForward>
void launch_pass(const FusionPass& pass, Stream stream) {
  validate(pass, kForward ? FusionDirection::forward : FusionDirection::backward);
  std::int64_t largest = 0;
  for (int o = 0; o < pass.outputs; ++o) {
    largest = std::max(largest, pass.n * pass.c * pass.output[o].h * pass.output[o].w);
  }
  const std::int64_t blocks = std::min(ceil_div(largest, kBlockThreads), kMaxBlocks);
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(pass.outputs));
  launch(fusion_gather_per_element<kForward>, grid, kBlockThreads, 0, stream, pass);
}

}  // namespace

void fusion_forward(const FusionPass& pass, Stream stream) {
  launch_pass<true>(pass, stream);
}

void fusion_backward(const FusionPass& pass, Stream stream) {
  launch_pass<false>(pass, stream);
}

}  // namespace dsn::cuda
