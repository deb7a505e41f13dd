// Face detection, 68-point landmarks and aligned face crops with dlib. The HOG frontal face
// detector finds the faces and the shape predictor places the iBUG 300-W landmarks. dlib's
// face chip extraction then rotates and scales each face so the eyes and mouth land in fixed
// places.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <vector>

#include "data/image.h"

namespace dsn::data {

struct FaceAlignerOptions {
  // dlib's 68-landmark model, installed by the Debian package libdlib-data.
  std::filesystem::path landmark_model = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";
  int crop_size = 224;  // side of the aligned crop in pixels
  // Border around the landmarks in the crop, as a fraction of the face size (dlib's
  // get_face_chip_details padding).
  double padding = 0.25;
  // Smallest face side, in pixels of the input image, that detect() must find and align
  // well. The HOG detector scans an 80x80 window, and for faces near or below that size its
  // boxes are coarse, so the landmarks fitted inside them miss. detect() therefore doubles
  // the image with dlib::pyramid_up upsampling_count(min_face_size) times. Each doubling
  // makes detection about 4x slower.
  // The default (one doubling) was chosen on the 160x120 kphotoalbum demo clip, whose face
  // is about 55 px wide. With 80 (no doubling) dlib still finds the face in every frame, but
  // returns one of only two 74 px boxes for all 68 frames. The landmarks fitted in those
  // boxes put the mouth near the chin, so the aligned crop slides down onto the shirt.
  int min_face_size = 40;
  // Added to the HOG detector's threshold. Negative values find more faces and more false
  // detections.
  double detection_threshold = 0.0;
};

// Returns the number of pyramid_up doublings detect() applies: the smallest n with
// min_face_size * 2^n >= 80, the side of the HOG detector window.
int upsampling_count(int min_face_size);

struct Rect {
  double x = 0;  // left edge
  double y = 0;  // top edge
  double width = 0;
  double height = 0;
};

struct Point2f {
  float x = 0;
  float y = 0;
};

struct Face {
  Rect box;               // detector box in input image pixels
  double confidence = 0;  // HOG detector score minus its threshold, higher when more certain
  // Landmarks in input image pixels, in the iBUG 300-W order: 0-16 jaw, 17-26 eyebrows,
  // 27-35 nose, 36-47 eyes, 48-67 mouth.
  std::array<Point2f, 68> landmarks{};
  Image aligned;  // (crop_size, crop_size, 3) RGB
  // laplacian_variance of the input pixels inside `box` (clipped to the image), without
  // resampling, so the score measures the sharpness of the source. It is 0 when less than
  // 3x3 of the box lies inside the image. Compare it with BlurFilter::threshold.
  double blur = 0;
};

// Detects faces and produces aligned crops. Loading the 100 MB landmark model takes most of a
// second, so construct one FaceAligner and reuse it.
// detect() is not thread-safe, because dlib's detector loads each image into internal
// buffers. Copies share the read-only landmark model and are cheap, so give each thread its
// own copy.
class FaceAligner {
 public:
  // Loads the landmark model. Throws dsn::Error when the model file is missing (install the
  // Debian package libdlib-data or set landmark_model) or unreadable, or when an option is out
  // of range.
  explicit FaceAligner(FaceAlignerOptions options = {});
  ~FaceAligner();
  FaceAligner(const FaceAligner& other);
  FaceAligner& operator=(const FaceAligner& other);
  FaceAligner(FaceAligner&&) noexcept;
  FaceAligner& operator=(FaceAligner&&) noexcept;

  // Returns every face found in an RGB or grey image, largest box first. An image without a
  // face gives an empty vector.
  std::vector<Face> detect(const Image& image);

  const FaceAlignerOptions& options() const;
  // upsampling_count(options().min_face_size).
  int upsample_count() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace dsn::data
