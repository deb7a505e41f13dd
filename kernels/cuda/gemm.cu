// Tiled single-precision GEMM on row-major matrices: C (M, N) = alpha * op(A) op(B) + beta * C,
// op(A) (M, K) and op(B) (K, N) read through the leading dimensions lda, ldb and ldc.
//
// Each block computes one tile of C. Per step of kK reduction elements it stages the (kM, kK)
// slice of op(A) and the (kK, kN) slice of op(B) in shared memory, both stored k-major so that a
// thread reads its rows and columns as float4. Every thread accumulates a (kThreadM, kThreadN)
// sub-tile in registers, made of 4 x 4 pieces spaced kThreadsM * 4 rows and kThreadsN * 4
// columns apart, so the float4 reads of neighbouring lanes are contiguous and conflict-free.
// Lanes run along N, so the lanes of a warp store neighbouring columns of a row of C. Shared
// memory is double-buffered: the next step is loaded from global memory into registers while
// the current one is multiplied, which leaves one __syncthreads per step.
//
// Tiles (GemmTile below; 256 threads each, sized for sm_90):
//   LargeTile 128 x 128 x 8, 8 x 8 outputs per thread. It does 64 FMAs per 16 floats read from
//     shared memory and uses 17 KB of shared memory and 128 registers without spills (ptxas,
//     CUDA 13.0), so two blocks fit on one SM.
//   SmallTile 64 x 64 x 8, 4 x 4 outputs per thread, 64 registers. It gives four times the
//     blocks for problems whose large-tile grid would leave SMs idle.
// The large tile is used when its grid has at least kFullGridBlocks blocks (two per SM on the
// 132 SMs of an H200).
//
// Global loads are scalar: any leading dimension and alignment works, and the lanes of a warp
// always read consecutive addresses of the operand's contiguous dimension (the loader's mapping
// depends on the transposition). Design choice a reader may question: no tensor cores. The
// engine trains in float32, and TF32 would round inputs to 10 mantissa bits, which the CPU
// twin does not do.
#include "kernels/cuda/compat.cuh"

#include "kernels/cuda/tile_mma.cuh"

#include "kernels/cuda/gemm.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "engine/error.h"

namespace dsn::cuda {
namespace {

template <int kM_, int kN_, int kK_, int kThreadM_, int kThreadN_, int kMinBlocks_>
struct GemmTile {
  static constexpr int kM = kM_;  // rows of C per block
  static constexpr int kN = kN_;  // columns of C per block
  static constexpr int kK = kK_;  // reduction elements per shared-memory step
  static constexpr int kThreadM = kThreadM_;
  static constexpr int kThreadN = kThreadN_;
  static constexpr int kThreadsM = kM / kThreadM;
  static constexpr int kThreadsN = kN / kThreadN;
  static constexpr int kThreads = kThreadsM * kThreadsN;
  // Blocks per SM that __launch_bounds__ requests room for from the register allocator.
  static constexpr int kMinBlocks = kMinBlocks_;
  // Shared rows are padded by 4 floats: keeps float4 alignment and spreads the stores of loaders
  // whose lanes run along k over all 32 banks.
  static constexpr int kStrideA = kM + 4;
  static constexpr int kStrideB = kN + 4;

  static_assert(kThreadM % 4 == 0 && kThreadN % 4 == 0, "sub-tiles are made of 4 x 4 pieces");
  static_assert(kThreads % kK == 0 && kThreads % kM == 0 && kThreads % kN == 0,
                "every loader mapping must cover the tile exactly");
  static_assert(kM * kK % kThreads == 0 && kN * kK % kThreads == 0,
                "every thread loads the same number of elements");
};

using LargeTile = GemmTile<128, 128, 8, 8, 8, 2>;
using SmallTile = GemmTile<64, 64, 8, 4, 4, 4>;

// Grids with fewer large tiles than this use SmallTile (two blocks per SM on an H200).
constexpr std::int64_t kFullGridBlocks = 264;

struct GemmArgs {
  int m, n, k;
  std::int64_t lda, ldb, ldc;
  float alpha, beta;
};

// Loads this thread's elements of one operand slice, (kOuter, kK) in (outer, k) coordinates,
// into a (kK, kStride) shared tile.
// With kAlongK, the operand is contiguous along k (element (o, l) at matrix[o * ld + l]) and the
// lanes of a warp take consecutive k. Otherwise it is contiguous along outer (matrix[o + l * ld])
// and the lanes take consecutive outer indices. Either way a warp reads consecutive addresses.
template <class T, int kOuter, int kStride, bool kAlongK>
struct MatrixTileLoader {
  static constexpr int kLoads = kOuter * T::kK / T::kThreads;
  // Tile distance between this thread's consecutive elements.
  static constexpr int kOuterStep = kAlongK ? T::kThreads / T::kK : 0;
  static constexpr int kKStep = kAlongK ? 0 : 1;

  const float* source;  // element 0 of this thread in the current step
  std::int64_t ld;
  int tile_index;       // shared-tile index of element 0
  unsigned outer_mask;  // bit j: element j lies inside the matrix along outer
  int k_left;           // reduction elements from this thread's element 0 to the end

  __device__ MatrixTileLoader(const float* matrix, std::int64_t leading_dimension, int outer0,
                              int outer_total, int k_total)
      : ld(leading_dimension) {
    static_assert(kLoads <= 32, "outer_mask has one bit per element");
    const int t = threadIdx.x;
    const int outer = kAlongK ? t / T::kK : t % kOuter;
    const int k = kAlongK ? t % T::kK : t / kOuter * kLoads;
    tile_index = k * kStride + outer;
    const std::int64_t o = outer0 + outer;
    source = matrix + (kAlongK ? o * ld + k : o + k * ld);
    outer_mask = 0;
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      if (outer0 + outer + j * kOuterStep < outer_total) outer_mask |= 1u << j;
    }
    k_left = k_total - k;
  }

  // k_left tracks the end of the reduction, so the remaining count that multiply_tiles passes
  // is not needed.
  __device__ void load(float (&stage)[kLoads], int /*remaining*/) const {
    const float* p = source;
    const std::int64_t jump = kAlongK ? kOuterStep * ld : ld;
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      const bool valid = (outer_mask >> j & 1u) && j * kKStep < k_left;
      stage[j] = valid ? __ldg(p) : 0.0f;
      p += jump;
    }
  }

  // Writes the staged elements into the (kK, kStride) shared tile.
  __device__ void store(const float (&stage)[kLoads], float* tile) const {
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      tile[tile_index + j * (kKStep * kStride + kOuterStep)] = stage[j];
    }
  }

  __device__ void advance() {
    source += kAlongK ? T::kK : T::kK * ld;
    k_left -= T::kK;
  }
};

// Lanes run along N, so the lanes of a warp store neighbouring columns of a row of C. Elements
// past the end of the reduction are loaded as zeros, so a partial last step runs the full
// unrolled loop.
constexpr tile_mma::LaneAxis kLanes = tile_mma::LaneAxis::kColumns;
constexpr tile_mma::LastStep kLastStep = tile_mma::LastStep::kFullUnrolled;

// One (kM, kN) tile of C per block: blockIdx.x along M, blockIdx.y along N.
template <class T, bool kTransA, bool kTransB>
__global__ void __launch_bounds__(T::kThreads, T::kMinBlocks)
    gemm_tiled(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
               GemmArgs args) {
  const int m0 = blockIdx.x * T::kM;
  const int n0 = blockIdx.y * T::kN;

  // op(A)(i, l) is a[i * lda + l], or a[l * lda + i] when transposed. Likewise op(B)(l, j).
  MatrixTileLoader<T, T::kM, T::kStrideA, !kTransA> a_loader(a, args.lda, m0, args.m, args.k);
  MatrixTileLoader<T, T::kN, T::kStrideB, kTransB> b_loader(b, args.ldb, n0, args.n, args.k);
  float acc[T::kThreadM][T::kThreadN] = {};
  tile_mma::multiply_tiles<T, kLanes, kLastStep>(a_loader, b_loader, args.k, acc);

#pragma unroll
  for (int i = 0; i < T::kThreadM; ++i) {
    const int row = m0 + tile_mma::thread_row<T, kLanes>(i);
    if (row >= args.m) continue;
    float* c_row = c + row * args.ldc;
#pragma unroll
    for (int j = 0; j < T::kThreadN; ++j) {
      const int column = n0 + tile_mma::thread_column<T, kLanes>(j);
      if (column >= args.n) continue;
      // beta == 0 must not read C, which may be uninitialised (NaN * 0 is NaN).
      const float value = args.alpha * acc[i][j];
      c_row[column] = args.beta == 0.0f ? value : value + args.beta * c_row[column];
    }
  }
}

using GemmKernel = void (*)(const float*, const float*, float*, GemmArgs);

template <class T>
GemmKernel select_kernel(bool trans_a, bool trans_b) {
  if (trans_a) return trans_b ? gemm_tiled<T, true, true> : gemm_tiled<T, true, false>;
  return trans_b ? gemm_tiled<T, false, true> : gemm_tiled<T, false, false>;
}

template <class T>
std::int64_t tile_count(const GemmShape& shape) {
  return ceil_div(shape.m, std::int64_t{T::kM}) * ceil_div(shape.n, std::int64_t{T::kN});
}

bool use_large_tile(const GemmShape& shape) {
  return tile_count<LargeTile>(shape) >= kFullGridBlocks;
}

template <class T>
void launch_gemm(const GemmShape& shape, const float* a, const float* b, float* c, Stream stream) {
  const GemmArgs args{int(shape.m),   int(shape.n),   int(shape.k), shape.lead_a(),
                      shape.lead_b(), shape.lead_c(), shape.alpha,  shape.beta};
  const dim3 grid(unsigned(ceil_div(shape.m, std::int64_t{T::kM})),
                  unsigned(ceil_div(shape.n, std::int64_t{T::kN})));
  launch(select_kernel<T>(shape.trans_a, shape.trans_b), grid, dim3(T::kThreads), 0, stream, a, b,
         c, args);
}

// Checks what the kernel assumes: the sizes of the CPU twin's checks, and M, N, K within int.
void check_shape(const GemmShape& shape) {
  constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
  DSN_CHECK(shape.m >= 0 && shape.n >= 0 && shape.k >= 0,
            "cuda::gemm: sizes m = {}, n = {}, k = {} must not be negative", shape.m, shape.n,
            shape.k);
  DSN_CHECK(shape.m <= kIntMax && shape.n <= kIntMax && shape.k <= kIntMax,
            "cuda::gemm: sizes m = {}, n = {}, k = {} exceed {}; split the multiplication", shape.m,
            shape.n, shape.k, kIntMax);
  const std::int64_t a_row = shape.trans_a ? shape.m : shape.k;
  const std::int64_t b_row = shape.trans_b ? shape.k : shape.n;
  DSN_CHECK(shape.lead_a() >= std::max<std::int64_t>(1, a_row),
            "cuda::gemm: lda = {} is smaller than the row length {} of A", shape.lead_a(), a_row);
  DSN_CHECK(shape.lead_b() >= std::max<std::int64_t>(1, b_row),
            "cuda::gemm: ldb = {} is smaller than the row length {} of B", shape.lead_b(), b_row);
  DSN_CHECK(shape.lead_c() >= std::max<std::int64_t>(1, shape.n),
            "cuda::gemm: ldc = {} is smaller than n = {}", shape.lead_c(), shape.n);
  // The grid's y dimension counts column tiles.
  DSN_CHECK(ceil_div(shape.n, std::int64_t{SmallTile::kN}) <= 65535,
            "cuda::gemm: n = {} exceeds the grid limit of {} columns; split the multiplication",
            shape.n, 65535 * SmallTile::kN);
}

}  // namespace

void gemm(const GemmShape& shape, const float* a, const float* b, float* c, Stream stream) {
  check_shape(shape);
  if (shape.m == 0 || shape.n == 0) return;
  if (use_large_tile(shape)) {
    launch_gemm<LargeTile>(shape, a, b, c, stream);
  } else {
    launch_gemm<SmallTile>(shape, a, b, c, stream);
  }
}

TilePlan plan_gemm(const GemmShape& shape) {
  check_shape(shape);
  if (use_large_tile(shape)) {
    return {"gemm_tiled", LargeTile::kM, LargeTile::kN, LargeTile::kK, 1};
  }
  return {"gemm_tiled", SmallTile::kM, SmallTile::kN, SmallTile::kK, 1};
}

}  // namespace dsn::cuda
