// Reductions on the CPU. The sum splits the array into fixed chunks whose partial sums (double)
// are added in chunk order, so the result does not depend on the number of OpenMP threads.
#include "kernels/reduce.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/blas.h"

namespace dsn::cpu {

double sum(std::int64_t count, const float* x) {
  DSN_CHECK(count >= 0, "sum: element count {} must not be negative", count);
  constexpr std::int64_t kChunk = detail::kParallelMinElements;
  const std::int64_t chunks = (count + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
    const std::int64_t end = std::min(count, (chunk + 1) * kChunk);
    double total = 0.0;
    for (std::int64_t i = chunk * kChunk; i < end; ++i) total += x[i];
    partial[static_cast<std::size_t>(chunk)] = total;
  }
  double total = 0.0;
  for (const double value : partial) total += value;
  return total;
}

}  // namespace dsn::cpu
