// Block-level register-tiled matrix multiply shared by the tiled GEMM (kernels/cuda/gemm.cu) and
// the implicit-GEMM convolutions (kernels/cuda/conv2d.cu). Include after
// kernels/cuda/compat.cuh.
//
// A tile type T provides kM, kN and kK (block tile and reduction elements per step), kThreadM and
// kThreadN (outputs per thread), kThreadsM and kThreadsN (threads along each axis) and kStrideA
// and kStrideB (row strides of the k-major shared tiles). A thread's (kThreadM, kThreadN)
// sub-tile is made of 4 x 4 pieces spaced kThreadsM * 4 rows and kThreadsN * 4 columns apart, so
// the float4 shared-memory reads of neighbouring lanes are contiguous and conflict-free.
//
// An operand loader provides kLoads, the elements per thread and step, and three members.
// load(stage, remaining) fills the registers of one step and writes zeros past the end of the
// reduction, where `remaining` counts the reduction elements from the step's start to the end.
// store(stage, tile) writes the registers to the loader's k-major shared tile, and advance()
// moves on by kK reduction elements.
#pragma once

namespace dsn::cuda::tile_mma {

// The tile axis that consecutive threads, and so the lanes of a warp, run along.
enum class LaneAxis { kRows, kColumns };

// The treatment of a last step with fewer than kK reduction elements in multiply_tiles.
enum class LastStep {
  // Runs the full unrolled loop over the zeros that the loaders stored past the end.
  kFullUnrolled,
  // Stops at the end of the reduction, which saves most of a single step whose reduction is well
  // below kK.
  kStopAtEnd,
};

// Tile row of this thread's i-th output row.
template <class T, LaneAxis kLanes>
__device__ __forceinline__ int thread_row(int i) {
  int tm;
  if constexpr (kLanes == LaneAxis::kRows) {
    tm = threadIdx.x % T::kThreadsM;
  } else {
    tm = threadIdx.x / T::kThreadsN;
  }
  return i / 4 * (T::kThreadsM * 4) + tm * 4 + i % 4;
}

// Tile column of this thread's j-th output column.
template <class T, LaneAxis kLanes>
__device__ __forceinline__ int thread_column(int j) {
  int tn;
  if constexpr (kLanes == LaneAxis::kRows) {
    tn = threadIdx.x / T::kThreadsM;
  } else {
    tn = threadIdx.x % T::kThreadsN;
  }
  return j / 4 * (T::kThreadsN * 4) + tn * 4 + j % 4;
}

// acc += the products of one reduction element: a_row and b_row are row k of the shared tiles.
template <class T, LaneAxis kLanes>
__device__ __forceinline__ void multiply_step(const float* a_row, const float* b_row,
                                              float (&acc)[T::kThreadM][T::kThreadN]) {
  float a[T::kThreadM];
  float b[T::kThreadN];
#pragma unroll
  for (int i = 0; i < T::kThreadM; i += 4) {
    const float4 v = *reinterpret_cast<const float4*>(a_row + thread_row<T, kLanes>(i));
    a[i] = v.x;
    a[i + 1] = v.y;
    a[i + 2] = v.z;
    a[i + 3] = v.w;
  }
#pragma unroll
  for (int j = 0; j < T::kThreadN; j += 4) {
    const float4 v = *reinterpret_cast<const float4*>(b_row + thread_column<T, kLanes>(j));
    b[j] = v.x;
    b[j + 1] = v.y;
    b[j + 2] = v.z;
    b[j + 3] = v.w;
  }
#pragma unroll
  for (int i = 0; i < T::kThreadM; ++i) {
#pragma unroll
    for (int j = 0; j < T::kThreadN; ++j) acc[i][j] += a[i] * b[j];
  }
}

// acc += this thread's sub-tile of the block's product over `reduction` elements, loaded by a
// (rows) and b (columns). Every thread of the block must call it. Shared memory is
// double-buffered: the next step is loaded into registers while the current one is multiplied,
// which leaves one __syncthreads per step.
template <class T, LaneAxis kLanes, LastStep kLastStep, class LoaderA, class LoaderB>
__device__ __forceinline__ void multiply_tiles(LoaderA& a, LoaderB& b, int reduction,
                                               float (&acc)[T::kThreadM][T::kThreadN]) {
  __shared__ __align__(16) float a_tile[2][T::kK * T::kStrideA];
  __shared__ __align__(16) float b_tile[2][T::kK * T::kStrideB];
  const int steps = ceil_div(reduction, T::kK);
  if (steps == 0) return;

  float a_stage[LoaderA::kLoads];
  float b_stage[LoaderB::kLoads];
  a.load(a_stage, reduction);
  b.load(b_stage, reduction);
  a.store(a_stage, a_tile[0]);
  b.store(b_stage, b_tile[0]);
  __syncthreads();

  for (int step = 0; step < steps; ++step) {
    const int buffer = step & 1;
    const bool more = step + 1 < steps;
    if (more) {
      a.advance();
      b.advance();
      a.load(a_stage, reduction - (step + 1) * T::kK);
      b.load(b_stage, reduction - (step + 1) * T::kK);
    }

    const float* a_rows = a_tile[buffer];
    const float* b_rows = b_tile[buffer];
    const int count =
        kLastStep == LastStep::kStopAtEnd ? min(T::kK, reduction - step * T::kK) : T::kK;
    if (count == T::kK) {
#pragma unroll
      for (int k = 0; k < T::kK; ++k) {
        multiply_step<T, kLanes>(a_rows + k * T::kStrideA, b_rows + k * T::kStrideB, acc);
      }
    } else {
      for (int k = 0; k < count; ++k) {
        multiply_step<T, kLanes>(a_rows + k * T::kStrideA, b_rows + k * T::kStrideB, acc);
      }
    }

    // The other buffer was last read in the previous step, before the barrier that ended it.
    if (more) {
      a.store(a_stage, a_tile[buffer ^ 1]);
      b.store(b_stage, b_tile[buffer ^ 1]);
      __syncthreads();
    }
  }
}

}  // namespace dsn::cuda::tile_mma
