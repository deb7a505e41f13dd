// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header mapping each tensor name to its dtype, shape and
// byte range, then the raw little-endian data. Names are the module's dotted parameter names.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/module.h"
#include "engine/tensor.h"

namespace dsn::safetensors {

struct File {
  std::vector<std::pair<std::string, Tensor>> tensors;  // CPU tensors, in file order
  std::map<std::string, std::string> metadata;          // the "__metadata__" entry
};

// Writes the tensors (from any device, copied to the host) to `path` through a temporary file in
// the same folder and a rename, so an existing file is never left half-written.
void save(const std::filesystem::path& path,
          const std::vector<std::pair<std::string, Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata = {});

// Reads a whole file. Throws dsn::Error naming the file and the problem for a missing file, a
// truncated file, a malformed header, an unsupported dtype, or byte ranges that do not match the
// shapes.
File load(const std::filesystem::path& path);

// Saves every parameter and buffer of `module`.
void save_module(const std::filesystem::path& path, Module& module,
                 const std::map<std::string, std::string>& metadata = {});

// Loads into every parameter and buffer of `module`, copying to the tensors' devices. The file
// must contain exactly the module's names with the same shapes. Otherwise this throws dsn::Error
// naming the first tensor that does not fit, with its shape in the file and in the module, and
// modifies nothing.
void load_module(const std::filesystem::path& path, Module& module);

}  // namespace dsn::safetensors
