#include "data/blur.h"

#include <vector>

#include "engine/error.h"

namespace dsn::data {

double laplacian_variance(const Image& image) {
  check_image(image, "laplacian_variance");
  DSN_CHECK(image.width >= 3 && image.height >= 3,
            "laplacian_variance: image {}x{} is too small: the 3x3 Laplacian needs at least 3x3",
            image.width, image.height);

  const int width = image.width;
  const int height = image.height;
  std::vector<double> grey(static_cast<std::size_t>(width) * height);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const uint8_t* pixel = image.at(x, y);
      grey[static_cast<std::size_t>(y) * width + x] =
          image.channels == 1 ? pixel[0] : 0.299 * pixel[0] + 0.587 * pixel[1] + 0.114 * pixel[2];
    }
  }

  // Two passes (mean, then squared deviations) keep the variance accurate for large means.
  const auto laplacian = [&](int x, int y) {
    const double* row = grey.data() + static_cast<std::size_t>(y) * width;
    return row[x - 1] + row[x + 1] + row[x - width] + row[x + width] - 4.0 * row[x];
  };
  const double count = static_cast<double>(width - 2) * (height - 2);
  double sum = 0.0;
  for (int y = 1; y < height - 1; ++y) {
    for (int x = 1; x < width - 1; ++x) {
      sum += laplacian(x, y);
    }
  }
  const double mean = sum / count;
  double squared_deviations = 0.0;
  for (int y = 1; y < height - 1; ++y) {
    for (int x = 1; x < width - 1; ++x) {
      const double deviation = laplacian(x, y) - mean;
      squared_deviations += deviation * deviation;
    }
  }
  return squared_deviations / count;
}

}  // namespace dsn::data
