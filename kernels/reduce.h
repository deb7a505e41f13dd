// Reductions over contiguous float32 arrays.
#pragma once

#include <cstdint>

namespace dsn {
namespace cpu {

// Returns the sum of x[0 .. count), accumulated in double.
double sum(std::int64_t count, const float* x);

}  // namespace cpu
}  // namespace dsn
