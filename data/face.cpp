#include "data/face.h"

#include <algorithm>
#include <cmath>
#include <system_error>

#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>
#include <dlib/serialize.h>

#include "data/blur.h"
#include "engine/error.h"

namespace dsn::data {
namespace {

// Side of the square window dlib's HOG frontal face detector was trained with. Faces much
// smaller than this are not found.
constexpr int kDetectorWindow = 80;

dlib::matrix<dlib::rgb_pixel> to_dlib_rgb(const Image& image) {
  dlib::matrix<dlib::rgb_pixel> result(image.height, image.width);
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* pixel = image.at(x, y);
      result(y, x) = image.channels == 1 ? dlib::rgb_pixel(pixel[0], pixel[0], pixel[0])
                                         : dlib::rgb_pixel(pixel[0], pixel[1], pixel[2]);
    }
  }
  return result;
}

Image from_dlib_rgb(const dlib::matrix<dlib::rgb_pixel>& matrix) {
  Image image = make_image(static_cast<int>(matrix.nc()), static_cast<int>(matrix.nr()), 3);
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      const dlib::rgb_pixel& pixel = matrix(y, x);
      uint8_t* out = image.at(x, y);
      out[0] = pixel.red;
      out[1] = pixel.green;
      out[2] = pixel.blue;
    }
  }
  return image;
}

std::shared_ptr<const dlib::shape_predictor> load_landmark_model(
    const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    fail(
        fmt::format("face landmark model not found: {} (install the Debian package "
                    "libdlib-data, or pass another model file with dsn predict --landmarks)",
                    path.string()));
  }
  auto model = std::make_shared<dlib::shape_predictor>();
  try {
    dlib::deserialize(path.string()) >> *model;
  } catch (const dlib::error& caught) {
    fail(
        fmt::format("cannot load face landmark model {}: {} (the file is damaged or not a "
                    "dlib shape_predictor; reinstall libdlib-data)",
                    path.string(), caught.what()));
  }
  DSN_CHECK(model->num_parts() == 68,
            "face landmark model {} predicts {} landmarks, expected 68 (use "
            "shape_predictor_68_face_landmarks.dat)",
            path.string(), model->num_parts());
  return model;
}

// Scores the detector box, clipped to the image, on the input pixels without resampling. An
// upsampled crop would be smoothed by the interpolation. A chip that extends past the image
// edge is filled with black there, which would add a strong false edge.
double score_sharpness(const Image& image, const Rect& box) {
  const int left = std::clamp(static_cast<int>(std::lround(box.x)), 0, image.width);
  const int top = std::clamp(static_cast<int>(std::lround(box.y)), 0, image.height);
  const int right = std::clamp(static_cast<int>(std::lround(box.x + box.width)), 0, image.width);
  const int bottom = std::clamp(static_cast<int>(std::lround(box.y + box.height)), 0, image.height);
  if (right - left < 3 || bottom - top < 3) {
    return 0.0;
  }
  return laplacian_variance(crop_image(image, left, top, right - left, bottom - top));
}

}  // namespace

int upsampling_count(int min_face_size) {
  DSN_CHECK(min_face_size >= 1, "min_face_size {} is invalid: expected a positive size",
            min_face_size);
  int count = 0;
  while (static_cast<long>(min_face_size) << count < kDetectorWindow) {
    ++count;
  }
  return count;
}

struct FaceAligner::State {
  FaceAlignerOptions options;
  int upsample_count = 0;
  dlib::frontal_face_detector detector;
  std::shared_ptr<const dlib::shape_predictor> landmark_model;  // shared by copies
};

FaceAligner::FaceAligner(FaceAlignerOptions options) : state_(std::make_unique<State>()) {
  DSN_CHECK(options.crop_size >= 16 && options.crop_size <= 4096,
            "FaceAlignerOptions::crop_size {} is invalid: expected 16 to 4096", options.crop_size);
  DSN_CHECK(options.padding >= 0.0 && options.padding <= 2.0,
            "FaceAlignerOptions::padding {} is invalid: expected 0 to 2", options.padding);
  DSN_CHECK(options.min_face_size >= 5,
            "FaceAlignerOptions::min_face_size {} is invalid: expected at least 5 pixels",
            options.min_face_size);
  state_->upsample_count = upsampling_count(options.min_face_size);
  state_->landmark_model = load_landmark_model(options.landmark_model);
  state_->detector = dlib::get_frontal_face_detector();
  state_->options = std::move(options);
}

FaceAligner::~FaceAligner() = default;
FaceAligner::FaceAligner(const FaceAligner& other)
    : state_(std::make_unique<State>(*other.state_)) {}
FaceAligner& FaceAligner::operator=(const FaceAligner& other) {
  if (this != &other) {
    state_ = std::make_unique<State>(*other.state_);
  }
  return *this;
}
FaceAligner::FaceAligner(FaceAligner&&) noexcept = default;
FaceAligner& FaceAligner::operator=(FaceAligner&&) noexcept = default;

std::vector<Face> FaceAligner::detect(const Image& image) {
  check_image(image, "FaceAligner::detect");
  const FaceAlignerOptions& options = state_->options;
  const unsigned levels = static_cast<unsigned>(state_->upsample_count);

  // Detection and landmarks run on the upsampled image, where a small face has more pixels.
  // The crop is cut from the input image, so it does not depend on the upsampling.
  const dlib::matrix<dlib::rgb_pixel> input = to_dlib_rgb(image);
  dlib::matrix<dlib::rgb_pixel> scan = input;
  const dlib::pyramid_down<2> pyramid;
  for (unsigned level = 0; level < levels; ++level) {
    dlib::pyramid_up(scan, pyramid);
  }
  std::vector<dlib::rect_detection> detections;
  state_->detector(scan, detections, options.detection_threshold);

  std::vector<Face> faces;
  faces.reserve(detections.size());
  for (const dlib::rect_detection& detection : detections) {
    const dlib::full_object_detection shape = (*state_->landmark_model)(scan, detection.rect);

    Face face;
    // dlib rectangles include their right and bottom pixels, so +1 makes width the pixel count.
    const dlib::rectangle& rect = detection.rect;
    const dlib::drectangle box = pyramid.rect_down(
        dlib::drectangle(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1), levels);
    face.box = Rect{box.left(), box.top(), box.width(), box.height()};
    face.confidence = detection.detection_confidence;
    for (unsigned long part = 0; part < shape.num_parts(); ++part) {
      const dlib::dpoint point = pyramid.point_down(dlib::dpoint(shape.part(part)), levels);
      face.landmarks[part] = Point2f{static_cast<float>(point.x()), static_cast<float>(point.y())};
    }

    // The pyramid maps points by a scale and a shift, so the chip found in the upsampled
    // image keeps its angle and only its rectangle moves back to input coordinates.
    dlib::chip_details chip = dlib::get_face_chip_details(
        shape, static_cast<unsigned long>(options.crop_size), options.padding);
    chip.rect = pyramid.rect_down(chip.rect, levels);
    dlib::matrix<dlib::rgb_pixel> aligned;
    dlib::extract_image_chip(input, chip, aligned);
    face.aligned = from_dlib_rgb(aligned);

    face.blur = score_sharpness(image, face.box);
    faces.push_back(std::move(face));
  }

  std::stable_sort(faces.begin(), faces.end(), [](const Face& a, const Face& b) {
    return a.box.width * a.box.height > b.box.width * b.box.height;
  });
  return faces;
}

const FaceAlignerOptions& FaceAligner::options() const {
  return state_->options;
}
int FaceAligner::upsample_count() const {
  return state_->upsample_count;
}

}  // namespace dsn::data
