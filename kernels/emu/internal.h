// Declarations shared by the emulation's runtime.cpp and scheduler.cpp; not for kernel code.
#pragma once

#include <cstddef>

namespace dsn::emu::detail {

// The dynamic shared memory limit of a kernel: 48 KiB, or what cudaFuncSetAttribute set.
std::size_t max_dynamic_shared_bytes(const void* kernel);

}  // namespace dsn::emu::detail
