// Tolerances of the CPU kernel tests, which compare float32 kernels with double references.
//
// An element passes when |got - expected| <= abs + rel * |expected|. Inputs are O(1) and every
// wrong index, missing tap or misplaced window moves an element by at least one input-sized
// term (about 1e-2 or more), so bounds near 1e-4 catch those bugs. Float32 rounding stays far
// below them: measured with OpenBLAS 0.3.21 on x86-64, the largest error over the small shapes
// is 7e-6 (a conv output of 14), and central differences in double with eps = 1e-6 are exact
// for the linear kernels and within 1e-9 for the rest. The inputs come from fixed seeds, so a
// passing test cannot turn flaky; the margin covers other BLAS builds and compilers.
#pragma once

#include "tests/support/reference.h"

namespace dsn::test {

// Forward passes against the double reference.
inline constexpr ref::Tolerance kForward{1e-4, 1e-5};
// Float backward passes against central differences of the double reference.
inline constexpr ref::Tolerance kGradient{1e-4, 1e-5};
// Reductions over about 5,000 terms (3x3 filters over 512 channels). The measured error is
// 7e-5 on outputs near 67 and 2e-5 on an output of 0.1 left after cancellation. The absolute
// part therefore scales with the sum of the terms' magnitudes, not with the result.
inline constexpr ref::Tolerance kLongReduction{1e-4, 2e-4};
// Copies, single products and short sums that must match to float rounding.
inline constexpr ref::Tolerance kExact{1e-6, 1e-7};

}  // namespace dsn::test
