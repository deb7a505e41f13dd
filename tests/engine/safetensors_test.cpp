// Safetensors checkpoints: round trips, the byte layout parsed independently of the engine, a
// file built byte by byte, and the rejection of damaged or mismatched files.
#include "engine/safetensors.h"

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/module.h"

namespace dsn {
namespace {

namespace fs = std::filesystem;

// A fresh folder under the system temporary directory, removed with its contents.
class TemporaryFolder {
 public:
  TemporaryFolder() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("dsn_engine_tests_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TemporaryFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TemporaryFolder(const TemporaryFolder&) = delete;
  TemporaryFolder& operator=(const TemporaryFolder&) = delete;

  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The 8-byte little-endian header length, assembled byte by byte.
std::string length_prefix(std::uint64_t length) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i)
    bytes[static_cast<std::size_t>(i)] = static_cast<char>(length >> (8 * i));
  return bytes;
}

std::uint64_t read_length_prefix(const std::string& bytes) {
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) {
    length = (length << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  }
  return length;
}

// A little-endian 32-bit word.
std::string word(std::uint32_t value) {
  std::string bytes(4, '\0');
  for (int i = 0; i < 4; ++i)
    bytes[static_cast<std::size_t>(i)] = static_cast<char>(value >> (8 * i));
  return bytes;
}

// doctest::Contains takes a doctest::String, which has no conversion from std::string.
doctest::Contains contains(const std::string& text) {
  return doctest::Contains(text.c_str());
}

std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return length_prefix(header.size()) + header + data;
}

// Two linear layers, so that a file can fit the first and not the second.
class TwoLayers : public Module {
 public:
  TwoLayers(std::int64_t hidden, std::int64_t out) {
    first = &register_module("fc1", std::make_unique<Linear>(3, hidden));
    second = &register_module("fc2", std::make_unique<Linear>(hidden, out));
  }
  Linear* first;
  Linear* second;
};

void fill_pattern(Module& module, float start) {
  for (auto& [name, tensor] : module.state()) {
    std::vector<float> values(static_cast<std::size_t>(tensor->numel()));
    for (float& value : values) value = start++;
    *tensor = Tensor::from_vector(tensor->shape(), values);
  }
}

std::vector<std::vector<float>> snapshot(Module& module) {
  std::vector<std::vector<float>> values;
  for (auto& [name, tensor] : module.state()) values.push_back(tensor->to_vector());
  return values;
}

}  // namespace

TEST_CASE("safetensors round trip") {
  TemporaryFolder folder;
  const fs::path path = folder / "round.safetensors";
  const Tensor weights = Tensor::from_vector({2, 3}, std::vector<float>{1.5f, -2, 3e-8f, 4, 5, 6});
  const Tensor labels = Tensor::from_vector({4}, std::vector<std::int32_t>{7, -1, 0, 2147483647});
  const Tensor scalar = Tensor::from_vector({}, std::vector<float>{0.25f});
  const Tensor empty = Tensor::zeros({0, 3});
  Tensor half = Tensor::empty({3}, DType::Float16);
  const std::uint16_t half_bits[3] = {0x3C00, 0xC000, 0x7BFF};  // 1, -2, 65504
  std::memcpy(half.raw_data(), half_bits, sizeof(half_bits));

  safetensors::save(
      path,
      {{"w", weights}, {"labels", labels}, {"scalar", scalar}, {"empty", empty}, {"half", half}},
      {{"network", "dsn_vgg_face"}, {"epoch", "3"}});
  CHECK_FALSE(fs::exists(path.string() + ".partial"));

  const safetensors::File file = safetensors::load(path);
  REQUIRE(file.tensors.size() == 5);
  CHECK(file.tensors[0].first == "w");
  CHECK(file.tensors[0].second.shape() == Shape{2, 3});
  CHECK(file.tensors[0].second.dtype() == DType::Float32);
  CHECK(file.tensors[0].second.to_vector() == weights.to_vector());
  CHECK(file.tensors[1].first == "labels");
  CHECK(file.tensors[1].second.dtype() == DType::Int32);
  CHECK(file.tensors[1].second.to_int_vector() == labels.to_int_vector());
  CHECK(file.tensors[2].first == "scalar");
  CHECK(file.tensors[2].second.shape() == Shape{});
  CHECK(file.tensors[2].second.item() == 0.25f);
  CHECK(file.tensors[3].first == "empty");
  CHECK(file.tensors[3].second.shape() == Shape{0, 3});
  CHECK(file.tensors[4].first == "half");
  CHECK(file.tensors[4].second.dtype() == DType::Float16);
  CHECK(std::memcmp(file.tensors[4].second.raw_data(), half_bits, sizeof(half_bits)) == 0);
  CHECK(file.metadata ==
        std::map<std::string, std::string>{{"network", "dsn_vgg_face"}, {"epoch", "3"}});
}

TEST_CASE("safetensors layout matches the format") {
  TemporaryFolder folder;
  const fs::path path = folder / "layout.safetensors";
  const Tensor a = Tensor::from_vector({3}, std::vector<float>{1, 2, 3});
  const Tensor b = Tensor::from_vector({2, 1}, std::vector<std::int32_t>{-5, 6});
  safetensors::save(path, {{"a", a}, {"b", b}}, {{"key", "value"}});

  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  const std::uint64_t header_length = read_length_prefix(bytes);
  REQUIRE(8 + header_length <= bytes.size());
  CHECK((8 + header_length) % 8 == 0);  // the data starts 8-byte aligned
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_length));
  REQUIRE(header.is_object());
  CHECK(header.size() == 3);
  CHECK(header["__metadata__"] == nlohmann::json{{"key", "value"}});
  CHECK(header["a"]["dtype"] == "F32");
  CHECK(header["a"]["shape"] == nlohmann::json{3});
  CHECK(header["a"]["data_offsets"] == nlohmann::json{0, 12});
  CHECK(header["b"]["dtype"] == "I32");
  CHECK(header["b"]["shape"] == nlohmann::json{2, 1});
  CHECK(header["b"]["data_offsets"] == nlohmann::json{12, 20});

  const std::string data = bytes.substr(8 + header_length);
  REQUIRE(data.size() == 20);
  // 1.0f, 2.0f, 3.0f, -5, 6 as little-endian words.
  CHECK(data ==
        word(0x3F800000) + word(0x40000000) + word(0x40400000) + word(0xFFFFFFFB) + word(6));
}

TEST_CASE("safetensors loads a hand-built file") {
  TemporaryFolder folder;
  const fs::path path = folder / "hand.safetensors";
  // Header keys out of data order, no padding, metadata last: all allowed by the format.
  const std::string header = R"({"z":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("a":{"dtype":"I32","shape":[1,2],"data_offsets":[8,16]},)"
                             R"("__metadata__":{"format":"pt"}})";
  const std::string data = word(0x3FC00000) + word(0xC0000000) + word(7) + word(0xFFFFFFFF);
  write_bytes(path, safetensors_bytes(header, data));

  const safetensors::File file = safetensors::load(path);
  REQUIRE(file.tensors.size() == 2);
  CHECK(file.tensors[0].first == "z");  // file order is data order
  CHECK(file.tensors[0].second.shape() == Shape{2});
  CHECK(file.tensors[0].second.to_vector() == std::vector<float>{1.5f, -2.0f});
  CHECK(file.tensors[1].first == "a");
  CHECK(file.tensors[1].second.shape() == Shape{1, 2});
  CHECK(file.tensors[1].second.to_int_vector() == std::vector<std::int32_t>{7, -1});
  CHECK(file.metadata.at("format") == "pt");
}

TEST_CASE("safetensors module round trip") {
  TemporaryFolder folder;
  const fs::path path = folder / "module.safetensors";
  TwoLayers source(4, 2);
  fill_pattern(source, 1.0f);
  safetensors::save_module(path, source, {{"note", "test"}});

  TwoLayers target(4, 2);
  safetensors::load_module(path, target);
  CHECK(snapshot(target) == snapshot(source));
  CHECK(safetensors::load(path).metadata.at("note") == "test");
}

TEST_CASE("safetensors rejects truncated files") {
  TemporaryFolder folder;
  const fs::path path = folder / "cut.safetensors";
  safetensors::save(path, {{"first", Tensor::full({4}, 1.0f)}, {"last", Tensor::full({3}, 2.0f)}});
  const std::string bytes = read_bytes(path);
  const std::uint64_t header_length = read_length_prefix(bytes);

  SUBCASE("cut inside the data") {
    write_bytes(path, bytes.substr(0, bytes.size() - 4));
    CHECK_THROWS_WITH_AS(safetensors::load(path),
                         contains(path.string() + " is truncated: tensor 'last'"), Error);
  }
  SUBCASE("cut inside the header") {
    write_bytes(path, bytes.substr(0, 8 + header_length / 2));
    CHECK_THROWS_WITH_AS(safetensors::load(path), contains(path.string() + " is truncated"), Error);
  }
  SUBCASE("cut inside the length") {
    write_bytes(path, bytes.substr(0, 5));
    CHECK_THROWS_WITH_AS(safetensors::load(path),
                         contains(path.string() + " is not a safetensors file"), Error);
  }
}

TEST_CASE("safetensors rejects malformed headers") {
  TemporaryFolder folder;
  const fs::path path = folder / "bad.safetensors";

  SUBCASE("garbage") {
    write_bytes(path, safetensors_bytes("this is not json", ""));
    CHECK_THROWS_WITH_AS(safetensors::load(path),
                         contains(path.string() + ": malformed safetensors header"), Error);
  }
  SUBCASE("not an object") {
    write_bytes(path, safetensors_bytes("[1, 2]  ", ""));
    CHECK_THROWS_WITH_AS(safetensors::load(path), doctest::Contains("is not a JSON object"), Error);
  }
  SUBCASE("unsupported dtype") {
    write_bytes(path, safetensors_bytes(R"({"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})",
                                        std::string(8, '\0')));
    CHECK_THROWS_WITH_AS(safetensors::load(path),
                         doctest::Contains("tensor 'x' has dtype F64, which dsn does not read"),
                         Error);
  }
  SUBCASE("byte range disagrees with the shape") {
    write_bytes(path, safetensors_bytes(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                        std::string(8, '\0')));
    CHECK_THROWS_WITH_AS(safetensors::load(path),
                         doctest::Contains("tensor 'x' of shape (3) needs 12 bytes"), Error);
  }
  SUBCASE("shape too large") {
    // 2^40 * 2^40 elements overflow int64: rejected before any allocation or arithmetic.
    write_bytes(path,
                safetensors_bytes(R"({"x":{"dtype":"F32","shape":[1099511627776,1099511627776,0],)"
                                  R"("data_offsets":[0,0]}})",
                                  ""));
    CHECK_THROWS_WITH_AS(safetensors::load(path), doctest::Contains("too large to address"), Error);
  }
  SUBCASE("missing field") {
    write_bytes(path, safetensors_bytes(R"({"x":{"dtype":"F32","shape":[2]}})", ""));
    CHECK_THROWS_WITH_AS(safetensors::load(path),
                         doctest::Contains("malformed entry for tensor 'x'"), Error);
  }
  SUBCASE("huge header length") {
    write_bytes(path, length_prefix(std::uint64_t{1} << 60) + "{}");
    CHECK_THROWS_WITH_AS(safetensors::load(path), contains(path.string()), Error);
  }
  SUBCASE("missing file") {
    CHECK_THROWS_WITH_AS(safetensors::load(folder / "absent.safetensors"),
                         doctest::Contains("absent.safetensors: file not found"), Error);
  }
  SUBCASE("folder instead of a file") {
    fs::create_directory(folder / "weights");
    CHECK_THROWS_WITH_AS(safetensors::load(folder / "weights"),
                         doctest::Contains("not a regular file"), Error);
  }
}

TEST_CASE("load_module rejects a shape mismatch unchanged") {
  TemporaryFolder folder;
  const fs::path path = folder / "mismatch.safetensors";
  TwoLayers saved(4, 2);
  fill_pattern(saved, 1.0f);
  safetensors::save_module(path, saved);

  // fc1 fits, fc2 does not: fc1 must not be written either.
  TwoLayers target(4, 3);
  fill_pattern(target, -100.0f);
  const auto before = snapshot(target);
  CHECK_THROWS_WITH_AS(
      safetensors::load_module(path, target),
      doctest::Contains("tensor 'fc2.weight' has shape (2, 4) float32 in the file but (3, 4) "
                        "float32 in the network"),
      Error);
  CHECK(snapshot(target) == before);
}

TEST_CASE("load_module rejects missing and extra tensors") {
  TemporaryFolder folder;
  TwoLayers module(4, 2);
  fill_pattern(module, 1.0f);
  const auto before = snapshot(module);

  SUBCASE("missing") {
    const fs::path path = folder / "missing.safetensors";
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (auto& [name, tensor] : module.state()) {
      if (name != "fc2.bias") tensors.emplace_back(name, *tensor);
    }
    safetensors::save(path, tensors);
    CHECK_THROWS_WITH_AS(safetensors::load_module(path, module),
                         doctest::Contains("tensor 'fc2.bias' of shape (2) is missing"), Error);
  }
  SUBCASE("extra") {
    const fs::path path = folder / "extra.safetensors";
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (auto& [name, tensor] : module.state()) tensors.emplace_back(name, *tensor);
    tensors.emplace_back("fc3.weight", Tensor::zeros({2, 2}));
    safetensors::save(path, tensors);
    CHECK_THROWS_WITH_AS(safetensors::load_module(path, module), doctest::Contains("'fc3.weight'"),
                         Error);
  }
  CHECK(snapshot(module) == before);
}

TEST_CASE("safetensors save leaves no partial file") {
  TemporaryFolder folder;
  const Tensor t = Tensor::full({2}, 1.0f);

  const fs::path missing_folder = folder / "no_such_folder";
  const fs::path target = missing_folder / "weights.safetensors";
  CHECK_THROWS_WITH_AS(safetensors::save(target, {{"t", t}}),
                       doctest::Contains("check that the folder exists"), Error);
  CHECK_FALSE(fs::exists(target));
  CHECK_FALSE(fs::exists(missing_folder));

  // A failed save keeps the previous file intact.
  const fs::path path = folder / "keep.safetensors";
  safetensors::save(path, {{"t", t}});
  const std::string original = read_bytes(path);
  CHECK_THROWS_WITH_AS(safetensors::save(path, {{"t", t}, {"t", t}}),
                       doctest::Contains("duplicate tensor name 't'"), Error);
  CHECK(read_bytes(path) == original);

  // A failure after the temporary is written (here the rename onto a folder) removes it.
  const fs::path folder_target = folder / "taken";
  fs::create_directory(folder_target);
  CHECK_THROWS_WITH_AS(safetensors::save(folder_target, {{"t", t}}),
                       doctest::Contains("cannot rename"), Error);
  CHECK(fs::is_directory(folder_target));
  CHECK_FALSE(fs::exists(folder_target.string() + ".partial"));

  // Saving over an existing file replaces it and cleans up the temporary.
  safetensors::save(path, {{"u", Tensor::full({3}, 2.0f)}});
  CHECK(safetensors::load(path).tensors.at(0).first == "u");
  CHECK_FALSE(fs::exists(path.string() + ".partial"));
}

}  // namespace dsn
