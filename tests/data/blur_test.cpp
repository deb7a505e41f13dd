#include <doctest/doctest.h>

#include <cstdint>

#include "data/blur.h"
#include "engine/error.h"
#include "tests/data/support.h"

using dsn::data::Image;
using dsn::data::laplacian_variance;
using dsn::data::make_image;

TEST_CASE("laplacian_variance matches hand value on grey") {
  // 4x3 grey image, all zero except two interior pixels:
  //   0  0  0 0
  //   0 10 20 0
  //   0  0  0 0
  // Interior Laplacians: at (1,1) 0+20+0+0-4*10 = -20, at (2,1) 10+0+0+0-4*20 = -70.
  // Mean -45, deviations +25 and -25, population variance 625.
  Image image = make_image(4, 3, 1);
  image.at(1, 1)[0] = 10;
  image.at(2, 1)[0] = 20;
  CHECK(laplacian_variance(image) == doctest::Approx(625.0).epsilon(1e-9));
}

TEST_CASE("laplacian_variance uses Rec. 601 luma") {
  // Same layout in RGB: (1,1) is pure red 100 -> grey 29.9, (2,1) is pure blue 100 -> 11.4.
  // Laplacians: 11.4 - 4*29.9 = -108.2 and 29.9 - 4*11.4 = -15.7. Mean -61.95, deviations
  // +-46.25, variance 46.25^2 = 2139.0625.
  Image image = make_image(4, 3, 3);
  image.at(1, 1)[0] = 100;
  image.at(2, 1)[2] = 100;
  CHECK(laplacian_variance(image) == doctest::Approx(2139.0625).epsilon(1e-9));
}

TEST_CASE("laplacian_variance of a flat image is zero") {
  Image image = make_image(8, 5, 3);
  std::fill(image.pixels.begin(), image.pixels.end(), uint8_t{77});
  CHECK(laplacian_variance(image) == 0.0);
}

TEST_CASE("laplacian_variance drops after box blur") {
  // Deterministic pseudo-random texture from a linear congruential generator.
  Image image = make_image(64, 48, 3);
  uint32_t state = 12345;
  for (uint8_t& value : image.pixels) {
    state = state * 1664525u + 1013904223u;
    value = static_cast<uint8_t>(state >> 24);
  }
  const double sharp = laplacian_variance(image);
  const double blurred = laplacian_variance(dsn::test::box_blur_3x3(image));
  CHECK(sharp > 0.0);
  CHECK(blurred < sharp);
  CHECK(blurred < 0.25 * sharp);
}

TEST_CASE("laplacian_variance drops after box blur on a photo") {
  const Image photo = dsn::data::load_image(dsn::test::demo_media("anne_helene.jpg"));
  const double sharp = laplacian_variance(photo);
  const double blurred = laplacian_variance(dsn::test::box_blur_3x3(photo));
  CHECK(blurred < sharp);
}

TEST_CASE("laplacian_variance rejects images below 3x3") {
  CHECK_ERROR_MENTIONS(laplacian_variance(make_image(2, 5, 1)), "too small");
  CHECK_ERROR_MENTIONS(laplacian_variance(make_image(5, 2, 3)), "too small");
  CHECK(laplacian_variance(make_image(3, 3, 1)) == 0.0);
}

TEST_CASE("BlurFilter compares against threshold") {
  const dsn::data::BlurFilter filter;
  CHECK(filter.is_blurred(filter.threshold - 1.0));
  CHECK_FALSE(filter.is_blurred(filter.threshold));
  CHECK_FALSE(filter.is_blurred(filter.threshold + 1.0));
  const dsn::data::BlurFilter custom{10.0};
  CHECK(custom.is_blurred(9.9));
  CHECK_FALSE(custom.is_blurred(10.0));
}
