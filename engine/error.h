// Error reporting for the whole project: one exception type and check macros that stay on in
// release builds. Messages name the failing value and, where known, what the user can do.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace dsn {

// The exception thrown for invalid input, unsupported shapes and failed library calls.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const std::string& message) { throw Error(message); }

}  // namespace dsn

// DSN_CHECK(condition, format, args...): throws dsn::Error with the formatted message and the
// source location when the condition is false. Never compiled out.
#define DSN_CHECK(condition, ...)                                                           \
  do {                                                                                      \
    if (!(condition)) [[unlikely]] {                                                        \
      ::dsn::fail(::fmt::format("{} ({}:{})", ::fmt::format(__VA_ARGS__), __FILE__, __LINE__)); \
    }                                                                                       \
  } while (0)
