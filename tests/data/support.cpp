#include "tests/data/support.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>

#include <doctest/doctest.h>
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

namespace dsn::test {

class WarningSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> messages() {
    std::lock_guard<std::mutex> lock(mutex_);
    return messages_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    if (message.level >= spdlog::level::warn) {
      messages_.emplace_back(message.payload.data(), message.payload.size());
    }
  }
  void flush_() override {}

 private:
  std::vector<std::string> messages_;
};

std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(DSN_FIXTURES_DIR) / name;
}

std::filesystem::path demo_media(const std::string& name) {
  std::string folder = DSN_DEMO_MEDIA_DEFAULT;
  if (const char* from_environment = std::getenv("DSN_DEMO_MEDIA")) {
    if (*from_environment != '\0') {
      folder = from_environment;
    }
  }
  REQUIRE_MESSAGE(!folder.empty(),
                  "the demo media folder is not set: configure with "
                  "-DDSN_DEMO_MEDIA=<folder holding movie.avi and jesper.jpg> or set the "
                  "DSN_DEMO_MEDIA environment variable");
  const std::filesystem::path path = std::filesystem::path(folder) / name;
  REQUIRE_MESSAGE(
      std::filesystem::is_regular_file(path),
      "demo media file " << path.string() << " not found: check the DSN_DEMO_MEDIA folder");
  return path;
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = std::filesystem::temp_directory_path() /
          ("dsn_data_tests-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

LogCapture::LogCapture()
    : previous_(spdlog::default_logger()), sink_(std::make_shared<WarningSink>()) {
  auto logger = std::make_shared<spdlog::logger>("dsn_data_tests", sink_);
  logger->set_level(spdlog::level::debug);
  spdlog::set_default_logger(logger);
}

LogCapture::~LogCapture() {
  spdlog::set_default_logger(previous_);
}

std::vector<std::string> LogCapture::warnings() const {
  return sink_->messages();
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE_MESSAGE(stream.good(), "cannot write test file " << path.string());
}

data::Image box_blur_3x3(const data::Image& image) {
  data::Image blurred = image;
  for (int y = 1; y + 1 < image.height; ++y) {
    for (int x = 1; x + 1 < image.width; ++x) {
      for (int c = 0; c < image.channels; ++c) {
        int sum = 0;
        for (int dy = -1; dy <= 1; ++dy) {
          for (int dx = -1; dx <= 1; ++dx) {
            sum += image.at(x + dx, y + dy)[c];
          }
        }
        blurred.at(x, y)[c] = static_cast<uint8_t>((sum + 4) / 9);
      }
    }
  }
  return blurred;
}

}  // namespace dsn::test
