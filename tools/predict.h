// `dsn predict`: video, image or folder in; per-frame CSV, per-clip JSON and aligned face crops
// out.
#pragma once

#include <filesystem>
#include <string>

#include "data/blur.h"

namespace dsn::app {

struct PredictOptions {
  std::filesystem::path input;    // a video, an image, or a folder of them
  std::filesystem::path config;   // network YAML
  std::filesystem::path weights;  // safetensors; empty means untrained, seeded initialisation
  std::filesystem::path out_dir = "out";
  std::filesystem::path landmark_model;  // empty means dlib's default from libdlib-data
  // Variance of the Laplacian of the aligned crop below which a face is blurred and left out of
  // the clip score.
  double blur_threshold = data::BlurFilter{}.threshold;
  int batch_size = 8;             // faces per network forward pass
  bool save_crops = true;
  bool progress = false;          // draw a progress bar on stdout
};

// Runs the whole prediction and prints one summary line per clip. Returns the process exit
// status: 0 when every input was processed, 1 when any input failed (its error is logged and
// recorded in its clip JSON; the other inputs are still processed).
int run_predict(const PredictOptions& options);

}  // namespace dsn::app
