// The stream type of the CUDA kernel declarations, without including the CUDA runtime: CUDA's
// cudaStream_t is `struct CUstream_st*`, in the real runtime and in the device emulation (which
// uses the toolkit's headers), so host code that only passes streams along can include this.
#pragma once

struct CUstream_st;

namespace dsn::cuda {

using Stream = CUstream_st*;

}  // namespace dsn::cuda
