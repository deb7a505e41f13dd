// 8-bit images in memory, image file input and output through stb_image, and media folder
// listing. Pixels are interleaved (H, W, C), RGB order for three channels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace dsn::data {

// An 8-bit image with interleaved channels: pixel (x, y) channel c is at
// pixels[(y * width + x) * channels + c]. channels is 3 (RGB) or 1 (grey).
struct Image {
  int width = 0;
  int height = 0;
  int channels = 3;
  std::vector<uint8_t> pixels;  // (H, W, C)

  bool empty() const { return pixels.empty(); }
  std::size_t offset(int x, int y) const {
    return (static_cast<std::size_t>(y) * width + x) * channels;
  }
  uint8_t* at(int x, int y) { return pixels.data() + offset(x, y); }
  const uint8_t* at(int x, int y) const { return pixels.data() + offset(x, y); }
};

// Allocates a zero-filled image. Throws dsn::Error for a non-positive size or a channel count
// other than 1 or 3.
Image make_image(int width, int height, int channels = 3);

// Checks that the image is well formed. Throws dsn::Error, naming `caller`, when the image has
// a non-positive size, a channel count other than 1 or 3, or a pixel buffer whose size is not
// width * height * channels.
void check_image(const Image& image, const char* caller);

// Decodes a JPEG, PNG, BMP, TGA, GIF (first frame) or PNM file into RGB. Grey images are
// expanded to R = G = B. An alpha channel is dropped: the stored colour values are returned
// unchanged, so a fully transparent pixel keeps whatever colour the file stores for it.
// 16-bit PNGs are reduced to 8 bits. Throws dsn::Error naming the file when it is missing or
// cannot be decoded.
Image load_image(const std::filesystem::path& path);

// Encodes the image (1 or 3 channels) and writes it to `path`. The data is first written to a
// hidden temporary file in the same folder, which is then renamed over `path`, so a failed
// or interrupted write never leaves a partial file under the final name. Throws dsn::Error
// naming the file on failure.
void save_png(const std::filesystem::path& path, const Image& image);
void save_jpeg(const std::filesystem::path& path, const Image& image, int quality = 95);

// Returns a copy of the width x height region whose top-left pixel is (x, y). Throws
// dsn::Error when the region is empty or not entirely inside the image.
Image crop_image(const Image& image, int x, int y, int width, int height);

// Returns the image resampled to width x height with stb_image_resize's default filters
// (Catmull-Rom when enlarging, Mitchell-Netravali when shrinking), same channel count.
Image resize_image(const Image& image, int width, int height);

// Returns the image turned counter-clockwise by `degrees_ccw`, which must be a multiple of 90
// (negative values turn clockwise). A quarter turn swaps width and height.
Image rotate_image(const Image& image, int degrees_ccw);

// Classify a path by its extension, ignoring case. Image extensions are those load_image
// decodes, and video extensions are the common containers FFmpeg demuxes.
bool is_image_file(const std::filesystem::path& path);
bool is_video_file(const std::filesystem::path& path);

// Lists the regular files directly inside `folder` whose extension is an image or video
// extension, sorted by path. Hidden files (name starting with '.') are skipped, which also
// skips the temporary files of an interrupted save_png/save_jpeg. Throws dsn::Error when
// `folder` is not a readable directory.
std::vector<std::filesystem::path> list_media(const std::filesystem::path& folder);

}  // namespace dsn::data
