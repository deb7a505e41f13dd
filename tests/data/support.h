// Helpers shared by the dsn_data tests: fixture and demo media paths, a temporary folder, and
// a log capture that records what the library logs through spdlog.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include "engine/error.h"

#include "data/image.h"

// Checks that evaluating `expression` throws dsn::Error whose message contains `text`.
#define CHECK_ERROR_MENTIONS(expression, text)                                                  \
  do {                                                                                          \
    std::string message_;                                                                       \
    try {                                                                                       \
      expression;                                                                               \
    } catch (const dsn::Error& error_) {                                                        \
      message_ = error_.what();                                                                 \
    }                                                                                           \
    CHECK_MESSAGE(message_.find(text) != std::string::npos,                                     \
                  "expected an error mentioning '" << (text) << "', got '" << message_ << "'"); \
  } while (0)

namespace dsn::test {

// Path of a file committed under tests/fixtures/.
std::filesystem::path fixture(const std::string& name);

// Path of a file in the demo media folder (DSN_DEMO_MEDIA environment variable, else the
// DSN_DEMO_MEDIA CMake setting). Fails the current test with instructions when the folder or
// the file is missing.
std::filesystem::path demo_media(const std::string& name);

// A fresh folder under the system temporary folder, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

class WarningSink;

// Replaces the default spdlog logger while alive and keeps every message at warning level or
// above. The destructor restores the previous logger.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::vector<std::string> warnings() const;

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<WarningSink> sink_;
};

// Writes `bytes` to `path`, replacing the file.
void write_bytes(const std::filesystem::path& path, const std::string& bytes);

// Naive 3x3 box blur with the border pixels copied unchanged, the reference blur for tests.
data::Image box_blur_3x3(const data::Image& image);

}  // namespace dsn::test
