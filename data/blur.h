// Sharpness score of an image: the variance of its Laplacian. A blurred image has weak edges,
// so its Laplacian response is small everywhere and the variance is low.
#pragma once

#include "data/image.h"

namespace dsn::data {

// Returns the population variance of the 3x3 Laplacian [0 1 0; 1 -4 1; 0 1 0] applied to the
// grey image, over the interior pixels (the one-pixel border is skipped). RGB input is
// converted to grey with the Rec. 601 luma weights 0.299 R + 0.587 G + 0.114 B, kept in double
// precision (no rounding to 8 bits). The score is in squared grey levels and depends on the
// scale: the same scene scores lower at a higher resolution, because each edge spans more
// pixels.
// Throws dsn::Error for an image smaller than 3x3.
double laplacian_variance(const Image& image);

// Marks faces whose Face::blur score (Laplacian variance of the face box at its input
// resolution) is below a threshold as too blurred to use.
struct BlurFilter {
  // Measured with FaceAligner defaults on the kphotoalbum demo media: sharp faces 53 to
  // 270 px wide (movie.avi, anne_helene.jpg, jesper_2.jpg) score 360 to 930, and the same
  // images after a 3x3 box blur score 33 to 93. tests/data/face_test.cpp checks that this
  // threshold separates the two groups. NOTE: the score falls as faces grow, because a sharp
  // edge spans more pixels. The 464 px close-up jesper.jpg scores 48 and is rejected.
  double threshold = 100.0;

  bool is_blurred(double score) const { return score < threshold; }
};

}  // namespace dsn::data
