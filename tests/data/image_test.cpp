#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "data/image.h"
#include "engine/error.h"
#include "tests/data/support.h"

using dsn::data::Image;
using dsn::data::make_image;

namespace {

Image gradient_image(int width, int height) {
  Image image = make_image(width, height, 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* pixel = image.at(x, y);
      pixel[0] = static_cast<uint8_t>(4 * x);
      pixel[1] = static_cast<uint8_t>(4 * y);
      pixel[2] = static_cast<uint8_t>(2 * (x + y));
    }
  }
  return image;
}

}  // namespace

TEST_CASE("load_image expands grey PNG to RGB") {
  const Image image = dsn::data::load_image(dsn::test::fixture("grey.png"));
  REQUIRE(image.width == 4);
  REQUIRE(image.height == 3);
  REQUIRE(image.channels == 3);
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 4; ++x) {
      const int expected = 40 * x + 60 * y;  // written by tools/make-fixtures.sh
      CAPTURE(x);
      CAPTURE(y);
      CHECK(image.at(x, y)[0] == expected);
      CHECK(image.at(x, y)[1] == expected);
      CHECK(image.at(x, y)[2] == expected);
    }
  }
}

TEST_CASE("load_image drops alpha and keeps colour") {
  const Image image = dsn::data::load_image(dsn::test::fixture("rgba.png"));
  REQUIRE(image.width == 4);
  REQUIRE(image.height == 3);
  REQUIRE(image.channels == 3);
  // Column 0 is fully transparent and column 1 half transparent in the file. The stored
  // colour must come back unchanged, not composited.
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 4; ++x) {
      CAPTURE(x);
      CAPTURE(y);
      CHECK(image.at(x, y)[0] == 50 * x);
      CHECK(image.at(x, y)[1] == 80 * y);
      CHECK(image.at(x, y)[2] == 200);
    }
  }
}

TEST_CASE("load_image decodes the demo JPEG") {
  const Image image = dsn::data::load_image(dsn::test::demo_media("jesper.jpg"));
  CHECK(image.width == 800);  // ffprobe: 800x533
  CHECK(image.height == 533);
  CHECK(image.channels == 3);
  CHECK(image.pixels.size() == 800u * 533u * 3u);
}

TEST_CASE("load_image errors name the file") {
  dsn::test::TempDir folder;
  const auto missing = folder / "missing.png";
  CHECK_ERROR_MENTIONS(dsn::data::load_image(missing), missing.string());
  CHECK_ERROR_MENTIONS(dsn::data::load_image(missing), "not found");

  const auto text = folder / "notes.jpg";
  dsn::test::write_bytes(text, "this is a text file, not a JPEG\n");
  CHECK_ERROR_MENTIONS(dsn::data::load_image(text), text.string());
  CHECK_ERROR_MENTIONS(dsn::data::load_image(text), "cannot decode");

  const auto empty = folder / "empty.png";
  dsn::test::write_bytes(empty, "");
  CHECK_ERROR_MENTIONS(dsn::data::load_image(empty), empty.string());
}

TEST_CASE("save_png round trip is exact") {
  dsn::test::TempDir folder;
  const Image original = gradient_image(17, 9);
  const auto path = folder / "gradient.png";
  dsn::data::save_png(path, original);
  const Image loaded = dsn::data::load_image(path);
  CHECK(loaded.width == original.width);
  CHECK(loaded.height == original.height);
  CHECK(loaded.pixels == original.pixels);

  // Only the final file remains, because the temporary file was renamed to it.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder.path())) {
    CHECK(entry.path().filename() == "gradient.png");
    ++files;
  }
  CHECK(files == 1);
}

TEST_CASE("save_png writes grey images") {
  dsn::test::TempDir folder;
  Image grey = make_image(5, 4, 1);
  for (std::size_t i = 0; i < grey.pixels.size(); ++i) {
    grey.pixels[i] = static_cast<uint8_t>(i * 10);
  }
  const auto path = folder / "grey.png";
  dsn::data::save_png(path, grey);
  const Image loaded = dsn::data::load_image(path);
  REQUIRE(loaded.channels == 3);
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 5; ++x) {
      CHECK(loaded.at(x, y)[0] == grey.at(x, y)[0]);
      CHECK(loaded.at(x, y)[1] == grey.at(x, y)[0]);
      CHECK(loaded.at(x, y)[2] == grey.at(x, y)[0]);
    }
  }
}

TEST_CASE("save_jpeg round trip is close") {
  dsn::test::TempDir folder;
  const Image original = gradient_image(48, 32);
  const auto path = folder / "gradient.jpg";
  dsn::data::save_jpeg(path, original, 95);
  const Image loaded = dsn::data::load_image(path);
  REQUIRE(loaded.width == original.width);
  REQUIRE(loaded.height == original.height);
  double total_error = 0;
  int max_error = 0;
  for (std::size_t i = 0; i < loaded.pixels.size(); ++i) {
    const int error = std::abs(loaded.pixels[i] - original.pixels[i]);
    total_error += error;
    max_error = std::max(max_error, error);
  }
  // A smooth gradient at quality 95 loses about one grey level on average.
  CHECK(total_error / static_cast<double>(loaded.pixels.size()) < 2.0);
  CHECK(max_error < 16);
}

TEST_CASE("save_png into missing folder fails cleanly") {
  dsn::test::TempDir folder;
  const auto path = folder / "no_such_folder" / "image.png";
  CHECK_ERROR_MENTIONS(dsn::data::save_png(path, gradient_image(4, 4)), "no_such_folder");
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("save_png rejects inconsistent images") {
  dsn::test::TempDir folder;
  Image broken = gradient_image(4, 4);
  broken.pixels.pop_back();
  CHECK_ERROR_MENTIONS(dsn::data::save_png(folder / "broken.png", broken), "buffer holds 47");
  Image four_channels{2, 2, 4, std::vector<uint8_t>(16)};
  CHECK_ERROR_MENTIONS(dsn::data::save_png(folder / "rgba.png", four_channels), "channel count 4");
}

TEST_CASE("rotate_image turns by quarter turns") {
  // 3x2 image, one grey value per pixel:
  //   1 2 3
  //   4 5 6
  Image image = make_image(3, 2, 1);
  image.pixels = {1, 2, 3, 4, 5, 6};

  // Counter-clockwise 90: the right column becomes the top row.
  const Image ccw = dsn::data::rotate_image(image, 90);
  CHECK(ccw.width == 2);
  CHECK(ccw.height == 3);
  CHECK(ccw.pixels == std::vector<uint8_t>{3, 6, 2, 5, 1, 4});

  const Image half = dsn::data::rotate_image(image, 180);
  CHECK(half.width == 3);
  CHECK(half.height == 2);
  CHECK(half.pixels == std::vector<uint8_t>{6, 5, 4, 3, 2, 1});

  // Counter-clockwise 270 is clockwise 90: the left column becomes the top row, reversed.
  const Image cw = dsn::data::rotate_image(image, 270);
  CHECK(cw.width == 2);
  CHECK(cw.height == 3);
  CHECK(cw.pixels == std::vector<uint8_t>{4, 1, 5, 2, 6, 3});
  CHECK(dsn::data::rotate_image(image, -90).pixels == cw.pixels);
  CHECK(dsn::data::rotate_image(image, 360).pixels == image.pixels);

  CHECK_THROWS_AS(dsn::data::rotate_image(image, 45), dsn::Error);
}

TEST_CASE("rotate_image keeps RGB triples together") {
  Image image = make_image(2, 1, 3);
  image.pixels = {10, 20, 30, 40, 50, 60};
  const Image ccw = dsn::data::rotate_image(image, 90);
  REQUIRE(ccw.width == 1);
  REQUIRE(ccw.height == 2);
  CHECK(ccw.pixels == std::vector<uint8_t>{40, 50, 60, 10, 20, 30});
}

TEST_CASE("crop_image copies the region") {
  Image image = make_image(4, 3, 1);
  for (std::size_t i = 0; i < image.pixels.size(); ++i) {
    image.pixels[i] = static_cast<uint8_t>(i);
  }
  const Image cropped = dsn::data::crop_image(image, 1, 1, 2, 2);
  CHECK(cropped.width == 2);
  CHECK(cropped.height == 2);
  CHECK(cropped.pixels == std::vector<uint8_t>{5, 6, 9, 10});
  CHECK_THROWS_AS(dsn::data::crop_image(image, 3, 0, 2, 1), dsn::Error);
  CHECK_THROWS_AS(dsn::data::crop_image(image, 0, 0, 0, 1), dsn::Error);
}

TEST_CASE("media file extensions ignore case") {
  CHECK(dsn::data::is_image_file("a/b/face.JPG"));
  CHECK(dsn::data::is_image_file("face.jpeg"));
  CHECK(dsn::data::is_image_file("face.png"));
  CHECK_FALSE(dsn::data::is_image_file("clip.avi"));
  CHECK_FALSE(dsn::data::is_image_file("README"));
  CHECK(dsn::data::is_video_file("clip.AVI"));
  CHECK(dsn::data::is_video_file("clip.mp4"));
  CHECK(dsn::data::is_video_file("clip.mkv"));
  CHECK_FALSE(dsn::data::is_video_file("clip.txt"));
  CHECK_FALSE(dsn::data::is_video_file("png"));
}

TEST_CASE("list_media returns sorted media files") {
  dsn::test::TempDir folder;
  for (const char* name : {"b.png", "a.avi", "c.JPG", "notes.txt", ".hidden.png", "d.mkv"}) {
    dsn::test::write_bytes(folder / name, "x");
  }
  std::filesystem::create_directory(folder / "sub.mp4");  // a folder, not a file
  const auto files = dsn::data::list_media(folder.path());
  REQUIRE(files.size() == 4);
  CHECK(files[0].filename() == "a.avi");
  CHECK(files[1].filename() == "b.png");
  CHECK(files[2].filename() == "c.JPG");
  CHECK(files[3].filename() == "d.mkv");

  CHECK_ERROR_MENTIONS(dsn::data::list_media(folder / "missing"), "not a directory");
}
