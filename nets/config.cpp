// YAML loading and validation of NetConfig.
//
// The file and the in-code checks share one rule set (check_fields), and only the report of a
// problem differs. A file error names the path, line and key, an in-code error the field.
#include "nets/config.h"

#include <cmath>
#include <functional>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "engine/error.h"
#include "nets/vgg_backbone.h"

namespace dsn::nets {
namespace {

// Receives the key and a description of the problem; must throw.
using Reject = std::function<void(const std::string& key, const std::string& problem)>;

// The first pooling layer whose input map is smaller than its window at this input size, as a
// sentence, or nothing when every pool fits.
std::optional<std::string> pooling_problem(const NetConfig& config, std::int64_t input_size) {
  const std::vector<BackboneLayer> layers =
      vgg16_layers(config.backbone_widths, config.model == "dsn_vgg_face");
  const std::vector<std::int64_t> sizes = output_sizes(layers, input_size);
  std::int64_t in_size = input_size;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const BackboneLayer& layer = layers[i];
    if (layer.op != BackboneOp::Conv && in_size < layer.kernel) {
      return fmt::format("{} would see a {} x {} map, smaller than its {} x {} window", layer.name,
                         in_size, in_size, layer.kernel, layer.kernel);
    }
    in_size = sizes[i];
  }
  return std::nullopt;
}

// Largest accepted input side. Face networks use 224; at 1024 each 64-channel map of
// DSN-VGG-Face's first block already takes 0.27 GB per image.
constexpr std::int64_t kMaxInputSize = 1024;

void check_fields(const NetConfig& config, const Reject& reject) {
  if (config.model != "dsn_vgg_face" && config.model != "vgg_face") {
    reject("model", fmt::format("expected 'dsn_vgg_face' or 'vgg_face', got '{}'", config.model));
  }
  if (config.preset != "paper" && config.preset != "release") {
    reject("preset", fmt::format("expected 'paper' or 'release', got '{}'", config.preset));
  }
  if (config.input_size <= 0 || config.input_size > kMaxInputSize) {
    reject("input_size", fmt::format("expected a size in pixels from 1 to {}, got {}",
                                     kMaxInputSize, config.input_size));
  }
  if (config.side_width <= 0 || config.side_width % 4 != 0) {
    reject("side_width", fmt::format("expected a positive multiple of 4 (sides use C, C/2 and "
                                     "C/4 channels), got {}",
                                     config.side_width));
  }
  if (config.backbone_widths.size() != 5) {
    reject("backbone_widths", fmt::format("expected 5 widths (VGG-16 blocks 1 to 5), got {}",
                                          config.backbone_widths.size()));
  }
  for (std::int64_t width : config.backbone_widths) {
    if (width <= 0) {
      reject("backbone_widths", fmt::format("expected positive widths, got {}", width));
    }
  }
  if (config.fc_width <= 0) {
    reject("fc_width", fmt::format("expected a positive width, got {}", config.fc_width));
  }
  if (!(config.dropout >= 0.0f && config.dropout < 1.0f)) {
    reject("dropout", fmt::format("expected a probability in [0, 1), got {}", config.dropout));
  }
  if (config.num_classes < 2) {
    reject("num_classes", fmt::format("expected at least 2 classes, got {}", config.num_classes));
  }
  for (float value : config.mean) {
    if (!std::isfinite(value)) reject("mean", fmt::format("expected finite values, got {}", value));
  }
  if (const auto problem = pooling_problem(config, config.input_size)) {
    reject("input_size",
           fmt::format("input size {} is too small for {}: {}; the smallest "
                       "supported input size is {}",
                       config.input_size, config.model, *problem, min_input_size(config)));
  }
}

// Reading typed values from YAML nodes. Each reader calls `reject` with what it expected.

std::string scalar_text(const YAML::Node& node) {
  return node.IsScalar() ? node.Scalar() : std::string("a non-scalar value");
}

std::int64_t read_int(const YAML::Node& node, const std::string& key, const Reject& reject) {
  if (node.IsScalar()) {
    try {
      return node.as<std::int64_t>();
    } catch (const YAML::Exception&) {
      // Reported below together with non-scalar values.
    }
  }
  reject(key, fmt::format("expected an integer, got '{}'", scalar_text(node)));
  return 0;
}

std::uint64_t read_unsigned(const YAML::Node& node, const std::string& key, const Reject& reject) {
  if (node.IsScalar() && !node.Scalar().empty() && node.Scalar().front() != '-') {
    try {
      return node.as<std::uint64_t>();
    } catch (const YAML::Exception&) {
      // Reported below together with non-scalar values.
    }
  }
  reject(key, fmt::format("expected a non-negative integer, got '{}'", scalar_text(node)));
  return 0;
}

float read_float(const YAML::Node& node, const std::string& key, const Reject& reject) {
  if (node.IsScalar()) {
    try {
      return node.as<float>();
    } catch (const YAML::Exception&) {
      // Reported below together with non-scalar values.
    }
  }
  reject(key, fmt::format("expected a number, got '{}'", scalar_text(node)));
  return 0.0f;
}

std::string read_string(const YAML::Node& node, const std::string& key, const Reject& reject) {
  if (!node.IsScalar()) reject(key, "expected a string, got a list or mapping");
  return node.Scalar();
}

std::vector<std::int64_t> read_int_list(const YAML::Node& node, const std::string& key,
                                        const Reject& reject) {
  if (!node.IsSequence()) {
    reject(key, fmt::format("expected a list of integers such as [64, 128, 256, 512, 512], "
                            "got '{}'",
                            scalar_text(node)));
  }
  std::vector<std::int64_t> values;
  for (const YAML::Node& item : node) values.push_back(read_int(item, key, reject));
  return values;
}

std::array<float, 3> read_mean(const YAML::Node& node, const std::string& key,
                               const Reject& reject) {
  if (!node.IsSequence() || node.size() != 3) {
    reject(key, "expected a list of 3 numbers, the R, G and B means on the 0-255 scale");
  }
  std::array<float, 3> values{};
  for (std::size_t i = 0; i < 3; ++i) values[i] = read_float(node[i], key, reject);
  return values;
}

constexpr const char* kKeys[] = {
    "model",    "preset",  "input_size",  "side_width", "backbone_widths",
    "fc_width", "dropout", "num_classes", "mean",       "seed"};

// Stores the value of `key` in `config`. Returns false for an unknown key.
bool read_field(NetConfig& config, const std::string& key, const YAML::Node& value,
                const Reject& reject) {
  if (key == "model") {
    config.model = read_string(value, key, reject);
  } else if (key == "preset") {
    config.preset = read_string(value, key, reject);
  } else if (key == "input_size") {
    config.input_size = read_int(value, key, reject);
  } else if (key == "side_width") {
    config.side_width = read_int(value, key, reject);
  } else if (key == "backbone_widths") {
    config.backbone_widths = read_int_list(value, key, reject);
  } else if (key == "fc_width") {
    config.fc_width = read_int(value, key, reject);
  } else if (key == "dropout") {
    config.dropout = read_float(value, key, reject);
  } else if (key == "num_classes") {
    config.num_classes = read_int(value, key, reject);
  } else if (key == "mean") {
    config.mean = read_mean(value, key, reject);
  } else if (key == "seed") {
    config.seed = read_unsigned(value, key, reject);
  } else {
    return false;
  }
  return true;
}

std::string location(const std::filesystem::path& path, const YAML::Mark& mark) {
  if (mark.is_null()) return path.string();
  return fmt::format("{}:{}", path.string(), mark.line + 1);
}

}  // namespace

std::int64_t min_input_size(const NetConfig& config) {
  // Pooled sizes never shrink as the input grows, so the first size that fits is the minimum.
  constexpr std::int64_t kSearchLimit = 1 << 16;
  for (std::int64_t size = 1; size <= kSearchLimit; ++size) {
    if (!pooling_problem(config, size)) return size;
  }
  fail(fmt::format("min_input_size: no input size up to {} fits the pooling layers of {}",
                   kSearchLimit, config.model));
}

void validate_config(const NetConfig& config) {
  check_fields(config, [](const std::string& key, const std::string& problem) {
    fail(fmt::format("invalid NetConfig.{}: {}", key, problem));
  });
}

NetConfig load_config(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    fail(
        fmt::format("config file not found: {} (the configs/ folder of the repository holds "
                    "dsn_vgg_face.yaml, vgg_face.yaml and dsn_vgg_face_small.yaml)",
                    path.string()));
  }

  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::ParserException& e) {
    fail(fmt::format("{}: invalid YAML: {}", location(path, e.mark), e.msg));
  } catch (const YAML::Exception& e) {
    fail(fmt::format("{}: cannot read the config file: {}", path.string(), e.what()));
  }
  if (!root.IsMap()) {
    const char* found = root.IsNull() ? "an empty file" : "a list or a scalar";
    fail(
        fmt::format("{}: expected a mapping of keys to values (for example 'model: "
                    "dsn_vgg_face'), got {}",
                    location(path, root.Mark()), found));
  }

  // Line of each key, so checks after parsing can point at the line too.
  std::map<std::string, YAML::Mark> marks;
  auto reject_key = [&](const std::string& key, const std::string& problem) {
    const auto found = marks.find(key);
    const YAML::Mark mark = found == marks.end() ? YAML::Mark::null_mark() : found->second;
    fail(fmt::format("{}: key '{}': {}", location(path, mark), key, problem));
  };

  NetConfig config;
  for (const auto& entry : root) {
    const std::string key = entry.first.Scalar();
    const YAML::Mark mark = entry.first.Mark();
    if (const auto previous = marks.find(key); previous != marks.end()) {
      fail(fmt::format("{}: key '{}' appears twice, first on line {}", location(path, mark), key,
                       previous->second.line + 1));
    }
    marks[key] = mark;
    if (!read_field(config, key, entry.second, reject_key)) {
      fail(fmt::format("{}: unknown key '{}'; expected one of: {}", location(path, mark), key,
                       fmt::join(kKeys, ", ")));
    }
  }
  check_fields(config, reject_key);
  return config;
}

}  // namespace dsn::nets
