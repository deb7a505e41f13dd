// `dsn predict` end to end on the real webcam clip and portraits from Debian's kphotoalbum
// package, with the small network config so the run takes seconds. What is checked is what the
// data can show without trained weights: a face in every frame, 224 x 224 crops, one CSV row per
// frame with increasing timestamps, and the errors for bad input.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "nets/config.h"
#include "nets/emotion_net.h"
#include "tools/predict.h"

namespace fs = std::filesystem;

namespace {

fs::path demo_media() {
  const fs::path media = DSN_DEMO_MEDIA;
  REQUIRE_MESSAGE(fs::exists(media / "movie.avi"),
                  "demo media not found at '" << media.string()
                                              << "': run tools/fetch-media.sh and configure with "
                                                 "-DDSN_DEMO_MEDIA=<the folder it prints>");
  return media;
}

fs::path small_config() {
  return fs::path(DSN_SOURCE_DIR) / "configs/dsn_vgg_face_small.yaml";
}

// A fresh folder under the system temporary folder.
fs::path scratch_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("dsn_tools_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<std::vector<std::string>> read_csv(const fs::path& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path.string());
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream stream(line);
    std::string cell;
    while (std::getline(stream, cell, ',')) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.emplace_back();
    rows.push_back(cells);
  }
  return rows;
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path.string());
  return nlohmann::json::parse(in);
}

dsn::app::PredictOptions options_for(const fs::path& input, const fs::path& out) {
  dsn::app::PredictOptions options;
  options.input = input;
  options.config = small_config();
  options.out_dir = out;
  return options;
}

void copy_prefix(const fs::path& from, const fs::path& to, double fraction) {
  std::ifstream in(from, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.resize(static_cast<std::size_t>(static_cast<double>(bytes.size()) * fraction));
  std::ofstream(to, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST_CASE("predict on the real clip") {
  const fs::path out = scratch_dir("clip");
  CHECK(dsn::app::run_predict(options_for(demo_media() / "movie.avi", out)) == 0);

  const auto rows = read_csv(out / "movie/frames.csv");
  REQUIRE(rows.size() == 69);  // header and one row per frame: one face in each
  CHECK(rows[0][0] == "frame");
  CHECK(rows[0][4] == "success");
  REQUIRE(rows[0].size() == 17);
  CHECK(rows[0][16] == "Neutral");
  double previous_timestamp = -1.0;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const auto& row = rows[i];
    REQUIRE(row.size() == 17);
    CHECK(std::stoi(row[0]) == static_cast<int>(i));
    CHECK(row[1] == "0");  // face_id: exactly one face, so only id 0
    CHECK(row[4] == "1");  // success
    const double timestamp = std::stod(row[2]);
    CHECK(timestamp > previous_timestamp);
    previous_timestamp = timestamp;
    double probability_sum = 0.0;
    for (std::size_t k = 10; k < 17; ++k) probability_sum += std::stod(row[k]);
    CHECK(probability_sum == doctest::Approx(1.0).epsilon(1e-4));
  }
  CHECK(previous_timestamp == doctest::Approx(67 * 0.066666).epsilon(1e-3));

  std::size_t crops = 0;
  for (const auto& entry : fs::directory_iterator(out / "movie/faces")) {
    const dsn::data::Image crop = dsn::data::load_image(entry.path());
    CHECK(crop.width == 224);
    CHECK(crop.height == 224);
    ++crops;
  }
  CHECK(crops == 68);

  const nlohmann::json clip = read_json(out / "movie/clip.json");
  CHECK(clip["status"] == "ok");
  CHECK(clip["frames"] == 68);
  CHECK(clip["frames_with_face"] == 68);
  CHECK(clip["frames_without_face"] == 0);
  CHECK(clip["untrained"] == true);
  CHECK(clip["note"].get<std::string>().find("untrained") != std::string::npos);
  CHECK(clip["scores"].size() == 7);
  CHECK(clip["label"].is_string());
}

TEST_CASE("predict on portraits and a folder") {
  const fs::path folder = scratch_dir("portraits_in");
  fs::copy_file(demo_media() / "jesper.jpg", folder / "jesper.jpg");
  fs::copy_file(demo_media() / "anne_helene.jpg", folder / "anne_helene.jpg");
  const fs::path out = scratch_dir("portraits_out");

  CHECK(dsn::app::run_predict(options_for(folder / "jesper.jpg", out)) == 0);
  const auto single = read_csv(out / "jesper/frames.csv");
  REQUIRE(single.size() >= 2);
  CHECK(single[1][4] == "1");

  // The images of a folder form one clip named after the folder, in file-name order.
  CHECK(dsn::app::run_predict(options_for(folder, out)) == 0);
  const nlohmann::json clip = read_json(out / folder.filename() / "clip.json");
  CHECK(clip["frames"] == 2);
  CHECK(clip["frames_with_face"] == 2);
}

TEST_CASE("predict rejects a missing input") {
  const fs::path out = scratch_dir("missing");
  try {
    dsn::app::run_predict(options_for(out / "no_such_clip.avi", out));
    FAIL("expected dsn::Error");
  } catch (const dsn::Error& error) {
    CHECK(std::string(error.what()).find("no_such_clip.avi") != std::string::npos);
  }
}

TEST_CASE("predict reports a text file renamed .avi") {
  const fs::path out = scratch_dir("not_video");
  const fs::path fake = out / "notes.avi";
  std::ofstream(fake) << "this is a text file, not a video\n";
  CHECK(dsn::app::run_predict(options_for(fake, out / "out")) == 1);
  const nlohmann::json clip = read_json(out / "out/notes/clip.json");
  CHECK(clip["status"] == "failed");
  CHECK(clip["error"].get<std::string>().find("notes.avi") != std::string::npos);
  CHECK(clip["frames"] == 0);
}

TEST_CASE("predict keeps the rows of a truncated clip") {
  const fs::path out = scratch_dir("truncated");
  const fs::path truncated = out / "movie_cut.avi";
  copy_prefix(demo_media() / "movie.avi", truncated, 0.4);
  CHECK(dsn::app::run_predict(options_for(truncated, out / "out")) == 1);
  const nlohmann::json clip = read_json(out / "out/movie_cut/clip.json");
  CHECK(clip["status"] == "failed");
  CHECK(clip["error"].get<std::string>().find("movie_cut.avi") != std::string::npos);
  const auto rows = read_csv(out / "out/movie_cut/frames.csv");
  // The frames before the cut are decoded, scored and written.
  CHECK(rows.size() > 1);
  CHECK(rows.size() < 69);
  CHECK(clip["frames"].get<int>() == static_cast<int>(rows.size()) - 1);
}

TEST_CASE("predict leaves earlier outputs in place when a later input fails") {
  const fs::path out = scratch_dir("keep");
  CHECK(dsn::app::run_predict(options_for(demo_media() / "jesper.jpg", out)) == 0);
  const fs::path fake = out / "broken.avi";
  std::ofstream(fake) << "not a video";
  CHECK(dsn::app::run_predict(options_for(fake, out)) == 1);
  CHECK(fs::exists(out / "jesper/frames.csv"));
  CHECK(fs::exists(out / "jesper/clip.json"));
  CHECK(read_json(out / "jesper/clip.json")["status"] == "ok");
}

TEST_CASE("predict rejects bad configs and weights") {
  const fs::path out = scratch_dir("bad_files");
  const fs::path config = out / "broken.yaml";
  std::ofstream(config) << "input_size: [not a number\n";
  dsn::app::PredictOptions options = options_for(demo_media() / "jesper.jpg", out);
  options.config = config;
  try {
    dsn::app::run_predict(options);
    FAIL("expected dsn::Error for the config");
  } catch (const dsn::Error& error) {
    CHECK(std::string(error.what()).find("broken.yaml") != std::string::npos);
  }

  // A checkpoint of the right network, cut in half.
  const dsn::nets::NetConfig net_config = dsn::nets::load_config(small_config());
  auto net = dsn::nets::make_net(net_config);
  const fs::path weights = out / "small.safetensors";
  dsn::safetensors::save_module(weights, *net);
  const fs::path cut = out / "small_cut.safetensors";
  copy_prefix(weights, cut, 0.5);
  options = options_for(demo_media() / "jesper.jpg", out);
  options.weights = cut;
  try {
    dsn::app::run_predict(options);
    FAIL("expected dsn::Error for the weights");
  } catch (const dsn::Error& error) {
    const std::string message = error.what();
    CHECK(message.find("small_cut.safetensors") != std::string::npos);
    CHECK(message.find("truncated") != std::string::npos);
  }

  // The intact checkpoint loads, and clip.json no longer reports untrained weights.
  options.weights = weights;
  CHECK(dsn::app::run_predict(options) == 0);
  CHECK(read_json(out / "jesper/clip.json")["untrained"] == false);
}

TEST_CASE("predict keeps going past an unreadable image") {
  const fs::path folder = scratch_dir("one_bad_in");
  fs::copy_file(demo_media() / "jesper.jpg", folder / "a.jpg");
  std::ofstream(folder / "b.jpg") << "not a JPEG";
  fs::copy_file(demo_media() / "anne_helene.jpg", folder / "c.jpg");
  const fs::path out = scratch_dir("one_bad_out");
  CHECK(dsn::app::run_predict(options_for(folder, out)) == 1);

  const auto rows = read_csv(out / folder.filename() / "frames.csv");
  REQUIRE(rows.size() == 4);  // header and the three images
  CHECK(rows[1][4] == "1");
  CHECK(rows[2][4] == "0");  // the unreadable image
  CHECK(rows[3][4] == "1");
  const nlohmann::json clip = read_json(out / folder.filename() / "clip.json");
  CHECK(clip["status"] == "failed");
  CHECK(clip["error"].get<std::string>().find("b.jpg") != std::string::npos);
  CHECK(clip["frame_files"] == nlohmann::json::array({"a.jpg", "b.jpg", "c.jpg"}));
  CHECK(clip["frames_with_face"] == 2);
}

TEST_CASE("predict rejects weights with NaN") {
  const fs::path out = scratch_dir("nan_weights");
  auto net = dsn::nets::make_net(dsn::nets::load_config(small_config()));
  dsn::Tensor& first = net->named_parameters().front().second->value;
  std::vector<float> values = first.to_vector();
  values[3] = std::numeric_limits<float>::quiet_NaN();
  first = dsn::Tensor::from_vector(first.shape(), values);
  const fs::path weights = out / "nan.safetensors";
  dsn::safetensors::save_module(weights, *net);

  dsn::app::PredictOptions options = options_for(demo_media() / "jesper.jpg", out);
  options.weights = weights;
  try {
    dsn::app::run_predict(options);
    FAIL("expected dsn::Error for NaN weights");
  } catch (const dsn::Error& error) {
    const std::string message = error.what();
    CHECK(message.find("nan.safetensors") != std::string::npos);
    CHECK(message.find(net->named_parameters().front().first) != std::string::npos);
  }
}

TEST_CASE("predict rejects an output path that is a file") {
  const fs::path out = scratch_dir("out_is_file");
  const fs::path file = out / "taken";
  std::ofstream(file) << "an existing file";
  try {
    dsn::app::run_predict(options_for(demo_media() / "jesper.jpg", file));
    FAIL("expected dsn::Error for --out");
  } catch (const dsn::Error& error) {
    CHECK(std::string(error.what()).find("taken") != std::string::npos);
  }
  std::ifstream in(file);
  std::string text;
  std::getline(in, text);
  CHECK(text == "an existing file");
}

TEST_CASE("predict rejects a FIFO input") {
  const fs::path out = scratch_dir("fifo");
  const fs::path fifo = out / "stream.mp4";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  try {
    dsn::app::run_predict(options_for(fifo, out / "out"));
    FAIL("expected dsn::Error for a FIFO");
  } catch (const dsn::Error& error) {
    CHECK(std::string(error.what()).find("stream.mp4") != std::string::npos);
  }
}
