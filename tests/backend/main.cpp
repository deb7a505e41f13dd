// Entry point of the CUDA backend tests. Installing a backend is global to the process, so main
// records what backend_for(Device::cuda()) does before the installation (selection_test.cpp
// checks it), then installs the hand-written CUDA backend once for every test case.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "engine/backend.h"
#include "engine/log.h"
#include "kernels/cuda/backend.h"
#include "tests/backend/support.h"

#if defined(__SANITIZE_ADDRESS__)
// The allocator tests request a petabyte to provoke an allocation failure. AddressSanitizer
// aborts on such a request by default, while the tests need the failure reported as
// cudaErrorMemoryAllocation. An ASAN_OPTIONS environment variable still overrides this.
extern "C" const char* __asan_default_options() {
  return "allocator_may_return_null=1";
}
#endif

namespace dsn::backend_test {
namespace {

PreInstallProbe probe_before_install() {
  PreInstallProbe probe;
  try {
    backend_for(Device::cuda());
  } catch (const Error& error) {
    probe.threw = true;
    probe.message = error.what();
  }
  return probe;
}

PreInstallProbe& stored_probe() {
  static PreInstallProbe probe;
  return probe;
}

}  // namespace

const PreInstallProbe& pre_install_probe() {
  return stored_probe();
}

}  // namespace dsn::backend_test

int main(int argc, char** argv) {
  dsn::log::init_from_env();
  dsn::backend_test::stored_probe() = dsn::backend_test::probe_before_install();
  // The hand-written kernels on both builds: the bit-exact comparisons below assume them.
  dsn::cuda::install_backend(dsn::cuda::KernelSource::Handwritten);

  doctest::Context context(argc, argv);
  return context.run();
}
