#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "data/blur.h"
#include "data/face.h"
#include "data/video.h"
#include "engine/error.h"
#include "tests/data/support.h"

using dsn::data::Face;
using dsn::data::FaceAligner;
using dsn::data::FaceAlignerOptions;
using dsn::data::Image;

namespace {

// Loading the landmark model takes about a second, so the tests share aligners.
FaceAligner& default_aligner() {
  static FaceAligner aligner;
  return aligner;
}

// Two doublings instead of the default one.
FaceAligner& fine_aligner() {
  static FaceAligner aligner([] {
    FaceAlignerOptions options;
    options.min_face_size = 20;
    return options;
  }());
  return aligner;
}

std::vector<Image> demo_clip_frames() {
  dsn::data::VideoReader reader(dsn::test::demo_media("movie.avi"));
  std::vector<Image> frames;
  dsn::data::VideoFrame frame;
  while (reader.read(frame)) {
    frames.push_back(frame.image);
  }
  return frames;
}

double mean_y(const Face& face, int first, int last) {
  double sum = 0;
  for (int i = first; i <= last; ++i) {
    sum += face.landmarks[i].y;
  }
  return sum / (last - first + 1);
}

double intersection_over_union(const dsn::data::Rect& a, const dsn::data::Rect& b) {
  const double width = std::min(a.x + a.width, b.x + b.width) - std::max(a.x, b.x);
  const double height = std::min(a.y + a.height, b.y + b.height) - std::max(a.y, b.y);
  if (width <= 0 || height <= 0) {
    return 0.0;
  }
  const double intersection = width * height;
  return intersection / (a.width * a.height + b.width * b.height - intersection);
}

// Geometry that any correct detection of an upright face satisfies, independent of dlib.
void check_face_geometry(const Face& face, const Image& image, int crop_size) {
  CHECK(face.box.width > 0);
  CHECK(face.box.height > 0);
  CHECK(face.box.x > -0.25 * face.box.width);
  CHECK(face.box.y > -0.25 * face.box.height);
  CHECK(face.box.x + face.box.width < image.width + 0.25 * face.box.width);
  CHECK(face.box.y + face.box.height < image.height + 0.25 * face.box.height);
  // Eyes (landmarks 36-47) above the nose tip (30), and the nose tip above the mouth (48-67).
  // The outer corner of the eye on the image's left (36) is left of the other one (45).
  CHECK(mean_y(face, 36, 47) < face.landmarks[30].y);
  CHECK(face.landmarks[30].y < mean_y(face, 48, 67));
  CHECK(face.landmarks[36].x < face.landmarks[45].x);
  // Every landmark lies within the box widened by half its size.
  for (const dsn::data::Point2f& point : face.landmarks) {
    CHECK(point.x > face.box.x - 0.5 * face.box.width);
    CHECK(point.x < face.box.x + 1.5 * face.box.width);
    CHECK(point.y > face.box.y - 0.5 * face.box.height);
    CHECK(point.y < face.box.y + 1.5 * face.box.height);
  }
  CHECK(face.aligned.width == crop_size);
  CHECK(face.aligned.height == crop_size);
  CHECK(face.aligned.channels == 3);
  CHECK(face.aligned.pixels.size() == static_cast<std::size_t>(crop_size) * crop_size * 3);
  CHECK(face.blur > 0.0);
}

}  // namespace

TEST_CASE("upsampling_count follows min_face_size") {
  // n doublings, the smallest n with min_face_size * 2^n >= 80.
  const std::vector<std::pair<int, int>> cases = {{80, 0}, {200, 0}, {79, 1}, {40, 1},
                                                  {39, 2}, {20, 2},  {19, 3}, {10, 3}};
  for (const auto& [min_face_size, expected] : cases) {
    CAPTURE(min_face_size);
    CHECK(dsn::data::upsampling_count(min_face_size) == expected);
  }
  CHECK_THROWS_AS(dsn::data::upsampling_count(0), dsn::Error);
  CHECK(default_aligner().upsample_count() == 1);
  CHECK(fine_aligner().upsample_count() == 2);
}

TEST_CASE("FaceAligner finds one face in every demo clip frame") {
  const std::vector<Image> frames = demo_clip_frames();
  REQUIRE(frames.size() == 68);
  FaceAligner& aligner = default_aligner();
  for (std::size_t k = 0; k < frames.size(); ++k) {
    CAPTURE(k);
    const std::vector<Face> faces = aligner.detect(frames[k]);
    REQUIRE(faces.size() == 1);
    check_face_geometry(faces[0], frames[k], 224);
  }
}

TEST_CASE("FaceAligner upsampling maps boxes back") {
  // With two doublings the detector runs on a 640x480 image instead of 320x240. The boxes and
  // eye corners, mapped back to the 160x120 frame, must agree with the default ones.
  const std::vector<Image> frames = demo_clip_frames();
  REQUIRE(frames.size() == 68);
  for (std::size_t k = 0; k < frames.size(); k += 4) {
    CAPTURE(k);
    const std::vector<Face> coarse = default_aligner().detect(frames[k]);
    const std::vector<Face> fine = fine_aligner().detect(frames[k]);
    REQUIRE(coarse.size() == 1);
    REQUIRE(fine.size() == 1);
    check_face_geometry(fine[0], frames[k], 224);
    CHECK(intersection_over_union(coarse[0].box, fine[0].box) > 0.6);
    // Outer eye corners (36, 45) within 2 pixels of the 160x120 frame. The nose and mouth
    // points are left out: on this 55 px face the shape predictor moves them by up to 10 px
    // when the box changes.
    for (int landmark : {36, 45}) {
      CAPTURE(landmark);
      CHECK(std::abs(coarse[0].landmarks[landmark].x - fine[0].landmarks[landmark].x) < 2.0);
      CHECK(std::abs(coarse[0].landmarks[landmark].y - fine[0].landmarks[landmark].y) < 2.0);
    }
  }
}

TEST_CASE("FaceAligner copies detect the same faces") {
  const std::vector<Image> frames = demo_clip_frames();
  REQUIRE(frames.size() > 20);
  FaceAligner copy = default_aligner();
  const std::vector<Face> original_faces = default_aligner().detect(frames[20]);
  const std::vector<Face> copy_faces = copy.detect(frames[20]);
  REQUIRE(original_faces.size() == 1);
  REQUIRE(copy_faces.size() == 1);
  CHECK(copy_faces[0].box.x == original_faces[0].box.x);
  CHECK(copy_faces[0].box.y == original_faces[0].box.y);
  CHECK(copy_faces[0].aligned.pixels == original_faces[0].aligned.pixels);
}

TEST_CASE("FaceAligner finds the demo portraits") {
  for (const char* name : {"anne_helene.jpg", "jesper.jpg"}) {
    CAPTURE(name);
    const Image image = dsn::data::load_image(dsn::test::demo_media(name));
    const std::vector<Face> faces = default_aligner().detect(image);
    REQUIRE(faces.size() >= 1);
    for (const Face& face : faces) {
      check_face_geometry(face, image, 224);
    }
    for (std::size_t i = 1; i < faces.size(); ++i) {
      CHECK(faces[i - 1].box.width * faces[i - 1].box.height >=
            faces[i].box.width * faces[i].box.height);
    }
  }
}

TEST_CASE("FaceAligner returns no face for a blank image") {
  Image blank = dsn::data::make_image(200, 150, 3);
  std::fill(blank.pixels.begin(), blank.pixels.end(), uint8_t{128});
  CHECK(default_aligner().detect(blank).empty());
}

TEST_CASE("FaceAligner accepts grey images") {
  const std::vector<Image> frames = demo_clip_frames();
  REQUIRE(!frames.empty());
  const Image& colour = frames[10];
  Image grey = dsn::data::make_image(colour.width, colour.height, 1);
  for (int y = 0; y < colour.height; ++y) {
    for (int x = 0; x < colour.width; ++x) {
      const uint8_t* pixel = colour.at(x, y);
      grey.at(x, y)[0] =
          static_cast<uint8_t>((299 * pixel[0] + 587 * pixel[1] + 114 * pixel[2] + 500) / 1000);
    }
  }
  const std::vector<Face> faces = default_aligner().detect(grey);
  REQUIRE(faces.size() == 1);
  check_face_geometry(faces[0], grey, 224);
}

TEST_CASE("FaceAligner honours crop_size") {
  FaceAlignerOptions options;
  options.crop_size = 112;
  FaceAligner aligner(options);
  const Image image = dsn::data::load_image(dsn::test::demo_media("anne_helene.jpg"));
  const std::vector<Face> faces = aligner.detect(image);
  REQUIRE(faces.size() >= 1);
  check_face_geometry(faces[0], image, 112);
}

TEST_CASE("FaceAligner reports a missing landmark model") {
  dsn::test::TempDir folder;
  FaceAlignerOptions options;
  options.landmark_model = folder / "missing.dat";
  CHECK_ERROR_MENTIONS(FaceAligner{options}, "missing.dat");
  CHECK_ERROR_MENTIONS(FaceAligner{options}, "libdlib-data");

  options.landmark_model = folder / "garbage.dat";
  dsn::test::write_bytes(options.landmark_model, "not a dlib model");
  CHECK_ERROR_MENTIONS(FaceAligner{options}, "garbage.dat");
}

TEST_CASE("FaceAligner rejects invalid options") {
  FaceAlignerOptions options;
  options.crop_size = 0;
  CHECK_ERROR_MENTIONS(FaceAligner{options}, "crop_size");
  options = FaceAlignerOptions{};
  options.padding = -0.1;
  CHECK_ERROR_MENTIONS(FaceAligner{options}, "padding");
  options = FaceAlignerOptions{};
  options.min_face_size = 0;
  CHECK_ERROR_MENTIONS(FaceAligner{options}, "min_face_size");
}

TEST_CASE("BlurFilter separates sharp and box-blurred faces") {
  // The claims behind BlurFilter::threshold: sharp faces of the demo media score above it,
  // the same images after a 3x3 box blur score below it.
  const dsn::data::BlurFilter filter;
  std::vector<Image> images;
  const std::vector<Image> frames = demo_clip_frames();
  for (std::size_t k = 0; k < frames.size(); k += 8) {
    images.push_back(frames[k]);
  }
  images.push_back(dsn::data::load_image(dsn::test::demo_media("anne_helene.jpg")));
  images.push_back(dsn::data::load_image(dsn::test::demo_media("jesper_2.jpg")));

  for (std::size_t i = 0; i < images.size(); ++i) {
    CAPTURE(i);
    const std::vector<Face> sharp = default_aligner().detect(images[i]);
    REQUIRE(sharp.size() >= 1);
    CAPTURE(sharp[0].blur);
    CHECK_FALSE(filter.is_blurred(sharp[0].blur));

    const std::vector<Face> blurred = default_aligner().detect(dsn::test::box_blur_3x3(images[i]));
    for (const Face& face : blurred) {
      CAPTURE(face.blur);
      CHECK(filter.is_blurred(face.blur));
    }
  }
}
