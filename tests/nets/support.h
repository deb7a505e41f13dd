// Helpers shared by the network tests: configurations, captured error messages, temporary YAML
// files, seeded inputs and double-precision references for softmax and cross-entropy.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "engine/error.h"
#include "engine/tensor.h"
#include "nets/config.h"

namespace dsn::nets::test {

inline std::filesystem::path configs_dir() {
  return DSN_CONFIGS_DIR;
}

// The message of the dsn::Error thrown by `action`, or "" when it does not throw.
template <typename Action>
std::string error_message(Action&& action) {
  try {
    action();
  } catch (const dsn::Error& error) {
    return error.what();
  }
  return "";
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A folder unique to this process, removed when the test program exits.
inline const std::filesystem::path& temp_folder() {
  struct Folder {
    std::filesystem::path path;
    ~Folder() {
      std::error_code error;
      std::filesystem::remove_all(path, error);
    }
  };
  static const Folder folder{std::filesystem::temp_directory_path() /
                             ("dsn_nets_tests_" + std::to_string(::getpid()))};
  std::filesystem::create_directories(folder.path);
  return folder.path;
}

// Writes `text` to a file of that name in temp_folder(); returns its path.
inline std::filesystem::path write_temp_file(const std::string& name, const std::string& text) {
  const std::filesystem::path path = temp_folder() / name;
  std::ofstream(path) << text;
  return path;
}

// configs/dsn_vgg_face_small.yaml, built in code so tests do not depend on the file.
inline NetConfig small_dsn_config() {
  NetConfig config;
  config.model = "dsn_vgg_face";
  config.input_size = 64;
  config.side_width = 8;
  config.backbone_widths = {4, 8, 8, 16, 16};
  return config;
}

inline NetConfig small_vgg_config() {
  NetConfig config;
  config.model = "vgg_face";
  config.input_size = 32;
  config.backbone_widths = {4, 8, 8, 16, 16};
  config.fc_width = 16;
  return config;
}

// Values uniform in [low, high) from std::mt19937, identical on every platform.
inline Tensor random_tensor(const Shape& shape, float low, float high, std::uint32_t seed) {
  std::mt19937 generator(seed);
  std::vector<float> values(static_cast<std::size_t>(dsn::numel(shape)));
  for (float& value : values) {
    const double unit = static_cast<double>(generator()) / 4294967296.0;
    value = static_cast<float>(low + (high - low) * unit);
  }
  return Tensor::from_vector(shape, values);
}

// Softmax of one row of logits, in double.
inline std::vector<double> softmax_row(const std::vector<float>& logits, std::size_t row,
                                       std::size_t classes) {
  double max_logit = -INFINITY;
  for (std::size_t k = 0; k < classes; ++k) {
    max_logit = std::max(max_logit, static_cast<double>(logits[row * classes + k]));
  }
  std::vector<double> probabilities(classes);
  double total = 0.0;
  for (std::size_t k = 0; k < classes; ++k) {
    probabilities[k] = std::exp(static_cast<double>(logits[row * classes + k]) - max_logit);
    total += probabilities[k];
  }
  for (double& p : probabilities) p /= total;
  return probabilities;
}

// Mean over the batch of -log softmax(logits)[label], in double; logits (N, classes).
inline double cross_entropy(const Tensor& logits, const std::vector<std::int32_t>& labels) {
  const std::vector<float> values = logits.to_vector();
  const auto classes = static_cast<std::size_t>(logits.size(1));
  double total = 0.0;
  for (std::size_t row = 0; row < labels.size(); ++row) {
    const std::vector<double> p = softmax_row(values, row, classes);
    total -= std::log(p[static_cast<std::size_t>(labels[row])]);
  }
  return total / static_cast<double>(labels.size());
}

}  // namespace dsn::nets::test
