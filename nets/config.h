// Network configuration: which model to build, its sizes and its initialisation seed, read from
// a YAML file with flat keys (configs/*.yaml).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace dsn::nets {

struct NetConfig {
  std::string model = "dsn_vgg_face";  // "dsn_vgg_face" or "vgg_face" (the plain baseline)
  // DSN graph variant: "paper" (fixed short connections r = 1, summed fusion, Eq. 5 scores) or
  // "release" (learned 1x1 merge and fusion convolutions). The plain baseline ignores it.
  std::string preset = "paper";
  std::int64_t input_size = 224;  // square input, pixels
  std::int64_t side_width = 256;  // C: channels of the deepest supervision blocks (multiple of 4)
  std::vector<std::int64_t> backbone_widths = {64, 128, 256, 512, 512};  // VGG-16 blocks 1..5
  std::int64_t fc_width = 4096;  // fc6 and fc7 of the plain baseline
  float dropout = 0.5f;          // after fc6 and fc7 of the plain baseline
  std::int64_t num_classes = 7;
  // Input tensors are RGB, 0-255, and the data pipeline subtracts this per-channel mean. The
  // default is the ImageNet mean the DSN release subtracts (BGR 103.939, 116.779, 123.68),
  // stored here in RGB order.
  std::array<float, 3> mean = {123.68f, 116.779f, 103.939f};
  std::uint64_t seed = 1;  // initialisation and dropout seed
};

// Reads a YAML file of flat `key: value` lines with the NetConfig field names. Absent keys keep
// their defaults. Throws dsn::Error naming the file, the key, its line and what is expected.
// Rejected: a missing or unreadable file, YAML syntax errors, unknown or repeated keys, values of
// the wrong type, non-positive sizes, unknown model or preset names, and an input size smaller
// than min_input_size().
NetConfig load_config(const std::filesystem::path& path);

// Checks a configuration built in code with the same rules as load_config; messages name the
// NetConfig field.
void validate_config(const NetConfig& config);

// The smallest square input for which every pooling layer of the configured backbone receives a
// map at least as large as its window, so each window covers image cells, not only padding.
std::int64_t min_input_size(const NetConfig& config);

}  // namespace dsn::nets
