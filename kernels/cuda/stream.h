// The stream type of the CUDA kernel declarations, without including the CUDA runtime. CUDA's
// cudaStream_t is `struct CUstream_st*` in the real runtime and in the device emulation, which
// uses the toolkit's headers. Host code that only passes streams along can include this file.
#pragma once

struct CUstream_st;

namespace dsn::cuda {

using Stream = CUstream_st*;

}  // namespace dsn::cuda
