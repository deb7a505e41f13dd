#include "data/image.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>

#include <unistd.h>

#include "engine/error.h"

// The stb implementations are compiled in this file only. STBI_FAILURE_USERMSG selects the
// readable failure messages ("Corrupt JPEG" rather than "bad huffman code").
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>

namespace dsn::data {
namespace {

std::string lower_extension(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension;
}

std::vector<unsigned char> read_file_bytes(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    fail(fmt::format("image file not found: {} (check the path)", path.string()));
  }
  std::ifstream stream(path, std::ios::binary);
  if (!stream) {
    fail(fmt::format("cannot open image file {} for reading (check its permissions)",
                     path.string()));
  }
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(stream)),
                                   std::istreambuf_iterator<char>());
  if (stream.bad()) {
    fail(fmt::format("failed to read image file {}", path.string()));
  }
  return bytes;
}

// Writes bytes to a hidden temporary name next to `path` and renames it into place.
void write_file_atomically(const std::filesystem::path& path,
                           const std::vector<unsigned char>& bytes) {
  static std::atomic<unsigned> counter{0};
  const std::filesystem::path temporary =
      path.parent_path() / fmt::format(".{}.partial-{}-{}", path.filename().string(),
                                       static_cast<long>(::getpid()), counter++);
  {
    std::ofstream stream(temporary, std::ios::binary | std::ios::trunc);
    if (!stream) {
      fail(fmt::format("cannot create {} (check that the folder exists and is writable)",
                       temporary.string()));
    }
    stream.write(reinterpret_cast<const char*>(bytes.data()),
                 static_cast<std::streamsize>(bytes.size()));
    stream.close();
    if (!stream) {
      std::error_code ignored;
      std::filesystem::remove(temporary, ignored);
      fail(fmt::format("failed to write {} (disk full?)", temporary.string()));
    }
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    fail(fmt::format("failed to rename {} to {}: {}", temporary.string(), path.string(),
                     error.message()));
  }
}

void append_bytes(void* context, void* data, int size) {
  auto* bytes = static_cast<std::vector<unsigned char>*>(context);
  const auto* begin = static_cast<const unsigned char*>(data);
  bytes->insert(bytes->end(), begin, begin + size);
}

}  // namespace

Image make_image(int width, int height, int channels) {
  DSN_CHECK(width > 0 && height > 0, "image size {}x{} is invalid: both must be positive", width,
            height);
  DSN_CHECK(channels == 1 || channels == 3, "image channel count {} is invalid: expected 1 or 3",
            channels);
  Image image{width, height, channels, {}};
  image.pixels.assign(static_cast<std::size_t>(width) * height * channels, 0);
  return image;
}

void check_image(const Image& image, const char* caller) {
  DSN_CHECK(image.width > 0 && image.height > 0, "{}: image size {}x{} is invalid", caller,
            image.width, image.height);
  DSN_CHECK(image.channels == 1 || image.channels == 3,
            "{}: image channel count {} is invalid: expected 1 or 3", caller, image.channels);
  const std::size_t expected =
      static_cast<std::size_t>(image.width) * image.height * image.channels;
  DSN_CHECK(image.pixels.size() == expected,
            "{}: image buffer holds {} bytes but {}x{}x{} needs {}", caller, image.pixels.size(),
            image.width, image.height, image.channels, expected);
}

Image load_image(const std::filesystem::path& path) {
  const std::vector<unsigned char> bytes = read_file_bytes(path);
  DSN_CHECK(!bytes.empty(), "image file {} is empty", path.string());
  DSN_CHECK(bytes.size() <= static_cast<std::size_t>(INT32_MAX),
            "image file {} is too large ({} bytes) for stb_image", path.string(), bytes.size());

  int width = 0;
  int height = 0;
  int channels_in_file = 0;
  // Requesting 3 components makes stb_image expand grey and drop alpha.
  std::unique_ptr<stbi_uc, decltype(&stbi_image_free)> decoded(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &width, &height,
                            &channels_in_file, 3),
      &stbi_image_free);
  if (!decoded) {
    fail(fmt::format("cannot decode image file {}: {}", path.string(), stbi_failure_reason()));
  }

  Image image = make_image(width, height, 3);
  std::copy_n(decoded.get(), image.pixels.size(), image.pixels.begin());
  return image;
}

void save_png(const std::filesystem::path& path, const Image& image) {
  check_image(image, "save_png");
  std::vector<unsigned char> bytes;
  const int ok =
      stbi_write_png_to_func(&append_bytes, &bytes, image.width, image.height, image.channels,
                             image.pixels.data(), image.width * image.channels);
  DSN_CHECK(ok != 0, "failed to encode PNG for {}", path.string());
  write_file_atomically(path, bytes);
}

void save_jpeg(const std::filesystem::path& path, const Image& image, int quality) {
  check_image(image, "save_jpeg");
  DSN_CHECK(quality >= 1 && quality <= 100, "JPEG quality {} is invalid: expected 1 to 100",
            quality);
  std::vector<unsigned char> bytes;
  const int ok = stbi_write_jpg_to_func(&append_bytes, &bytes, image.width, image.height,
                                        image.channels, image.pixels.data(), quality);
  DSN_CHECK(ok != 0, "failed to encode JPEG for {}", path.string());
  write_file_atomically(path, bytes);
}

Image resize_image(const Image& image, int width, int height) {
  check_image(image, "resize_image");
  DSN_CHECK(width > 0 && height > 0, "resize_image: invalid target size {}x{}", width, height);
  if (image.width == width && image.height == height) return image;
  Image resized = make_image(width, height, image.channels);
  const int ok = stbir_resize_uint8(image.pixels.data(), image.width, image.height, 0,
                                    resized.pixels.data(), width, height, 0, image.channels);
  DSN_CHECK(ok == 1, "resize_image: resizing {}x{} to {}x{} failed", image.width, image.height,
            width, height);
  return resized;
}

Image crop_image(const Image& image, int x, int y, int width, int height) {
  check_image(image, "crop_image");
  DSN_CHECK(width > 0 && height > 0 && x >= 0 && y >= 0 && x + width <= image.width &&
                y + height <= image.height,
            "crop_image: region {}x{} at ({}, {}) is empty or outside the {}x{} image", width,
            height, x, y, image.width, image.height);
  Image cropped = make_image(width, height, image.channels);
  const std::size_t row_bytes = static_cast<std::size_t>(width) * image.channels;
  for (int row = 0; row < height; ++row) {
    std::copy_n(image.at(x, y + row), row_bytes, cropped.at(0, row));
  }
  return cropped;
}

Image rotate_image(const Image& image, int degrees_ccw) {
  check_image(image, "rotate_image");
  DSN_CHECK(degrees_ccw % 90 == 0, "rotation of {} degrees is invalid: expected a multiple of 90",
            degrees_ccw);
  const int quarter_turns = ((degrees_ccw / 90) % 4 + 4) % 4;
  if (quarter_turns == 0) {
    return image;
  }

  const int width = image.width;
  const int height = image.height;
  const bool swaps = quarter_turns % 2 == 1;
  Image rotated = make_image(swaps ? height : width, swaps ? width : height, image.channels);
  // Each output pixel (x, y) reads the input pixel that the turn moves onto it.
  for (int y = 0; y < rotated.height; ++y) {
    for (int x = 0; x < rotated.width; ++x) {
      int source_x = 0;
      int source_y = 0;
      if (quarter_turns == 1) {
        source_x = width - 1 - y;
        source_y = x;
      } else if (quarter_turns == 2) {
        source_x = width - 1 - x;
        source_y = height - 1 - y;
      } else {
        source_x = y;
        source_y = height - 1 - x;
      }
      std::copy_n(image.at(source_x, source_y), image.channels, rotated.at(x, y));
    }
  }
  return rotated;
}

bool is_image_file(const std::filesystem::path& path) {
  static const std::array<const char*, 10> kExtensions = {".jpg", ".jpeg", ".png", ".bmp", ".tga",
                                                          ".gif", ".ppm",  ".pgm", ".pnm", ".jpe"};
  const std::string extension = lower_extension(path);
  return std::find(kExtensions.begin(), kExtensions.end(), extension) != kExtensions.end();
}

bool is_video_file(const std::filesystem::path& path) {
  static const std::array<const char*, 15> kExtensions = {
      ".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mpg", ".mpeg",
      ".wmv", ".flv", ".3gp", ".ogv", ".ts",  ".mts",  ".m2ts"};
  const std::string extension = lower_extension(path);
  return std::find(kExtensions.begin(), kExtensions.end(), extension) != kExtensions.end();
}

std::vector<std::filesystem::path> list_media(const std::filesystem::path& folder) {
  std::error_code error;
  DSN_CHECK(std::filesystem::is_directory(folder, error), "media folder {} is not a directory",
            folder.string());

  std::vector<std::filesystem::path> files;
  std::filesystem::directory_iterator iterator(folder, error);
  DSN_CHECK(!error, "cannot list media folder {}: {}", folder.string(), error.message());
  for (const std::filesystem::directory_entry& entry : iterator) {
    const std::filesystem::path& path = entry.path();
    if (path.filename().string().starts_with('.')) {
      continue;
    }
    if (!entry.is_regular_file(error)) {
      continue;
    }
    if (is_image_file(path) || is_video_file(path)) {
      files.push_back(path);
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace dsn::data
