// Backend selection: backend_for(Device::cuda()) before and after the installation in main.cpp,
// the vendor kernels in the emulated build, and DSN_CUDA_KERNELS parsing.
#include <cstdlib>
#include <optional>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "engine/backend.h"
#include "engine/tensor.h"
#include "kernels/cuda/backend.h"
#include "tests/backend/support.h"

namespace dsn::backend_test {
namespace {

using cuda::KernelSource;

// Sets (or with nullopt unsets) an environment variable for the lifetime of the scope, then
// restores the previous value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* previous = std::getenv(name)) previous_ = previous;
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (previous_) {
      ::setenv(name_, previous_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> previous_;
};

TEST_CASE("selection cuda backend missing before install") {
  const PreInstallProbe& probe = pre_install_probe();
  CAPTURE(probe.message);
  CHECK(probe.threw);
  CHECK(contains(probe.message, "no backend for cuda"));
  CHECK(contains(probe.message, "install_backend()"));
}

TEST_CASE("selection cuda backend after install") {
  Backend& backend = backend_for(Device::cuda());
  CHECK(backend.device() == Device::cuda());
  CHECK(&backend != &cpu_backend());
  CHECK(contains(backend.name(), "cuda"));
  CHECK(contains(backend.name(), "emulated") == cuda::is_emulated());

  const Tensor x =
      Tensor::from_vector({2, 2}, std::vector<float>{1.0f, -2.0f, 3.0f, -4.0f}, Device::cuda());
  CHECK(x.device() == Device::cuda());
  CHECK(x.to_vector() == std::vector<float>{1.0f, -2.0f, 3.0f, -4.0f});
}

TEST_CASE("selection vendor kernels rejected in emulation") {
  if (!cuda::is_emulated()) {
    // On a GPU build the call would replace the installed backend while tensors of the other
    // test cases may still use it.
    MESSAGE("skipped: the vendor backend exists in the nvcc build");
    return;
  }
  Backend& before = backend_for(Device::cuda());
  const std::string message = error_message([] { cuda::install_backend(KernelSource::Vendor); });
  CAPTURE(message);
  CHECK(contains(message, "vendor kernels (cuDNN, cuBLAS) need a GPU build"));
  CHECK(contains(message, "hand-written kernels only"));
  // The failed call left the installed backend in place.
  CHECK(&backend_for(Device::cuda()) == &before);
}

TEST_CASE("selection parse_kernel_source") {
  CHECK(cuda::parse_kernel_source("handwritten") == KernelSource::Handwritten);
  CHECK(cuda::parse_kernel_source("vendor") == KernelSource::Vendor);
  for (const char* invalid : {"cudnn", "Vendor", "", "handwritten "}) {
    CAPTURE(invalid);
    const std::string message = error_message([&] { cuda::parse_kernel_source(invalid); });
    CAPTURE(message);
    CHECK(contains(message, fmt::format("'{}'", invalid)));
    CHECK(contains(message, "'handwritten'"));
    CHECK(contains(message, "'vendor'"));
  }
}

TEST_CASE("selection DSN_CUDA_KERNELS environment variable") {
  SUBCASE("unset means hand-written") {
    ScopedEnv env("DSN_CUDA_KERNELS", std::nullopt);
    CHECK(cuda::kernel_source_from_env() == KernelSource::Handwritten);
  }
  SUBCASE("empty means hand-written") {
    ScopedEnv env("DSN_CUDA_KERNELS", "");
    CHECK(cuda::kernel_source_from_env() == KernelSource::Handwritten);
  }
  SUBCASE("vendor") {
    ScopedEnv env("DSN_CUDA_KERNELS", "vendor");
    CHECK(cuda::kernel_source_from_env() == KernelSource::Vendor);
  }
  SUBCASE("invalid value names the variable") {
    ScopedEnv env("DSN_CUDA_KERNELS", "cublas");
    const std::string message = error_message([] { cuda::kernel_source_from_env(); });
    CAPTURE(message);
    CHECK(contains(message, "DSN_CUDA_KERNELS"));
    CHECK(contains(message, "'cublas'"));
    CHECK(contains(message, "'handwritten' or 'vendor'"));
  }
}

}  // namespace
}  // namespace dsn::backend_test
