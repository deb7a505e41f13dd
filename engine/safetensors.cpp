#include "engine/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <system_error>
#include <tuple>

#include <nlohmann/json.hpp>

#include "engine/backend.h"
#include "engine/error.h"

namespace dsn::safetensors {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; big-endian hosts need byte swapping");

// Header sizes above this are rejected: a corrupt length must not trigger a huge allocation.
constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "F32";
    case DType::Int32:
      return "I32";
    case DType::Float16:
      return "F16";
    case DType::BFloat16:
      return "BF16";
  }
  return "?";
}

DType parse_dtype(const std::string& name, const std::filesystem::path& path,
                  const std::string& tensor) {
  if (name == "F32") return DType::Float32;
  if (name == "I32") return DType::Int32;
  if (name == "F16") return DType::Float16;
  if (name == "BF16") return DType::BFloat16;
  fail(fmt::format("{}: tensor '{}' has dtype {}, which dsn does not read (F32, I32, F16, BF16)",
                   path.string(), tensor, name));
}

// Returns the byte size of a tensor, or nullopt when a partial product of the extents overflows
// int64 (Tensor::empty multiplies them in int64 from left to right) or the bytes overflow
// uint64. Extents must be non-negative.
std::optional<std::uint64_t> byte_count(const Shape& shape, DType dtype) {
  std::int64_t count = 1;
  for (std::int64_t extent : shape) {
    if (__builtin_mul_overflow(count, extent, &count)) return std::nullopt;
  }
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<std::uint64_t>(count), element_size(dtype), &bytes)) {
    return std::nullopt;
  }
  return bytes;
}

}  // namespace

void save(const std::filesystem::path& path,
          const std::vector<std::pair<std::string, Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  std::set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    DSN_CHECK(names.insert(name).second, "safetensors::save: duplicate tensor name '{}'", name);
    DSN_CHECK(name != "__metadata__", "safetensors::save: '__metadata__' is reserved");
    const std::uint64_t bytes = tensor.bytes();
    header[name] = {{"dtype", dtype_name(tensor.dtype())},
                    {"shape", tensor.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // align the data to 8 bytes

  std::filesystem::path temporary = path;
  temporary += ".partial";
  try {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    DSN_CHECK(out.good(), "cannot write {}: check that the folder exists and is writable",
              temporary.string());
    const std::uint64_t header_bytes = header_text.size();
    out.write(reinterpret_cast<const char*>(&header_bytes), sizeof(header_bytes));
    out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
    for (const auto& [name, tensor] : tensors) {
      const Tensor host = tensor.to(Device::cpu());
      out.write(static_cast<const char*>(host.raw_data()),
                static_cast<std::streamsize>(host.bytes()));
    }
    out.close();
    DSN_CHECK(!out.fail(), "writing {} failed (disk full?)", temporary.string());
    std::error_code error;
    std::filesystem::rename(temporary, path, error);
    DSN_CHECK(!error, "cannot rename {} to {}: {}", temporary.string(), path.string(),
              error.message());
  } catch (...) {
    // Leave neither a half-written temporary nor a changed target behind.
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw;
  }
}

File load(const std::filesystem::path& path) {
  std::error_code status_error;
  DSN_CHECK(std::filesystem::is_regular_file(path, status_error),
            "cannot open weights file {}: file not found or not a regular file", path.string());
  std::ifstream in(path, std::ios::binary);
  DSN_CHECK(in.good(), "cannot open weights file {}: file not found or not readable",
            path.string());
  const std::uint64_t file_bytes = std::filesystem::file_size(path);
  std::uint64_t header_bytes = 0;
  DSN_CHECK(file_bytes >= 8, "{} is not a safetensors file: {} bytes, shorter than the 8-byte "
            "header length", path.string(), file_bytes);
  in.read(reinterpret_cast<char*>(&header_bytes), sizeof(header_bytes));
  DSN_CHECK(header_bytes <= kMaxHeaderBytes && 8 + header_bytes <= file_bytes,
            "{} is truncated or not a safetensors file: header length {} with {} bytes in the "
            "file", path.string(), header_bytes, file_bytes);
  std::string header_text(header_bytes, '\0');
  in.read(header_text.data(), static_cast<std::streamsize>(header_bytes));

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text);
  } catch (const nlohmann::json::exception& error) {
    fail(fmt::format("{}: malformed safetensors header: {}", path.string(), error.what()));
  }
  DSN_CHECK(header.is_object(), "{}: safetensors header is not a JSON object", path.string());

  const std::uint64_t data_bytes = file_bytes - 8 - header_bytes;
  File file;
  // Entries sorted by offset, so tensors come back in the order they were written.
  std::vector<std::tuple<std::uint64_t, std::string, DType, Shape, std::uint64_t>> entries;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [key, value] : entry.items()) {
        file.metadata[key] = value.is_string() ? value.get<std::string>() : value.dump();
      }
      continue;
    }
    try {
      const DType dtype = parse_dtype(entry.at("dtype").get<std::string>(), path, name);
      const Shape shape = entry.at("shape").get<Shape>();
      const auto offsets = entry.at("data_offsets").get<std::vector<std::uint64_t>>();
      DSN_CHECK(offsets.size() == 2 && offsets[0] <= offsets[1],
                "{}: tensor '{}' has invalid data_offsets", path.string(), name);
      for (std::int64_t extent : shape) {
        DSN_CHECK(extent >= 0, "{}: tensor '{}' has a negative extent in shape {}",
                  path.string(), name, to_string(shape));
      }
      const std::optional<std::uint64_t> size = byte_count(shape, dtype);
      DSN_CHECK(size.has_value(), "{}: tensor '{}' has shape {}, too large to address",
                path.string(), name, to_string(shape));
      const std::uint64_t expected = *size;
      DSN_CHECK(offsets[1] - offsets[0] == expected,
                "{}: tensor '{}' of shape {} needs {} bytes but its byte range holds {}",
                path.string(), name, to_string(shape), expected, offsets[1] - offsets[0]);
      DSN_CHECK(offsets[1] <= data_bytes,
                "{} is truncated: tensor '{}' of shape {} ends at byte {} of the data, but the "
                "file holds {} data bytes; download or copy the file again",
                path.string(), name, to_string(shape), offsets[1], data_bytes);
      entries.emplace_back(offsets[0], name, dtype, shape, expected);
    } catch (const nlohmann::json::exception& error) {
      fail(fmt::format("{}: malformed entry for tensor '{}': {}", path.string(), name,
                       error.what()));
    }
  }
  std::sort(entries.begin(), entries.end());
  for (const auto& [begin, name, dtype, shape, bytes] : entries) {
    Tensor tensor = Tensor::empty(shape, dtype, Device::cpu());
    in.seekg(static_cast<std::streamoff>(8 + header_bytes + begin));
    in.read(static_cast<char*>(tensor.raw_data()), static_cast<std::streamsize>(bytes));
    DSN_CHECK(in.good(), "{}: reading tensor '{}' failed", path.string(), name);
    file.tensors.emplace_back(name, tensor);
  }
  return file;
}

void save_module(const std::filesystem::path& path, Module& module,
                 const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& [name, tensor] : module.state()) tensors.emplace_back(name, *tensor);
  save(path, tensors, metadata);
}

void load_module(const std::filesystem::path& path, Module& module) {
  File file = load(path);
  std::map<std::string, Tensor> by_name(file.tensors.begin(), file.tensors.end());
  auto state = module.state();
  // Check everything before writing anything.
  for (auto& [name, tensor] : state) {
    auto found = by_name.find(name);
    DSN_CHECK(found != by_name.end(), "{}: tensor '{}' of shape {} is missing from the file; is "
              "it a checkpoint of another network or configuration?", path.string(), name,
              to_string(tensor->shape()));
    DSN_CHECK(found->second.shape() == tensor->shape() && found->second.dtype() == tensor->dtype(),
              "{}: tensor '{}' has shape {} {} in the file but {} {} in the network; check that "
              "the config (input size, widths) matches the one the weights were trained with",
              path.string(), name, to_string(found->second.shape()),
              to_string(found->second.dtype()), to_string(tensor->shape()),
              to_string(tensor->dtype()));
  }
  // Every module name is in the file, so a larger file contains names the module lacks.
  if (by_name.size() != state.size()) {
    std::set<std::string> module_names;
    for (const auto& entry : state) module_names.insert(entry.first);
    for (const auto& [name, tensor] : file.tensors) {
      DSN_CHECK(module_names.count(name) == 1,
                "{}: tensor '{}' does not belong to this network (the file holds {} tensors, the "
                "network {}); is it a checkpoint of another network or configuration?",
                path.string(), name, by_name.size(), state.size());
    }
  }
  for (auto& [name, tensor] : state) {
    const Tensor& source = by_name.at(name);
    backend_for(tensor->device())
        .copy_from_host(tensor->raw_data(), source.raw_data(), source.bytes());
  }
}

}  // namespace dsn::safetensors
