// The dsn command line: `dsn predict` and `dsn inspect`.
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "engine/error.h"
#include "engine/log.h"
#include "nets/config.h"
#include "nets/emotion_net.h"
#include "nets/summary.h"
#include "tools/predict.h"

int main(int argc, char** argv) {
  dsn::log::init_from_env();
  CLI::App app{"dsn: deeply supervised CNNs for video-based facial emotion recognition"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "dsn " DSN_VERSION);
  app.footer(
      "Exit status: 0 success; 1 an input failed (its clip.json holds the error, other inputs "
      "are still processed); 2 invalid arguments, config, weights or files; 3 unexpected "
      "error.\nEnvironment: DSN_LOG_LEVEL=trace|debug|info|warn|error sets the log level "
      "(default info).");

  dsn::app::PredictOptions predict;
  std::string device = "cpu";
  CLI::App* predict_command = app.add_subcommand(
      "predict",
      "Detect, align and score the faces of a video, an image or a folder; write a "
      "per-frame CSV, a clip JSON and the aligned crops");
  predict_command->add_option("input", predict.input, "Video file, image file, or folder of them")
      ->required();
  predict_command
      ->add_option("--config", predict.config,
                   "Network config (YAML), for example "
                   "configs/dsn_vgg_face.yaml")
      ->required()
      ->check(CLI::ExistingFile);
  predict_command->add_option("--weights", predict.weights,
                              "Trained weights (safetensors). Without it the network is "
                              "untrained and its scores are not predictions");
  predict_command->add_option("--out", predict.out_dir,
                              "Output folder; one subfolder per clip (default: out)");
  predict_command->add_option("--landmarks", predict.landmark_model,
                              "dlib 68-landmark model (default: "
                              "/usr/share/dlib/shape_predictor_68_face_landmarks.dat)");
  predict_command
      ->add_option("--blur-threshold", predict.blur_threshold,
                   "Variance of the Laplacian (grey levels squared) below which a "
                   "face counts as blurred and is left out of the clip score. "
                   "Scored on the detector box at its original size, so large faces "
                   "score lower: lower the threshold for close-up photos")
      ->capture_default_str();
  predict_command->add_option("--batch", predict.batch_size, "Faces per forward pass")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  bool no_crops = false;
  predict_command->add_flag("--no-crops", no_crops, "Do not write the aligned face crops");

  std::filesystem::path inspect_config;
  CLI::App* inspect_command = app.add_subcommand(
      "inspect", "Print the layer table of a network: output shapes, parameters, MACs");
  inspect_command->add_option("config", inspect_config, "Network config (YAML)")
      ->required()
      ->check(CLI::ExistingFile);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // Help and version requests exit 0; every invalid argument exits 2.
    return app.exit(error) == 0 ? 0 : 2;
  }

  try {
    if (predict_command->parsed()) {
      predict.progress = isatty(STDOUT_FILENO) != 0;
      predict.save_crops = !no_crops;
      return dsn::app::run_predict(predict);
    }
    if (inspect_command->parsed()) {
      const dsn::nets::NetConfig config = dsn::nets::load_config(inspect_config);
      std::unique_ptr<dsn::nets::EmotionNet> net = dsn::nets::make_net(config);
      std::fputs(dsn::nets::format_table(dsn::nets::layer_table(*net)).c_str(), stdout);
      return 0;
    }
  } catch (const dsn::Error& error) {
    spdlog::error("{}", error.what());
    return 2;
  } catch (const std::filesystem::filesystem_error& error) {
    spdlog::error("file system error: {}", error.what());
    return 2;
  } catch (const std::exception& error) {
    spdlog::error("unexpected error: {}", error.what());
    return 3;
  }
  return 0;
}
