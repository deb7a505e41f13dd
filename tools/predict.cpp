// The prediction pipeline: frames -> dlib faces -> aligned crops -> network scores -> files.
//
// Faces of several frames are batched into one forward pass. Rows are written in frame order
// once their batch is scored; a frame without a face is a row with success 0. A clip's score is
// the sum of the per-frame probabilities of the largest face in each frame whose crop is not
// blurred (variance of the Laplacian at or above the threshold), as in the EmotiW 2018 DSN
// pipeline. The label is its argmax.
#include "tools/predict.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "data/blur.h"
#include "data/face.h"
#include "data/image.h"
#include "data/labels.h"
#include "data/video.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "nets/config.h"
#include "nets/emotion_net.h"

namespace dsn::app {
namespace fs = std::filesystem;
namespace {

constexpr int kClasses = data::kNumEmotions;

// One clip: a video, a single image, or the images of one folder in name order.
struct Clip {
  std::string name;
  fs::path video;                // set for a video clip
  std::vector<fs::path> images;  // set for an image clip
};

struct Frame {
  data::Image image;
  std::int64_t index = 0;  // 0-based
  double timestamp_s = 0;
  std::string error;  // set when an image of an image clip could not be read
};

// Frames of a clip, whichever kind it is.
class FrameSource {
 public:
  explicit FrameSource(const Clip& clip) : clip_(clip) {
    if (!clip.video.empty()) reader_.emplace(clip.video);
  }

  bool next(Frame& frame) {
    if (reader_) {
      data::VideoFrame video_frame;
      if (!reader_->read(video_frame)) return false;
      frame.image = std::move(video_frame.image);
      frame.index = video_frame.index;
      frame.timestamp_s = video_frame.timestamp_s;
      return true;
    }
    if (next_image_ >= clip_.images.size()) return false;
    // One unreadable image must not stop the others of its clip.
    frame.error.clear();
    try {
      frame.image = data::load_image(clip_.images[next_image_]);
    } catch (const Error& error) {
      frame.image = {};
      frame.error = error.what();
    }
    frame.index = static_cast<std::int64_t>(next_image_);
    frame.timestamp_s = 0.0;
    ++next_image_;
    return true;
  }

  // Frame count when known in advance (for the progress bar), else 0.
  std::int64_t expected_frames() const {
    if (reader_) return reader_->info().frame_count.value_or(0);
    return static_cast<std::int64_t>(clip_.images.size());
  }

  bool truncated() const { return reader_ && reader_->truncated(); }

 private:
  const Clip& clip_;
  std::optional<data::VideoReader> reader_;
  std::size_t next_image_ = 0;
};

// A CSV row waiting for its face's scores.
struct Row {
  std::int64_t frame = 0;  // 0-based
  int face_id = 0;
  double timestamp_s = 0;
  std::optional<data::Face> face;  // empty for a frame without a face
  std::array<float, kClasses> probabilities{};
};

std::vector<Clip> collect_clips(const fs::path& input) {
  DSN_CHECK(fs::exists(input), "input {} not found: give a video, an image or a folder",
            input.string());
  std::vector<Clip> clips;
  if (!fs::is_directory(input)) {
    DSN_CHECK(fs::is_regular_file(input), "input {} is not a regular file, an image or a folder",
              input.string());
    if (data::is_image_file(input)) {
      clips.push_back({input.stem().string(), {}, {input}});
    } else {
      // Anything that is not an image is tried as a video; the decoder names the problem.
      clips.push_back({input.stem().string(), input, {}});
    }
    return clips;
  }

  // A folder: each video is a clip, and its images together form one more.
  Clip images{input.filename().string(), {}, {}};
  if (images.name.empty()) images.name = input.parent_path().filename().string();
  for (const fs::path& path : data::list_media(input)) {
    if (data::is_video_file(path)) {
      clips.push_back({path.stem().string(), path, {}});
    } else {
      images.images.push_back(path);
    }
  }
  if (!images.images.empty()) clips.push_back(images);
  DSN_CHECK(!clips.empty(), "folder {} contains no video or image files", input.string());

  // Distinct output folders for clips with the same name.
  std::map<std::string, int> seen;
  for (Clip& clip : clips) {
    const int count = seen[clip.name]++;
    if (count > 0) clip.name += fmt::format("_{}", count + 1);
  }
  return clips;
}

// Writes text to path through a temporary file and a rename.
void write_file_atomically(const fs::path& path, const std::string& text) {
  fs::path temporary = path;
  temporary += ".partial";
  std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
  DSN_CHECK(out.good(), "cannot write {}: check that the folder exists and is writable",
            temporary.string());
  out << text;
  out.close();
  if (out.fail()) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    fail(fmt::format("writing {} failed (disk full?); {} was left as it was", temporary.string(),
                     path.string()));
  }
  fs::rename(temporary, path);
}

class Predictor {
 public:
  Predictor(const PredictOptions& options, const nets::NetConfig& config, nets::EmotionNet& net,
            data::FaceAligner& aligner)
      : options_(options), config_(config), net_(net), aligner_(aligner) {
    blur_filter_.threshold = options.blur_threshold;
  }

  // Processes one clip; returns true on success. Errors are logged and recorded in clip.json.
  bool run(const Clip& clip);

 private:
  void score_pending();
  void write_rows(std::ofstream& csv);
  data::Image network_input(const data::Image& crop) const;
  void draw_progress(std::int64_t done, std::int64_t total) const;
  const std::array<double, kClasses>& clip_scores() const;
  std::string clip_label() const;
  nlohmann::ordered_json clip_json(const Clip& clip, const std::string& error) const;

  const PredictOptions& options_;
  const nets::NetConfig& config_;
  nets::EmotionNet& net_;
  data::FaceAligner& aligner_;
  data::BlurFilter blur_filter_;

  fs::path clip_dir_;
  std::vector<Row> pending_;  // rows in frame order; faces not yet scored
  std::size_t pending_faces_ = 0;

  // Per-clip results.
  std::int64_t frames_ = 0, frames_with_face_ = 0, frames_blurred_ = 0;
  std::vector<std::string> unreadable_;  // errors of images that could not be read
  std::array<double, kClasses> clip_scores_{};
  std::array<double, kClasses> clip_scores_all_{};  // including blurred frames
  std::int64_t frames_scored_ = 0;
};

data::Image Predictor::network_input(const data::Image& crop) const {
  const int size = static_cast<int>(config_.input_size);
  return data::resize_image(crop, size, size);
}

void Predictor::score_pending() {
  std::vector<Row*> rows;
  for (Row& row : pending_) {
    if (row.face) rows.push_back(&row);
  }
  if (rows.empty()) return;
  const std::int64_t batch = static_cast<std::int64_t>(rows.size());
  const std::int64_t size = config_.input_size;
  std::vector<float> pixels(static_cast<std::size_t>(batch * 3 * size * size));
  for (std::int64_t b = 0; b < batch; ++b) {
    const data::Image input = network_input(rows[static_cast<std::size_t>(b)]->face->aligned);
    for (std::int64_t c = 0; c < 3; ++c) {
      float* plane = pixels.data() + (b * 3 + c) * size * size;
      for (std::int64_t i = 0; i < size * size; ++i) {
        plane[i] = static_cast<float>(input.pixels[static_cast<std::size_t>(i * 3 + c)]) -
                   config_.mean[static_cast<std::size_t>(c)];
      }
    }
  }
  autograd::NoGradGuard no_grad;
  const Tensor x = Tensor::from_vector({batch, 3, size, size}, pixels);
  const std::vector<float> probabilities = net_.scores(net_.forward(x)).to_vector();
  for (std::int64_t b = 0; b < batch; ++b) {
    for (int k = 0; k < kClasses; ++k) {
      rows[static_cast<std::size_t>(b)]->probabilities[static_cast<std::size_t>(k)] =
          probabilities[static_cast<std::size_t>(b * kClasses + k)];
    }
  }
}

void Predictor::write_rows(std::ofstream& csv) {
  for (const Row& row : pending_) {
    if (!row.face) {
      csv << fmt::format("{},0,{:.6f},0,0,,,,,", row.frame + 1, row.timestamp_s);
      for (int k = 0; k < kClasses; ++k) csv << ',';
      csv << '\n';
      continue;
    }
    const data::Face& face = *row.face;
    csv << fmt::format("{},{},{:.6f},{:.4f},1,{:.1f},{:.1f},{:.1f},{:.1f},{:.2f}", row.frame + 1,
                       row.face_id, row.timestamp_s, face.confidence, face.box.x, face.box.y,
                       face.box.width, face.box.height, face.blur);
    for (float p : row.probabilities) csv << fmt::format(",{:.6f}", p);
    csv << '\n';
    if (row.face_id == 0) {
      // The largest face of the frame counts towards the clip score.
      ++frames_scored_;
      const bool blurred = blur_filter_.is_blurred(face.blur);
      frames_blurred_ += blurred ? 1 : 0;
      for (int k = 0; k < kClasses; ++k) {
        const auto i = static_cast<std::size_t>(k);
        clip_scores_all_[i] += row.probabilities[i];
        if (!blurred) clip_scores_[i] += row.probabilities[i];
      }
    }
    if (options_.save_crops) {
      const fs::path crop_path =
          clip_dir_ / "faces" / fmt::format("frame_{:06}_face_{}.png", row.frame + 1, row.face_id);
      data::save_png(crop_path, face.aligned);
    }
  }
  csv.flush();
  DSN_CHECK(csv.good(), "writing {} failed (disk full?)",
            (clip_dir_ / "frames.csv.partial").string());
  pending_.clear();
  pending_faces_ = 0;
}

void Predictor::draw_progress(std::int64_t done, std::int64_t total) const {
  if (!options_.progress) return;
  constexpr int kWidth = 30;
  if (total > 0) {
    const int filled = static_cast<int>(kWidth * std::min(done, total) / total);
    std::printf("\r  [%-*s] %lld/%lld frames", kWidth, std::string(filled, '#').c_str(),
                static_cast<long long>(done), static_cast<long long>(total));
  } else {
    std::printf("\r  %lld frames", static_cast<long long>(done));
  }
  std::fflush(stdout);
}

bool Predictor::run(const Clip& clip) {
  clip_dir_ = options_.out_dir / clip.name;
  frames_ = frames_with_face_ = frames_blurred_ = frames_scored_ = 0;
  clip_scores_.fill(0.0);
  clip_scores_all_.fill(0.0);
  unreadable_.clear();
  pending_.clear();
  pending_faces_ = 0;

  const fs::path csv_path = clip_dir_ / "frames.csv";
  fs::path csv_partial = csv_path;
  csv_partial += ".partial";
  std::string error;
  bool csv_complete = false;
  try {
    std::error_code code;
    fs::create_directories(clip_dir_ / "faces", code);
    DSN_CHECK(!code, "cannot create the output folder {}: {}", (clip_dir_ / "faces").string(),
              code.message());
    std::ofstream csv(csv_partial, std::ios::trunc);
    DSN_CHECK(csv.good(), "cannot write {}", csv_partial.string());
    csv << "frame,face_id,timestamp,confidence,success,x,y,width,height,blur";
    for (std::string_view name : data::kEmotionNames) csv << ',' << name;
    csv << '\n';

    FrameSource source(clip);
    const std::int64_t expected = source.expected_frames();
    spdlog::info("{}: scoring {} frames", clip.name,
                 expected > 0 ? std::to_string(expected) : std::string("the"));
    Frame frame;
    while (true) {
      try {
        if (!source.next(frame)) break;
      } catch (const Error&) {
        // Rows of the frames read so far are kept: score and write them before reporting.
        score_pending();
        write_rows(csv);
        throw;
      }
      ++frames_;
      std::vector<data::Face> faces;
      if (frame.error.empty()) {
        faces = aligner_.detect(frame.image);
      } else {
        unreadable_.push_back(frame.error);
        spdlog::warn("{}: {}", clip.name, frame.error);
      }
      if (faces.empty()) {
        pending_.push_back({frame.index, 0, frame.timestamp_s, std::nullopt, {}});
      } else {
        ++frames_with_face_;
        for (std::size_t i = 0; i < faces.size(); ++i) {
          pending_.push_back(
              {frame.index, static_cast<int>(i), frame.timestamp_s, std::move(faces[i]), {}});
          ++pending_faces_;
        }
      }
      if (pending_faces_ >= static_cast<std::size_t>(options_.batch_size)) {
        score_pending();
        write_rows(csv);
      }
      draw_progress(frames_, expected);
    }
    score_pending();
    write_rows(csv);
    csv.close();
    DSN_CHECK(!csv.fail(), "writing {} failed (disk full?)", csv_partial.string());
    csv_complete = true;
    if (source.truncated()) {
      error = fmt::format(
          "{} is truncated or damaged: decoding stopped after {} frames; the "
          "rows written cover those frames only",
          clip.video.string(), frames_);
    } else if (!unreadable_.empty()) {
      error = fmt::format("{} of {} images could not be read (their rows have success 0): {}",
                          unreadable_.size(), frames_, fmt::join(unreadable_, "; "));
    }
  } catch (const std::exception& caught) {
    error = caught.what();
  }
  if (options_.progress) std::printf("\n");

  // The CSV replaces an earlier one only when it was written in full. After a write failure the
  // earlier file stays, and the partial one is kept beside it.
  std::error_code code;
  if (csv_complete || (fs::exists(csv_partial, code) && !fs::exists(csv_path, code))) {
    fs::rename(csv_partial, csv_path, code);
  }

  try {
    write_file_atomically(clip_dir_ / "clip.json", clip_json(clip, error).dump(2) + "\n");
  } catch (const std::exception& caught) {
    error += (error.empty() ? "" : "; ") + std::string(caught.what());
  }
  if (!error.empty()) {
    spdlog::error("{}: {}", clip.name, error);
    return false;
  }
  const std::string label = clip_label();
  std::printf(
      "%s: %lld frames, %lld with a face, %lld without, %lld blurred; clip label %s%s\n",
      clip.name.c_str(), static_cast<long long>(frames_), static_cast<long long>(frames_with_face_),
      static_cast<long long>(frames_ - frames_with_face_), static_cast<long long>(frames_blurred_),
      label.empty() ? "none (no face)" : label.c_str(),
      options_.weights.empty() ? " (UNTRAINED network: the label is not a prediction)" : "");
  std::printf("  wrote %s\n", clip_dir_.string().c_str());
  return true;
}

const std::array<double, kClasses>& Predictor::clip_scores() const {
  // Blur filtering must not discard a whole clip: fall back to every frame.
  const bool all_blurred = frames_scored_ > 0 && frames_blurred_ == frames_scored_;
  return all_blurred ? clip_scores_all_ : clip_scores_;
}

std::string Predictor::clip_label() const {
  const std::array<double, kClasses>& scores = clip_scores();
  if (std::accumulate(scores.begin(), scores.end(), 0.0) <= 0.0) return "";
  const auto best = std::max_element(scores.begin(), scores.end()) - scores.begin();
  return std::string(data::kEmotionNames[static_cast<std::size_t>(best)]);
}

nlohmann::ordered_json Predictor::clip_json(const Clip& clip, const std::string& error) const {
  const std::array<double, kClasses>& scores = clip_scores();
  nlohmann::ordered_json json;
  if (!clip.video.empty()) {
    json["input"] = clip.video.string();
  } else {
    json["input"] =
        clip.images.size() == 1 ? clip.images[0].string() : clip.images[0].parent_path().string();
    // Image clips: the file of each frame, frame 1 first.
    std::vector<std::string> files;
    for (const fs::path& image : clip.images) files.push_back(image.filename().string());
    json["frame_files"] = files;
  }
  json["status"] = error.empty() ? "ok" : "failed";
  if (!error.empty()) json["error"] = error;
  json["model"] = config_.model;
  json["config"] = options_.config.string();
  const bool untrained = options_.weights.empty();
  json["weights"] =
      untrained ? fmt::format("untrained (seeded random initialisation, seed {})", config_.seed)
                : options_.weights.string();
  json["untrained"] = untrained;
  json["frames"] = frames_;
  json["frames_with_face"] = frames_with_face_;
  json["frames_without_face"] = frames_ - frames_with_face_;
  json["frames_blurred"] = frames_blurred_;
  json["blur_threshold"] = blur_filter_.threshold;
  json["blur_filter_fallback"] = frames_scored_ > 0 && frames_blurred_ == frames_scored_;
  json["classes"] =
      std::vector<std::string>(data::kEmotionNames.begin(), data::kEmotionNames.end());
  nlohmann::ordered_json score_json;
  for (int k = 0; k < kClasses; ++k) {
    score_json[std::string(data::kEmotionNames[static_cast<std::size_t>(k)])] =
        scores[static_cast<std::size_t>(k)];
  }
  json["scores"] = score_json;
  const std::string label = clip_label();
  if (label.empty()) {
    json["label"] = nullptr;
  } else {
    json["label"] = label;
    json["label_share"] = *std::max_element(scores.begin(), scores.end()) /
                          std::accumulate(scores.begin(), scores.end(), 0.0);
  }
  if (untrained) {
    json["note"] =
        "scores come from an untrained network with seeded random weights; they are "
        "not emotion predictions";
  }
  return json;
}

}  // namespace

// Throws dsn::Error naming the first parameter of `net` with a NaN or infinite value.
void check_finite_weights(nets::EmotionNet& net, const fs::path& weights) {
  for (auto& [name, tensor] : net.state()) {
    if (tensor->dtype() != DType::Float32) continue;
    const std::vector<float> values = tensor->to_vector();
    const auto bad = std::find_if(values.begin(), values.end(),
                                  [](float value) { return !std::isfinite(value); });
    DSN_CHECK(bad == values.end(),
              "{}: tensor '{}' holds a NaN or infinite value at element {}; the checkpoint is "
              "damaged or comes from a diverged training run",
              weights.string(), name, bad - values.begin());
  }
}

int run_predict(const PredictOptions& options) {
  DSN_CHECK(std::isfinite(options.blur_threshold) && options.blur_threshold >= 0.0,
            "--blur-threshold must be a finite number >= 0, got {}", options.blur_threshold);
  DSN_CHECK(options.batch_size >= 1, "--batch must be at least 1, got {}", options.batch_size);

  // Inputs and the output folder are checked before the slower model loading.
  const std::vector<Clip> clips = collect_clips(options.input);
  std::error_code code;
  fs::create_directories(options.out_dir, code);
  DSN_CHECK(!code && fs::is_directory(options.out_dir),
            "cannot use {} as the output folder: {}; pass another folder with --out",
            options.out_dir.string(), code ? code.message() : "it is not a folder");

  const nets::NetConfig config = nets::load_config(options.config);
  DSN_CHECK(config.num_classes == kClasses,
            "{}: num_classes is {}, but prediction writes the {} "
            "emotion classes",
            options.config.string(), config.num_classes, kClasses);
  std::unique_ptr<nets::EmotionNet> net = nets::make_net(config);
  net->eval();
  if (options.weights.empty()) {
    spdlog::warn(
        "no --weights given: the network is untrained (seeded random initialisation, "
        "seed {}); its scores are not emotion predictions",
        config.seed);
  } else {
    safetensors::load_module(options.weights, *net);
    check_finite_weights(*net, options.weights);
  }

  data::FaceAlignerOptions aligner_options;
  if (!options.landmark_model.empty()) aligner_options.landmark_model = options.landmark_model;
  data::FaceAligner aligner(aligner_options);

  Predictor predictor(options, config, *net, aligner);
  int failures = 0;
  for (const Clip& clip : clips) {
    if (!predictor.run(clip)) ++failures;
  }
  if (failures > 0) {
    spdlog::error(
        "{} of {} inputs failed; the errors are logged above and recorded in each clip.json",
        failures, clips.size());
    return 1;
  }
  return 0;
}

}  // namespace dsn::app
