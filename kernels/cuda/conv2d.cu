// 2-D convolution (cross-correlation) and its two gradients as implicit GEMMs. Each block
// computes one tile of a GEMM and gathers the tile's operands from the activation and filter
// tensors straight into shared memory, so the im2col matrix never exists in global memory.
//
//   forward          y (N*P*Q, K)    = im2col(x) (N*P*Q, C*R*S)   * w^T (C*R*S, K)
//   backward data    dx (N*H*W, C)   = gather(dy) (N*H*W, K*R*S)  * w (K*R*S, C)
//   backward weight  dw^T (C*R*S, K) = im2col(x)^T (C*R*S, N*P*Q) * dy (N*P*Q, K)
//
// Layout: x (N, C, H, W), w (K, C, R, S), y (N, K, P, Q), contiguous float32. In backward data,
// w is read as [(k, r, s), c]. GEMM row m is the dimension that is contiguous in the output (the
// pixel, or the filter tap for dw). The lanes of a warp run along it, so a warp stores
// neighbouring addresses.
//
// Tiles (compile-time constants below; 256 threads each, sized for sm_90):
//   LargeTile 128 x 128 x 8, 8 x 8 outputs per thread. It does 64 FMAs per 16 floats read from
//     shared memory and uses 17 KB of shared memory and at most 128 registers, so two blocks fit
//     on one SM.
//   SmallTile 64 x 64 x 8, 4 x 4 outputs per thread, for problems whose large-tile grid has
//     fewer than kFullGridBlocks blocks (two per SM on the 132 SMs of an H200).
//   SmallChannelTile 64 x 64 x 32, for forward passes with C * R * S <= 32 such as a 3x3 filter
//     over an RGB image. The whole reduction (27 taps) is staged in one step behind one barrier,
//     and the multiply loop stops at the last tap instead of running a zero-padded step.
// A thread's sub-tile is made of 4 x 4 pieces spaced (threads along the axis) * 4 apart, so the
// float4 shared-memory reads of neighbouring lanes are contiguous and conflict-free. Shared
// memory is double-buffered: the next step is gathered into registers while the current one is
// multiplied, which leaves one __syncthreads per step. Gathers update the coordinates of their
// reduction index incrementally, so the loads inside the reduction loop do no integer division.
//
// Backward data never multiplies the zeros that a strided forward pass leaves between outputs.
// The dx pixels are split into stride_h * stride_w phases by (h + pad_h) % stride_h and
// (w + pad_w) % stride_w, one phase per blockIdx.z. In a phase, only the filter rows
// r = phase_h + i * stride_h reach an integral output row p = (h + pad_h - r) / stride_h, and
// likewise for columns. The reduction therefore runs over K * ceil((R - phase_h) / stride_h) *
// ceil((S - phase_w) / stride_w) taps. This serves the transposed convolution too: a 2f x 2f
// filter with stride f reduces over K * 4 taps.
//
// Backward weight reduces over N * P * Q, which can be millions long while K * C * R * S is small
// (one 64 x 64 tile for a 3x3 filter over RGB). Such shapes split the reduction into independent
// slices (blockIdx.z) that write partial sums to a scratch buffer, and a second kernel adds the
// slices in index order. Nothing uses atomics, and the split depends on the shape only (not on
// the GPU model), so a build gives bit-identical results on every run. Design choice a reader may
// question: the scratch buffer is cached per device and stream (with_split_workspace), because
// the kernel API has no workspace argument.
//
// Register use and spills, from ptxas: see the tile definitions.
#include "kernels/cuda/compat.cuh"

#include "kernels/cuda/tile_mma.cuh"

#include "kernels/cuda/conv2d.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "engine/error.h"

namespace dsn::cuda {
namespace {

// --- Tile configurations ---------------------------------------------------------------------

template <int kM_, int kN_, int kK_, int kThreadM_, int kThreadN_, int kMinBlocks_>
struct ConvTile {
  static constexpr int kM = kM_;  // GEMM rows per block
  static constexpr int kN = kN_;  // GEMM columns per block
  static constexpr int kK = kK_;  // reduction elements per shared-memory step
  static constexpr int kThreadM = kThreadM_;
  static constexpr int kThreadN = kThreadN_;
  static constexpr int kThreadsM = kM / kThreadM;
  static constexpr int kThreadsN = kN / kThreadN;
  static constexpr int kThreads = kThreadsM * kThreadsN;
  // Blocks per SM that __launch_bounds__ requests room for from the register allocator.
  static constexpr int kMinBlocks = kMinBlocks_;
  // Shared rows are padded by 4 floats: keeps float4 alignment and spreads the stores of
  // gathers whose lanes run along the reduction over all 32 banks.
  static constexpr int kStrideA = kM + 4;
  static constexpr int kStrideB = kN + 4;

  static_assert(kThreadM % 4 == 0 && kThreadN % 4 == 0, "sub-tiles are made of 4 x 4 pieces");
  static_assert(kThreads % kK == 0 && kThreads % kM == 0,
                "every gather mapping must cover the tile exactly");
  static_assert(kM * kK % kThreads == 0 && kN * kK % kThreads == 0,
                "every thread gathers the same number of elements");
};

// ptxas (CUDA 13.0, sm_90, -O3) fits every LargeTile kernel in 128 registers, the limit for two
// blocks per SM. To do so it spills 56 bytes per thread in backward data and 20 bytes in backward
// weight, which would otherwise take 161 and 153 registers and fit one block per SM. SmallTile
// uses 64 registers and SmallChannelTile 105, without spills.
using LargeTile = ConvTile<128, 128, 8, 8, 8, 2>;
using SmallTile = ConvTile<64, 64, 8, 4, 4, 4>;
using SmallChannelTile = ConvTile<64, 64, 32, 4, 4, 2>;

// Grids with fewer large tiles than this use SmallTile, and backward weight splits its
// reduction until it has about this many blocks: two blocks per SM on an H200 (132 SMs).
constexpr std::int64_t kFullGridBlocks = 264;
// Each slice of a split backward-weight reduction covers at least this many steps.
constexpr std::int64_t kMinStepsPerSplit = 16;
// Largest scratch buffer, in floats (64 MiB), for split backward-weight partial sums.
constexpr std::int64_t kMaxSplitFloats = std::int64_t{1} << 24;

constexpr int kBiasThreads = 256;
constexpr int kSumThreads = 256;

// Sizes of one convolution. The launchers check that every per-image tensor and every GEMM
// extent fits in int, so only image and split offsets need 64 bits.
struct ConvSizes {
  int n, c, h, w;
  int k, r, s;
  int stride_h, stride_w, pad_h, pad_w;
  int p, q;  // output height and width
};

// --- Index arithmetic ------------------------------------------------------------------------

// A flat index into an (outer, middle_size, inner_size) array, kept as its three coordinates.
struct Index3 {
  int outer, middle, inner;
};

__host__ __device__ __forceinline__ Index3 split_index(int index, int middle_size, int inner_size) {
  const int rest = index / inner_size;
  return {rest / middle_size, rest % middle_size, index % inner_size};
}

// index += 1
__device__ __forceinline__ void increment(Index3& index, int middle_size, int inner_size) {
  if (++index.inner == inner_size) {
    index.inner = 0;
    if (++index.middle == middle_size) {
      index.middle = 0;
      ++index.outer;
    }
  }
}

// index += delta, where delta = split_index(d, middle_size, inner_size) for some d >= 0.
__device__ __forceinline__ void advance_by(Index3& index, const Index3& delta, int middle_size,
                                           int inner_size) {
  index.inner += delta.inner;
  int carry = index.inner >= inner_size;
  if (carry) index.inner -= inner_size;
  index.middle += delta.middle + carry;
  carry = index.middle >= middle_size;
  if (carry) index.middle -= middle_size;
  index.outer += delta.outer + carry;
}

__device__ __forceinline__ bool inside(int value, int size) {
  return static_cast<unsigned>(value) < static_cast<unsigned>(size);
}

// --- Gathers: this thread's share of one (kK, kM) or (kK, kN) shared tile per step ----------
//
// A gather loads kLoads elements per step into registers (load, given the number of reduction
// elements from the step's start to the end), writes them to a k-major shared tile (store) and
// moves on by kK reduction elements (advance). Elements past the end of the reduction or outside
// the GEMM are zeros.

// Rows of the forward im2col matrix, or of the backward-data gather of dy. GEMM row m is a pixel
// (image, row0, col0). In the forward pass, reduction index (channel, i, j) reads
// x[image][channel][row0 + i][col0 + j]. In backward data (kBackward) it reads
// dy[image][channel][row0 - i][col0 - j]. Positions outside the plane read as zero. The lanes of
// a warp take consecutive rows (consecutive pixels), and each thread gathers a run of kLoads
// consecutive reduction indices.
template <class T, bool kBackward>
struct PixelGather {
  static constexpr int kLoads = T::kM * T::kK / T::kThreads;
  static constexpr int kSign = kBackward ? -1 : 1;

  const float* image;  // this thread's image of x or dy
  int row0, col0;
  int plane, height, width;  // channel stride and size of the gathered planes
  int taps_h, taps_w;        // filter taps per channel
  int first;                 // reduction index of this thread's first element in a step, or 2^30
  Index3 at{};               // (channel, i, j) of this thread's first element in the step
  Index3 step{};             // kK as an Index3
  int tile_index;            // shared-tile index of this thread's first element

  // `valid` is false for threads whose row lies past the end of the GEMM: they load zeros.
  __device__ PixelGather(const float* image_, const ConvSizes& sizes, bool valid, int row0_,
                         int col0_, int taps_h_, int taps_w_, int reduction)
      : image(image_), row0(row0_), col0(col0_), taps_h(taps_h_), taps_w(taps_w_) {
    height = kBackward ? sizes.p : sizes.h;
    width = kBackward ? sizes.q : sizes.w;
    plane = height * width;
    first = threadIdx.x / T::kM * kLoads;
    tile_index = first * T::kStrideA + threadIdx.x % T::kM;
    // An empty reduction (a backward-data phase without taps) never loads.
    if (reduction > 0) {
      at = split_index(first, taps_h, taps_w);
      step = split_index(T::kK, taps_h, taps_w);
    }
    if (!valid) first = 1 << 30;
  }

  __device__ __forceinline__ void load(float (&stage)[kLoads], int remaining) const {
    Index3 index = at;
#pragma unroll
    for (int e = 0; e < kLoads; ++e) {
      const int row = row0 + kSign * index.middle;
      const int col = col0 + kSign * index.inner;
      float value = 0.0f;
      if (first + e < remaining && inside(row, height) && inside(col, width)) {
        value = __ldg(image + index.outer * plane + row * width + col);
      }
      stage[e] = value;
      increment(index, taps_h, taps_w);
    }
  }

  __device__ __forceinline__ void store(const float (&stage)[kLoads], float* tile) const {
#pragma unroll
    for (int e = 0; e < kLoads; ++e) tile[tile_index + e * T::kStrideA] = stage[e];
  }

  __device__ __forceinline__ void advance() {
    advance_by(at, step, taps_h, taps_w);
  }
};

// Weights w (K, C * R * S) read as the forward GEMM's (C * R * S, K) operand: lanes take
// consecutive reduction indices (contiguous in w), threads kThreads / kK filters apart.
template <class T>
struct FilterRows {
  static constexpr int kLoads = T::kN * T::kK / T::kThreads;
  static constexpr int kFilterStep = T::kThreads / T::kK;

  const float* source;  // this thread's first element in the current step
  int row_length;       // C * R * S
  unsigned valid_mask;  // bit e: element e is a filter that exists
  int tile_index;

  __device__ FilterRows(const float* w, int n0, int filters, int reduction) {
    const int k = threadIdx.x % T::kK;
    const int filter = threadIdx.x / T::kK;
    row_length = reduction;
    source = w + std::int64_t(n0 + filter) * reduction + k;
    valid_mask = 0;
#pragma unroll
    for (int e = 0; e < kLoads; ++e) {
      if (n0 + filter + e * kFilterStep < filters) valid_mask |= 1u << e;
    }
    tile_index = k * T::kStrideB + filter;
  }

  __device__ __forceinline__ void load(float (&stage)[kLoads], int remaining) const {
    const bool in_reduction = int(threadIdx.x % T::kK) < remaining;
    const float* p = source;
    const std::int64_t jump = std::int64_t(kFilterStep) * row_length;
#pragma unroll
    for (int e = 0; e < kLoads; ++e) {
      stage[e] = (valid_mask >> e & 1u) && in_reduction ? __ldg(p) : 0.0f;
      p += jump;
    }
  }

  __device__ __forceinline__ void store(const float (&stage)[kLoads], float* tile) const {
#pragma unroll
    for (int e = 0; e < kLoads; ++e) tile[tile_index + e * kFilterStep] = stage[e];
  }

  __device__ __forceinline__ void advance() {
    source += T::kK;
  }
};

// Weights for backward data in one phase: GEMM column c, reduction index (k, i, j) reads
// w[k][c][phase_h + i * stride_h][phase_w + j * stride_w]. Lanes take consecutive reduction
// indices, threads kThreads / kK channels apart.
template <class T>
struct PhaseFilterGather {
  static constexpr int kLoads = T::kN * T::kK / T::kThreads;
  static constexpr int kChannelStep = T::kThreads / T::kK;

  const float* first_tap;  // w[0][first channel of this thread][phase_h][phase_w]
  const ConvSizes& z;
  int taps_h, taps_w;
  unsigned valid_mask;  // bit e: element e is a channel that exists
  Index3 at{}, step{};  // (k, i, j) of this thread's element in the current step, and kK
  int tile_index;

  __device__ PhaseFilterGather(const float* w, const ConvSizes& sizes, int n0, int phase_h,
                               int phase_w, int taps_h_, int taps_w_, int reduction)
      : z(sizes), taps_h(taps_h_), taps_w(taps_w_) {
    const int k = threadIdx.x % T::kK;
    const int channel = n0 + threadIdx.x / T::kK;
    first_tap = w + (std::int64_t(channel) * z.r + phase_h) * z.s + phase_w;
    valid_mask = 0;
#pragma unroll
    for (int e = 0; e < kLoads; ++e) {
      if (channel + e * kChannelStep < z.c) valid_mask |= 1u << e;
    }
    tile_index = k * T::kStrideB + threadIdx.x / T::kK;
    if (reduction > 0) {
      at = split_index(k, taps_h, taps_w);
      step = split_index(T::kK, taps_h, taps_w);
    }
  }

  __device__ __forceinline__ void load(float (&stage)[kLoads], int remaining) const {
    const bool in_reduction = int(threadIdx.x % T::kK) < remaining;
    const int filter_size = z.r * z.s;
    const float* p = first_tap + at.outer * z.c * filter_size + at.middle * z.stride_h * z.s +
                     at.inner * z.stride_w;
#pragma unroll
    for (int e = 0; e < kLoads; ++e) {
      stage[e] = (valid_mask >> e & 1u) && in_reduction ? __ldg(p) : 0.0f;
      p += kChannelStep * filter_size;
    }
  }

  __device__ __forceinline__ void store(const float (&stage)[kLoads], float* tile) const {
#pragma unroll
    for (int e = 0; e < kLoads; ++e) tile[tile_index + e * kChannelStep] = stage[e];
  }

  __device__ __forceinline__ void advance() {
    advance_by(at, step, taps_h, taps_w);
  }
};

// Columns of the im2col matrix, for backward weight. GEMM row m is a filter tap (c, r, s) and
// reduction index (image, p, q) an output pixel. The element is
// x[image][c][p * stride_h - pad_h + r][q * stride_w - pad_w + s]. Lanes take consecutive
// pixels (neighbouring addresses of x), and threads kThreads / kK taps apart.
template <class T>
struct TapGather {
  static constexpr int kLoads = T::kM * T::kK / T::kThreads;
  static constexpr int kTapStep = T::kThreads / T::kK;

  const float* x;
  const ConvSizes& z;
  const Index3& pixel_step;  // kK as an (image, p, q) offset
  const Index3& tap_step;    // kTapStep as a (c, r, s) offset
  int first_tap;             // c * R * S + r * S + s of element 0
  Index3 tap;                // (c, r, s) of element 0
  Index3 at;                 // (image, p, q) of this thread's pixel in the current step
  int tile_index;

  __device__ TapGather(const float* x_, const ConvSizes& sizes, const Index3& pixel_step_,
                       const Index3& tap_step_, int m0, int k_begin)
      : x(x_), z(sizes), pixel_step(pixel_step_), tap_step(tap_step_) {
    const int k = threadIdx.x % T::kK;
    first_tap = m0 + threadIdx.x / T::kK;
    tap = split_index(first_tap, z.r, z.s);
    at = split_index(k_begin + k, z.p, z.q);
    tile_index = k * T::kStrideA + threadIdx.x / T::kK;
  }

  __device__ __forceinline__ void load(float (&stage)[kLoads], int remaining) const {
    const bool in_reduction = int(threadIdx.x % T::kK) < remaining;
    const float* image = x + std::int64_t(at.outer) * z.c * z.h * z.w;
    const int row0 = at.middle * z.stride_h - z.pad_h;
    const int col0 = at.inner * z.stride_w - z.pad_w;
    const int taps = z.c * z.r * z.s;
    Index3 t = tap;
#pragma unroll
    for (int e = 0; e < kLoads; ++e) {
      const int row = row0 + t.middle;
      const int col = col0 + t.inner;
      const bool valid =
          first_tap + e * kTapStep < taps && in_reduction && inside(row, z.h) && inside(col, z.w);
      stage[e] = valid ? __ldg(image + t.outer * z.h * z.w + row * z.w + col) : 0.0f;
      advance_by(t, tap_step, z.r, z.s);
    }
  }

  __device__ __forceinline__ void store(const float (&stage)[kLoads], float* tile) const {
#pragma unroll
    for (int e = 0; e < kLoads; ++e) tile[tile_index + e * kTapStep] = stage[e];
  }

  __device__ __forceinline__ void advance() {
    advance_by(at, pixel_step, z.p, z.q);
  }
};

// dy (N, K, P, Q) read as the backward-weight GEMM's (N * P * Q, K) operand: lanes take
// consecutive pixels (contiguous in dy), threads kThreads / kK output channels apart. A thread
// reads the same pixel as in its TapGather, so it takes the pixel position from there: advancing
// the TapGather advances both.
template <class T>
struct OutputGradGather {
  static constexpr int kLoads = T::kN * T::kK / T::kThreads;
  static constexpr int kChannelStep = T::kThreads / T::kK;
  static_assert(TapGather<T>::kTapStep == kChannelStep, "both gathers use the same lane mapping");

  const float* dy;
  const ConvSizes& z;
  const TapGather<T>& pixels;
  int channel;          // output channel of element 0
  unsigned valid_mask;  // bit e: element e is an output channel that exists
  int tile_index;

  __device__ OutputGradGather(const float* dy_, const ConvSizes& sizes, const TapGather<T>& pixels_,
                              int n0)
      : dy(dy_), z(sizes), pixels(pixels_) {
    channel = n0 + threadIdx.x / T::kK;
    valid_mask = 0;
#pragma unroll
    for (int e = 0; e < kLoads; ++e) {
      if (channel + e * kChannelStep < z.k) valid_mask |= 1u << e;
    }
    tile_index = threadIdx.x % T::kK * T::kStrideB + threadIdx.x / T::kK;
  }

  __device__ __forceinline__ void load(float (&stage)[kLoads], int remaining) const {
    const bool in_reduction = int(threadIdx.x % T::kK) < remaining;
    const int plane = z.p * z.q;
    const Index3& at = pixels.at;
    const float* p =
        dy + (std::int64_t(at.outer) * z.k + channel) * plane + at.middle * z.q + at.inner;
#pragma unroll
    for (int e = 0; e < kLoads; ++e) {
      stage[e] = (valid_mask >> e & 1u) && in_reduction ? __ldg(p) : 0.0f;
      p += kChannelStep * plane;
    }
  }

  __device__ __forceinline__ void store(const float (&stage)[kLoads], float* tile) const {
#pragma unroll
    for (int e = 0; e < kLoads; ++e) tile[tile_index + e * kChannelStep] = stage[e];
  }

  __device__ __forceinline__ void advance() {}
};

// --- Block-level GEMM ------------------------------------------------------------------------

// Lanes run along GEMM rows, the dimension that is contiguous in the output. The last, partial
// step stops at the end of the reduction, which saves most of SmallChannelTile's single step when
// C * R * S is well below kK.
constexpr tile_mma::LaneAxis kLanes = tile_mma::LaneAxis::kRows;
constexpr tile_mma::LastStep kLastStep = tile_mma::LastStep::kStopAtEnd;

// --- Kernels ---------------------------------------------------------------------------------

// y = x * w + bias, then ReLU: one (kM pixels, kN output channels) tile per block, blockIdx.x
// along the N * P * Q pixels and blockIdx.y along the K output channels.
template <class T>
__global__ void __launch_bounds__(T::kThreads, T::kMinBlocks)
    conv2d_fwd_implicit_gemm(const float* __restrict__ x, const float* __restrict__ w,
                             const float* __restrict__ bias, float* __restrict__ y, ConvSizes z,
                             bool relu) {
  const int plane = z.p * z.q;
  const int pixels = z.n * plane;
  const int reduction = z.c * z.r * z.s;
  const int m0 = blockIdx.x * T::kM;
  const int n0 = blockIdx.y * T::kN;

  // This thread's row of im2col(x): output pixel m (clamped so that the address stays valid).
  const int row = m0 + int(threadIdx.x % T::kM);
  const int m = min(row, pixels - 1);
  const float* image = x + std::int64_t(m / plane) * z.c * z.h * z.w;
  const int row0 = m % plane / z.q * z.stride_h - z.pad_h;
  const int col0 = m % z.q * z.stride_w - z.pad_w;
  PixelGather<T, false> a(image, z, row < pixels, row0, col0, z.r, z.s, reduction);
  FilterRows<T> b(w, n0, z.k, reduction);
  float acc[T::kThreadM][T::kThreadN] = {};
  tile_mma::multiply_tiles<T, kLanes, kLastStep>(a, b, reduction, acc);

#pragma unroll
  for (int i = 0; i < T::kThreadM; ++i) {
    const int pixel = m0 + tile_mma::thread_row<T, kLanes>(i);
    if (pixel >= pixels) continue;
    float* out = y + std::int64_t(pixel / plane) * z.k * plane + pixel % plane;
#pragma unroll
    for (int j = 0; j < T::kThreadN; ++j) {
      const int channel = n0 + tile_mma::thread_column<T, kLanes>(j);
      if (channel >= z.k) continue;
      float value = acc[i][j];
      if (bias != nullptr) value += bias[channel];
      if (relu) value = max(value, 0.0f);
      out[channel * plane] = value;
    }
  }
}

// dx = dy * w^T for the dx pixels of one phase (blockIdx.z = phase_h * stride_w + phase_w):
// one (kM pixels, kN input channels) tile per block, blockIdx.x along the phase's pixels and
// blockIdx.y along the C input channels.
template <class T>
__global__ void __launch_bounds__(T::kThreads, T::kMinBlocks)
    conv2d_dgrad_implicit_gemm(const float* __restrict__ dy, const float* __restrict__ w,
                               float* __restrict__ dx, ConvSizes z) {
  // The phase's dx rows are h = first_h + i * stride_h for i < rows; they take the filter rows
  // r = phase_h + a * stride_h for a < taps_h, at dy row p = base_h + i - a. Likewise columns.
  const int phase_h = blockIdx.z / z.stride_w;
  const int phase_w = blockIdx.z % z.stride_w;
  const int first_h = ((phase_h - z.pad_h) % z.stride_h + z.stride_h) % z.stride_h;
  const int first_w = ((phase_w - z.pad_w) % z.stride_w + z.stride_w) % z.stride_w;
  const int rows = first_h < z.h ? ceil_div(z.h - first_h, z.stride_h) : 0;
  const int cols = first_w < z.w ? ceil_div(z.w - first_w, z.stride_w) : 0;
  const int taps_h = phase_h < z.r ? ceil_div(z.r - phase_h, z.stride_h) : 0;
  const int taps_w = phase_w < z.s ? ceil_div(z.s - phase_w, z.stride_w) : 0;
  const int base_h = (first_h + z.pad_h - phase_h) / z.stride_h;
  const int base_w = (first_w + z.pad_w - phase_w) / z.stride_w;

  const int phase_plane = rows * cols;
  const int pixels = z.n * phase_plane;
  const int m0 = blockIdx.x * T::kM;
  // The grid covers the largest phase; this block has no pixels of its phase (all threads).
  if (m0 >= pixels) return;
  const int reduction = z.k * taps_h * taps_w;
  const int n0 = blockIdx.y * T::kN;

  // This thread's row of the dy gather: pixel m of the phase (clamped like the forward pass).
  const int row = m0 + int(threadIdx.x % T::kM);
  const int m = min(row, pixels - 1);
  const float* image = dy + std::int64_t(m / phase_plane) * z.k * z.p * z.q;
  const int row0 = base_h + m % phase_plane / cols;
  const int col0 = base_w + m % cols;
  PixelGather<T, true> a(image, z, row < pixels, row0, col0, taps_h, taps_w, reduction);
  PhaseFilterGather<T> b(w, z, n0, phase_h, phase_w, taps_h, taps_w, reduction);
  float acc[T::kThreadM][T::kThreadN] = {};
  tile_mma::multiply_tiles<T, kLanes, kLastStep>(a, b, reduction, acc);

  const int plane = z.h * z.w;
#pragma unroll
  for (int i = 0; i < T::kThreadM; ++i) {
    const int pixel = m0 + tile_mma::thread_row<T, kLanes>(i);
    if (pixel >= pixels) continue;
    const int rest = pixel % phase_plane;
    const int h = first_h + rest / cols * z.stride_h;
    const int wcol = first_w + rest % cols * z.stride_w;
    float* out = dx + std::int64_t(pixel / phase_plane) * z.c * plane + h * z.w + wcol;
#pragma unroll
    for (int j = 0; j < T::kThreadN; ++j) {
      const int channel = n0 + tile_mma::thread_column<T, kLanes>(j);
      if (channel < z.c) out[channel * plane] = acc[i][j];
    }
  }
}

// dw^T = im2col(x)^T * dy over pixels [k_begin, k_begin + slice) of the N * P * Q, where
// k_begin = blockIdx.z * slice, one (kM filter taps, kN output channels) tile per block. Writes
// dw (K, C * R * S) itself, or slice blockIdx.z of the (splits, K, C * R * S) partial sums.
// pixel_step is kK as an (image, p, q) offset, and tap_step is kThreads / kK as a (c, r, s) one.
template <class T>
__global__ void __launch_bounds__(T::kThreads, T::kMinBlocks)
    conv2d_wgrad_implicit_gemm(const float* __restrict__ x, const float* __restrict__ dy,
                               float* __restrict__ out, ConvSizes z, int slice, Index3 pixel_step,
                               Index3 tap_step) {
  const int taps = z.c * z.r * z.s;
  const int pixels = z.n * z.p * z.q;
  const int k_begin = blockIdx.z * slice;
  const int reduction = min(slice, pixels - k_begin);
  const int m0 = blockIdx.x * T::kM;
  const int n0 = blockIdx.y * T::kN;

  TapGather<T> a(x, z, pixel_step, tap_step, m0, k_begin);
  OutputGradGather<T> b(dy, z, a, n0);
  float acc[T::kThreadM][T::kThreadN] = {};
  tile_mma::multiply_tiles<T, kLanes, kLastStep>(a, b, reduction, acc);

  float* partial = out + std::int64_t(blockIdx.z) * z.k * taps;
#pragma unroll
  for (int i = 0; i < T::kThreadM; ++i) {
    const int tap = m0 + tile_mma::thread_row<T, kLanes>(i);
    if (tap >= taps) continue;
#pragma unroll
    for (int j = 0; j < T::kThreadN; ++j) {
      const int channel = n0 + tile_mma::thread_column<T, kLanes>(j);
      if (channel < z.k) partial[channel * taps + tap] = acc[i][j];
    }
  }
}

// dw[i] = sum over s = 0, 1, ... of partial[s][i], always in that order.
__global__ void conv2d_wgrad_sum_splits(const float* __restrict__ partial, float* __restrict__ dw,
                                        std::int64_t count, int splits) {
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    float total = 0.0f;
    for (int s = 0; s < splits; ++s) total += partial[s * count + i];
    dw[i] = total;
  }
}

// dbias[k] = sum of dy[n][k][p][q], one block per output channel (blockIdx.x). Each thread sums a
// fixed strided subset, and then a tree in shared memory adds the partial sums in a fixed order.
__global__ void __launch_bounds__(kBiasThreads)
    conv2d_bias_grad_block_reduce(const float* __restrict__ dy, float* __restrict__ dbias, int n,
                                  int k, int plane) {
  __shared__ float partial[kBiasThreads];
  const int channel = blockIdx.x;
  float total = 0.0f;
  for (int image = 0; image < n; ++image) {
    const float* row = dy + (std::int64_t(image) * k + channel) * plane;
    for (int i = threadIdx.x; i < plane; i += kBiasThreads) total += row[i];
  }
  partial[threadIdx.x] = total;
  __syncthreads();
  for (int width = kBiasThreads / 2; width > 0; width /= 2) {
    if (int(threadIdx.x) < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) dbias[channel] = partial[0];
}

// --- Launch planning -------------------------------------------------------------------------

template <class T>
constexpr TilePlan tile_plan(const char* kernel, int splits = 1) {
  return {kernel, T::kM, T::kN, T::kK, splits};
}

// Blocks of a grid of (rows x columns x layers) GEMM outputs in T's tiles.
template <class T>
std::int64_t block_count(std::int64_t rows, std::int64_t columns, std::int64_t layers = 1) {
  return ceil_div(rows, std::int64_t{T::kM}) * ceil_div(columns, std::int64_t{T::kN}) * layers;
}

// Checks the shape and that every extent the kernels compute in int fits; returns the sizes.
ConvSizes checked_sizes(const Conv2dShape& shape, const char* function) {
  validate(shape);
  const std::int64_t p = shape.out_h(), q = shape.out_w();
  struct Extent {
    const char* name;
    std::int64_t elements;
  };
  const Extent extents[] = {
      {"one image of x (C * H * W)", shape.c * shape.h * shape.w},
      {"one image of y (K * P * Q)", shape.k * p * q},
      {"w (K * C * R * S)", shape.k * shape.c * shape.r * shape.s},
      {"the output pixels (N * P * Q)", shape.n * p * q},
      {"the input pixels (N * H * W)", shape.n * shape.h * shape.w},
      {"the backward-data reduction (K * R * S)", shape.k * shape.r * shape.s},
  };
  for (const Extent& extent : extents) {
    DSN_CHECK(extent.elements <= std::numeric_limits<int>::max(),
              "{}: {} has {} elements for shape n={} c={} h={} w={} k={} r={} s={}, more than "
              "the kernels' 32-bit indexing supports ({}); use a smaller batch or image",
              function, extent.name, extent.elements, shape.n, shape.c, shape.h, shape.w, shape.k,
              shape.r, shape.s, std::numeric_limits<int>::max());
  }
  return {int(shape.n),
          int(shape.c),
          int(shape.h),
          int(shape.w),
          int(shape.k),
          int(shape.r),
          int(shape.s),
          int(shape.stride_h),
          int(shape.stride_w),
          int(shape.pad_h),
          int(shape.pad_w),
          int(p),
          int(q)};
}

enum class ForwardPath { small_channel, large, small };

ForwardPath forward_path(const Conv2dShape& shape) {
  if (shape.c * shape.r * shape.s <= SmallChannelTile::kK) return ForwardPath::small_channel;
  const std::int64_t pixels = shape.n * shape.out_h() * shape.out_w();
  return block_count<LargeTile>(pixels, shape.k) >= kFullGridBlocks ? ForwardPath::large
                                                                    : ForwardPath::small;
}

std::int64_t phase_count(const Conv2dShape& shape) {
  return shape.stride_h * shape.stride_w;
}

// Pixels of the largest phase: ceil(H / stride_h) * ceil(W / stride_w) per image.
std::int64_t largest_phase_pixels(const Conv2dShape& shape) {
  return shape.n * ceil_div(shape.h, shape.stride_h) * ceil_div(shape.w, shape.stride_w);
}

bool backward_data_uses_large_tile(const Conv2dShape& shape) {
  return block_count<LargeTile>(largest_phase_pixels(shape), shape.c, phase_count(shape)) >=
         kFullGridBlocks;
}

// The backward-weight launch: tile, slices of the N * P * Q reduction, and slice length.
struct WeightGradPlan {
  bool large = false;
  int splits = 1;
  int slice = 0;  // reduction elements per slice, a multiple of the tile's kK
};

template <class T>
WeightGradPlan split_weight_grad(const Conv2dShape& shape, bool large) {
  const std::int64_t taps = shape.c * shape.r * shape.s;
  const std::int64_t pixels = shape.n * shape.out_h() * shape.out_w();
  const std::int64_t steps = ceil_div(pixels, std::int64_t{T::kK});
  const std::int64_t tiles = block_count<T>(taps, shape.k);
  std::int64_t splits = ceil_div(kFullGridBlocks, tiles);
  splits = std::min(splits, steps / kMinStepsPerSplit);
  splits = std::min(splits, kMaxSplitFloats / (taps * shape.k));
  splits = std::clamp<std::int64_t>(splits, 1, 65535);
  // Equal slices of whole steps; recounting drops slices that would be empty.
  const std::int64_t slice_steps = ceil_div(steps, splits);
  splits = ceil_div(steps, slice_steps);
  return {large, int(splits), int(slice_steps * T::kK)};
}

WeightGradPlan plan_weight_grad(const Conv2dShape& shape) {
  const std::int64_t taps = shape.c * shape.r * shape.s;
  if (block_count<LargeTile>(taps, shape.k) >= kFullGridBlocks) {
    return split_weight_grad<LargeTile>(shape, true);
  }
  return split_weight_grad<SmallTile>(shape, false);
}

// Runs enqueue(scratch) with scratch memory of at least `floats` floats for split
// backward-weight sums. There is one buffer per (device, stream): work on one stream runs in
// order, so the buffer is free for the next call enqueued on that stream. enqueue runs under a
// lock, so a host thread that grows the buffer first waits for the other threads' launches to be
// enqueued, and then for the stream to finish with the old buffer. The buffers are never freed
// and the map is leaked on purpose, because freeing device memory during static destruction
// can fail after the CUDA runtime has shut down.
template <class Enqueue>
void with_split_workspace(Stream stream, std::int64_t floats, Enqueue enqueue) {
  struct Buffer {
    float* data = nullptr;
    std::int64_t floats = 0;
  };
  static std::mutex mutex;
  static auto* buffers = new std::map<std::pair<int, Stream>, Buffer>();
  int device = 0;
  DSN_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  Buffer& buffer = (*buffers)[{device, stream}];
  if (buffer.floats < floats) {
    if (buffer.data != nullptr) {
      DSN_CUDA_CHECK(cudaStreamSynchronize(stream));
      DSN_CUDA_CHECK(cudaFree(buffer.data));
      buffer = {};
    }
    DSN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&buffer.data),
                              static_cast<std::size_t>(floats) * sizeof(float)));
    buffer.floats = floats;
  }
  enqueue(buffer.data);
}

// --- Launchers -------------------------------------------------------------------------------

template <class T>
void launch_forward(const ConvSizes& z, const float* x, const float* w, const float* bias, float* y,
                    bool relu, Stream stream) {
  const std::int64_t pixels = std::int64_t(z.n) * z.p * z.q;
  const dim3 grid(unsigned(ceil_div(pixels, std::int64_t{T::kM})), unsigned(ceil_div(z.k, T::kN)));
  launch(conv2d_fwd_implicit_gemm<T>, grid, dim3(T::kThreads), 0, stream, x, w, bias, y, z, relu);
}

template <class T>
void launch_backward_data(const Conv2dShape& shape, const ConvSizes& z, const float* dy,
                          const float* w, float* dx, Stream stream) {
  const dim3 grid(unsigned(ceil_div(largest_phase_pixels(shape), std::int64_t{T::kM})),
                  unsigned(ceil_div(z.c, T::kN)), unsigned(phase_count(shape)));
  launch(conv2d_dgrad_implicit_gemm<T>, grid, dim3(T::kThreads), 0, stream, dy, w, dx, z);
}

template <class T>
void launch_backward_weight(const ConvSizes& z, const WeightGradPlan& plan, const float* x,
                            const float* dy, float* out, Stream stream) {
  const int taps = z.c * z.r * z.s;
  const Index3 pixel_step = split_index(T::kK, z.p, z.q);
  const Index3 tap_step = split_index(T::kThreads / T::kK, z.r, z.s);
  const dim3 grid(unsigned(ceil_div(taps, T::kM)), unsigned(ceil_div(z.k, T::kN)),
                  unsigned(plan.splits));
  launch(conv2d_wgrad_implicit_gemm<T>, grid, dim3(T::kThreads), 0, stream, x, dy, out, z,
         plan.slice, pixel_step, tap_step);
}

}  // namespace

void conv2d_forward(const Conv2dShape& shape, const float* x, const float* w, const float* bias,
                    float* y, bool relu, Stream stream) {
  const ConvSizes z = checked_sizes(shape, "cuda::conv2d_forward");
  switch (forward_path(shape)) {
    case ForwardPath::small_channel:
      launch_forward<SmallChannelTile>(z, x, w, bias, y, relu, stream);
      break;
    case ForwardPath::large:
      launch_forward<LargeTile>(z, x, w, bias, y, relu, stream);
      break;
    case ForwardPath::small:
      launch_forward<SmallTile>(z, x, w, bias, y, relu, stream);
      break;
  }
}

void conv2d_backward_data(const Conv2dShape& shape, const float* dy, const float* w, float* dx,
                          Stream stream) {
  const ConvSizes z = checked_sizes(shape, "cuda::conv2d_backward_data");
  DSN_CHECK(phase_count(shape) <= 65535,
            "cuda::conv2d_backward_data: stride {}x{} gives {} phases, one per block layer, more "
            "than the grid limit of 65535; use strides whose product is at most 65535",
            shape.stride_h, shape.stride_w, phase_count(shape));
  if (backward_data_uses_large_tile(shape)) {
    launch_backward_data<LargeTile>(shape, z, dy, w, dx, stream);
  } else {
    launch_backward_data<SmallTile>(shape, z, dy, w, dx, stream);
  }
}

void conv2d_backward_weight(const Conv2dShape& shape, const float* x, const float* dy, float* dw,
                            float* dbias, Stream stream) {
  const ConvSizes z = checked_sizes(shape, "cuda::conv2d_backward_weight");
  const WeightGradPlan plan = plan_weight_grad(shape);
  // Writes dw directly, or the partial sums of every slice to `partial` and then their sum to dw.
  const auto enqueue = [&](float* partial) {
    float* out = plan.splits == 1 ? dw : partial;
    if (plan.large) {
      launch_backward_weight<LargeTile>(z, plan, x, dy, out, stream);
    } else {
      launch_backward_weight<SmallTile>(z, plan, x, dy, out, stream);
    }
    if (plan.splits > 1) {
      const std::int64_t weights = shape.k * shape.c * shape.r * shape.s;
      const std::int64_t blocks = std::min<std::int64_t>(ceil_div(weights, kSumThreads), 4096);
      launch(conv2d_wgrad_sum_splits, blocks, dim3(kSumThreads), 0, stream, partial, dw, weights,
             plan.splits);
    }
  };
  if (plan.splits == 1) {
    enqueue(nullptr);
  } else {
    with_split_workspace(stream, plan.splits * shape.k * shape.c * shape.r * shape.s, enqueue);
  }

  if (dbias != nullptr) {
    launch(conv2d_bias_grad_block_reduce, shape.k, dim3(kBiasThreads), 0, stream, dy, dbias, z.n,
           z.k, z.p * z.q);
  }
}

TilePlan plan_conv2d_forward(const Conv2dShape& shape) {
  checked_sizes(shape, "cuda::plan_conv2d_forward");
  switch (forward_path(shape)) {
    case ForwardPath::small_channel:
      return tile_plan<SmallChannelTile>("conv2d_fwd_implicit_gemm");
    case ForwardPath::large:
      return tile_plan<LargeTile>("conv2d_fwd_implicit_gemm");
    case ForwardPath::small:
      break;
  }
  return tile_plan<SmallTile>("conv2d_fwd_implicit_gemm");
}

TilePlan plan_conv2d_backward_data(const Conv2dShape& shape) {
  checked_sizes(shape, "cuda::plan_conv2d_backward_data");
  return backward_data_uses_large_tile(shape) ? tile_plan<LargeTile>("conv2d_dgrad_implicit_gemm")
                                              : tile_plan<SmallTile>("conv2d_dgrad_implicit_gemm");
}

TilePlan plan_conv2d_backward_weight(const Conv2dShape& shape) {
  checked_sizes(shape, "cuda::plan_conv2d_backward_weight");
  const WeightGradPlan plan = plan_weight_grad(shape);
  return plan.large ? tile_plan<LargeTile>("conv2d_wgrad_implicit_gemm", plan.splits)
                    : tile_plan<SmallTile>("conv2d_wgrad_implicit_gemm", plan.splits);
}

}  // namespace dsn::cuda
