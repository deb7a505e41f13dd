// NetConfig: the shipped YAML files, and every rejection naming the file, the key and the line.
#include <string>

#include <doctest/doctest.h>

#include "nets/config.h"
#include "nets/emotion_net.h"
#include "tests/nets/support.h"

namespace dsn::nets {
namespace {

using test::contains;
using test::error_message;
using test::write_temp_file;

// A valid small config with `line` on line 5; the base line that sets the same key, if any,
// becomes a comment so the key appears once.
std::filesystem::path config_with(const std::string& name, const std::string& line) {
  const std::string key = line.substr(0, line.find(':'));
  std::string text;
  for (const std::string base : {"model: dsn_vgg_face", "input_size: 64", "side_width: 8",
                                 "backbone_widths: [4, 8, 8, 16, 16]"}) {
    text += (base.rfind(key + ":", 0) == 0 ? "# " + base : base) + "\n";
  }
  return write_temp_file(name, text + line + "\n");
}

TEST_CASE("shipped configs load") {
  const NetConfig paper = load_config(test::configs_dir() / "dsn_vgg_face.yaml");
  CHECK(paper.model == "dsn_vgg_face");
  CHECK(paper.preset == "paper");
  CHECK(paper.input_size == 224);
  CHECK(paper.side_width == 256);
  CHECK(paper.backbone_widths == std::vector<std::int64_t>{64, 128, 256, 512, 512});
  CHECK(paper.num_classes == 7);
  CHECK(paper.mean[0] == doctest::Approx(123.68));
  CHECK(paper.mean[1] == doctest::Approx(116.779));
  CHECK(paper.mean[2] == doctest::Approx(103.939));
  CHECK(paper.seed == 1);

  const NetConfig plain = load_config(test::configs_dir() / "vgg_face.yaml");
  CHECK(plain.model == "vgg_face");
  CHECK(plain.fc_width == 4096);
  CHECK(plain.dropout == doctest::Approx(0.5));

  const NetConfig small = load_config(test::configs_dir() / "dsn_vgg_face_small.yaml");
  const NetConfig expected = test::small_dsn_config();
  CHECK(small.input_size == expected.input_size);
  CHECK(small.side_width == expected.side_width);
  CHECK(small.backbone_widths == expected.backbone_widths);
}

TEST_CASE("config absent keys keep defaults") {
  const auto path = write_temp_file("defaults.yaml", "seed: 42\n");
  const NetConfig config = load_config(path);
  CHECK(config.seed == 42);
  CHECK(config.model == "dsn_vgg_face");
  CHECK(config.input_size == 224);
}

TEST_CASE("config missing file") {
  const std::string message = error_message([] { load_config("/nonexistent/dsn/net.yaml"); });
  CHECK_MESSAGE(contains(message, "/nonexistent/dsn/net.yaml"), message);
  CHECK_MESSAGE(contains(message, "not found"), message);
}

TEST_CASE("config unknown key") {
  const auto path = config_with("unknown.yaml", "inputsize: 64");
  const std::string message = error_message([&] { load_config(path); });
  CHECK_MESSAGE(contains(message, path.string() + ":5"), message);
  CHECK_MESSAGE(contains(message, "unknown key 'inputsize'"), message);
  CHECK_MESSAGE(contains(message, "input_size"), message);  // the list of known keys
}

TEST_CASE("config wrong types") {
  struct Case {
    std::string line, key, expected;
  };
  const Case cases[] = {
      {"num_classes: seven", "num_classes", "expected an integer"},
      {"num_classes: 3.5", "num_classes", "expected an integer"},
      {"dropout: high", "dropout", "expected a number"},
      {"mean: 120", "mean", "list of 3 numbers"},
      {"mean: [1, 2]", "mean", "list of 3 numbers"},
      {"seed: -1", "seed", "non-negative integer"},
      {"model: [dsn_vgg_face]", "model", "expected a string"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.line);
    const auto path = config_with("types.yaml", c.line);
    const std::string message = error_message([&] { load_config(path); });
    CHECK_MESSAGE(contains(message, path.string() + ":5"), message);
    CHECK_MESSAGE(contains(message, "key '" + c.key + "'"), message);
    CHECK_MESSAGE(contains(message, c.expected), message);
  }
}

TEST_CASE("config backbone widths must be a list") {
  const auto path = write_temp_file("widths.yaml", "backbone_widths: 64\n");
  const std::string message = error_message([&] { load_config(path); });
  CHECK_MESSAGE(contains(message, path.string() + ":1"), message);
  CHECK_MESSAGE(contains(message, "key 'backbone_widths'"), message);
  CHECK_MESSAGE(contains(message, "list of integers"), message);
}

TEST_CASE("config invalid values") {
  struct Case {
    std::string line, key, expected;
  };
  const Case cases[] = {
      {"input_size: 0", "input_size", "from 1 to 1024"},
      {"input_size: -224", "input_size", "from 1 to 1024"},
      {"input_size: 100000", "input_size", "from 1 to 1024"},
      {"side_width: 6", "side_width", "multiple of 4"},
      {"side_width: 0", "side_width", "multiple of 4"},
      {"fc_width: 0", "fc_width", "positive"},
      {"num_classes: 1", "num_classes", "at least 2"},
      {"dropout: 1.0", "dropout", "[0, 1)"},
      {"model: resnet", "model", "'dsn_vgg_face' or 'vgg_face'"},
      {"preset: best", "preset", "'paper' or 'release'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.line);
    const auto path = config_with("values.yaml", c.line);
    const std::string message = error_message([&] { load_config(path); });
    CHECK_MESSAGE(contains(message, path.string() + ":5"), message);
    CHECK_MESSAGE(contains(message, "key '" + c.key + "'"), message);
    CHECK_MESSAGE(contains(message, c.expected), message);
  }
}

TEST_CASE("config backbone widths count and sign") {
  const auto short_list = write_temp_file("four.yaml", "backbone_widths: [4, 8, 8, 16]\n");
  std::string message = error_message([&] { load_config(short_list); });
  CHECK_MESSAGE(contains(message, short_list.string() + ":1"), message);
  CHECK_MESSAGE(contains(message, "expected 5 widths"), message);

  const auto negative = write_temp_file("negative.yaml", "backbone_widths: [4, 8, -8, 16, 16]\n");
  message = error_message([&] { load_config(negative); });
  CHECK_MESSAGE(contains(message, "key 'backbone_widths'"), message);
  CHECK_MESSAGE(contains(message, "positive"), message);
}

// Smallest inputs derived by hand with Caffe's ceil rounding. DSN: conv1_1 pad 5 adds 8, then
// 2x2 pools give 41 -> 21 -> 11 -> 6, pool4 (3x3 s2 p1) 6 -> 4, pool5 4 -> 3, and pool5a needs 3;
// at 32 the chain is 40 -> 20 -> 10 -> 5 -> 3 -> 2 and pool5a would see 2 x 2. Plain VGG: 17 ->
// 9 -> 5 -> 3 -> 2 leaves pool5 a 2 x 2 map; 16 -> 8 -> 4 -> 2 -> 1 does not.
TEST_CASE("config minimum input sizes") {
  NetConfig dsn = test::small_dsn_config();
  CHECK(min_input_size(dsn) == 33);
  NetConfig plain = test::small_vgg_config();
  CHECK(min_input_size(plain) == 17);
}

TEST_CASE("config input too small") {
  const auto path = write_temp_file("tiny.yaml", "model: dsn_vgg_face\ninput_size: 32\n");
  const std::string message = error_message([&] { load_config(path); });
  CHECK_MESSAGE(contains(message, path.string() + ":2"), message);
  CHECK_MESSAGE(contains(message, "key 'input_size'"), message);
  CHECK_MESSAGE(contains(message, "too small"), message);
  CHECK_MESSAGE(contains(message, "pool5a"), message);
  CHECK_MESSAGE(contains(message, "33"), message);

  const auto plain = write_temp_file("tiny_vgg.yaml", "model: vgg_face\ninput_size: 16\n");
  const std::string plain_message = error_message([&] { load_config(plain); });
  CHECK_MESSAGE(contains(plain_message, "too small"), plain_message);
  CHECK_MESSAGE(contains(plain_message, "17"), plain_message);
}

TEST_CASE("config YAML syntax and layout errors") {
  const auto broken = write_temp_file("broken.yaml", "model: dsn_vgg_face\ninput_size: [64\n");
  std::string message = error_message([&] { load_config(broken); });
  CHECK_MESSAGE(contains(message, broken.string()), message);
  CHECK_MESSAGE(contains(message, "invalid YAML"), message);

  const auto list = write_temp_file("list.yaml", "- model\n- input_size\n");
  message = error_message([&] { load_config(list); });
  CHECK_MESSAGE(contains(message, list.string()), message);
  CHECK_MESSAGE(contains(message, "mapping"), message);

  const auto empty = write_temp_file("empty.yaml", "");
  message = error_message([&] { load_config(empty); });
  CHECK_MESSAGE(contains(message, empty.string()), message);
  CHECK_MESSAGE(contains(message, "empty"), message);

  const auto twice = write_temp_file("twice.yaml", "seed: 1\nseed: 2\n");
  message = error_message([&] { load_config(twice); });
  CHECK_MESSAGE(contains(message, twice.string() + ":2"), message);
  CHECK_MESSAGE(contains(message, "appears twice"), message);
}

TEST_CASE("validate_config names the field") {
  NetConfig config = test::small_dsn_config();
  config.num_classes = 0;
  const std::string message = error_message([&] { validate_config(config); });
  CHECK_MESSAGE(contains(message, "NetConfig.num_classes"), message);
}

TEST_CASE("release preset not implemented") {
  NetConfig config = test::small_dsn_config();
  config.preset = "release";
  const std::string message = error_message([&] { make_net(config); });
  CHECK_MESSAGE(contains(message, "release"), message);
  CHECK_MESSAGE(contains(message, "not implemented"), message);
}

}  // namespace
}  // namespace dsn::nets
