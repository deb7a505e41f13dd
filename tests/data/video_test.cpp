#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "data/video.h"
#include "engine/error.h"
#include "tests/data/support.h"

using dsn::data::Image;
using dsn::data::VideoFrame;
using dsn::data::VideoReader;

namespace {

std::vector<VideoFrame> read_all(VideoReader& reader) {
  std::vector<VideoFrame> frames;
  VideoFrame frame;
  while (reader.read(frame)) {
    frames.push_back(frame);
  }
  return frames;
}

bool any_warning_mentions(const std::vector<std::string>& warnings, const std::string& text) {
  return std::any_of(warnings.begin(), warnings.end(), [&](const std::string& warning) {
    return warning.find(text) != std::string::npos;
  });
}

// Colour classes of the orientation fixtures, with room for H.264 and chroma subsampling.
bool is_red(const uint8_t* pixel) {
  return pixel[0] > 150 && pixel[1] < 90 && pixel[2] < 90;
}
bool is_green(const uint8_t* pixel) {
  return pixel[0] < 90 && pixel[1] > 150 && pixel[2] < 90;
}
bool is_black(const uint8_t* pixel) {
  return pixel[0] < 50 && pixel[1] < 50 && pixel[2] < 50;
}

struct CornerExpectation {
  int x;
  int y;
  char colour;  // 'r' red, 'g' green, 'k' black
};

void check_corners(const Image& image, const std::vector<CornerExpectation>& corners) {
  for (const CornerExpectation& corner : corners) {
    const uint8_t* pixel = image.at(corner.x, corner.y);
    CAPTURE(corner.x);
    CAPTURE(corner.y);
    CAPTURE(corner.colour);
    CAPTURE(int{pixel[0]});
    CAPTURE(int{pixel[1]});
    CAPTURE(int{pixel[2]});
    if (corner.colour == 'r') {
      CHECK(is_red(pixel));
    } else if (corner.colour == 'g') {
      CHECK(is_green(pixel));
    } else {
      CHECK(is_black(pixel));
    }
  }
}

}  // namespace

TEST_CASE("VideoReader reads every frame of the demo clip") {
  dsn::test::LogCapture log;
  VideoReader reader(dsn::test::demo_media("movie.avi"));
  const dsn::data::VideoInfo& info = reader.info();
  // ffprobe -show_streams movie.avi: mjpeg 160x120, time base 33333/500000, 68 frames,
  // avg_frame_rate 500000/33333, duration 4.533288 s.
  CHECK(info.codec_name == "mjpeg");
  CHECK(info.width == 160);
  CHECK(info.height == 120);
  CHECK(info.rotation_degrees == 0);
  CHECK(info.frame_rate == doctest::Approx(500000.0 / 33333.0));
  REQUIRE(info.frame_count.has_value());
  CHECK(*info.frame_count == 68);
  REQUIRE(info.duration_s.has_value());
  CHECK(*info.duration_s == doctest::Approx(4.533288).epsilon(1e-6));

  const std::vector<VideoFrame> frames = read_all(reader);
  // ffprobe -show_frames -select_streams v: 68 frames, frame k at pts k in time base
  // 33333/500000, so at k * 0.066666 s, and the last at 4.466622 s. Every frame is an I frame.
  REQUIRE(frames.size() == 68);
  for (std::size_t k = 0; k < frames.size(); ++k) {
    const VideoFrame& frame = frames[k];
    CAPTURE(k);
    CHECK(frame.index == static_cast<int64_t>(k));
    CHECK(frame.image.width == 160);
    CHECK(frame.image.height == 120);
    CHECK(frame.image.channels == 3);
    CHECK(frame.image.pixels.size() == 160u * 120u * 3u);
    CHECK(frame.key_frame);
    CHECK(frame.timestamp_s == doctest::Approx(static_cast<double>(k) * 0.066666).epsilon(1e-9));
    if (k > 0) {
      CHECK(frame.timestamp_s > frames[k - 1].timestamp_s);
    }
  }
  CHECK(frames.front().timestamp_s == 0.0);
  CHECK(frames.back().timestamp_s == doctest::Approx(4.466622).epsilon(1e-9));
  CHECK_FALSE(reader.truncated());
  CHECK(reader.skipped_packets() == 0);
  CHECK(log.warnings().empty());

  // A finished reader keeps returning false.
  VideoFrame after_end;
  CHECK_FALSE(reader.read(after_end));
}

TEST_CASE("VideoReader frames are real pictures") {
  // The clip shows a person in a lit room: a decoded frame is neither flat nor black.
  VideoReader reader(dsn::test::demo_media("movie.avi"));
  VideoFrame frame;
  REQUIRE(reader.read(frame));
  const auto [low, high] =
      std::minmax_element(frame.image.pixels.begin(), frame.image.pixels.end());
  CHECK(*high - *low > 100);
  double sum = 0;
  for (uint8_t value : frame.image.pixels) {
    sum += value;
  }
  CHECK(sum / static_cast<double>(frame.image.pixels.size()) > 30.0);
}

TEST_CASE("VideoReader pins variable frame rate timestamps") {
  dsn::test::LogCapture log;
  VideoReader reader(dsn::test::fixture("vfr.mkv"));
  CHECK(reader.info().codec_name == "h264");
  CHECK(reader.info().width == 32);
  CHECK(reader.info().height == 16);
  CHECK_FALSE(reader.info().frame_count.has_value());  // Matroska stores no frame count

  const std::vector<VideoFrame> frames = read_all(reader);
  // ffprobe -show_frames vfr.mkv: best_effort_timestamp_time 0.5, 0.55, 0.7, 0.95, 1.3,
  // 1.75, 2.3, 2.95 s with stream start_time 0.5 s, so relative to the start:
  const std::vector<double> expected = {0.0, 0.05, 0.2, 0.45, 0.8, 1.25, 1.8, 2.45};
  REQUIRE(frames.size() == expected.size());
  for (std::size_t k = 0; k < frames.size(); ++k) {
    CAPTURE(k);
    CHECK(frames[k].index == static_cast<int64_t>(k));
    CHECK(frames[k].timestamp_s == doctest::Approx(expected[k]).epsilon(1e-9));
    CHECK(frames[k].image.width == 32);
    CHECK(frames[k].image.height == 16);
  }
  // ffprobe: frame 0 is the only key frame.
  CHECK(frames[0].key_frame);
  CHECK_FALSE(frames[1].key_frame);
  CHECK_FALSE(reader.truncated());
  CHECK(log.warnings().empty());
}

TEST_CASE("VideoReader frame counts match ffprobe") {
  // ffprobe -count_frames -show_entries stream=nb_read_frames on each fixture. The H.264
  // files hold frames back for reordering, so a reader that does not drain the decoder at
  // the end of the file loses the last ones.
  const std::vector<std::pair<const char*, std::size_t>> cases = {{"rotate90.mp4", 4},
                                                                  {"rotate180.mp4", 4},
                                                                  {"rotate270.mp4", 4},
                                                                  {"rotate90-sei.mp4", 4},
                                                                  {"vfr.mkv", 8}};
  for (const auto& [name, expected] : cases) {
    CAPTURE(name);
    VideoReader reader(dsn::test::fixture(name));
    CHECK(read_all(reader).size() == expected);
  }
}

TEST_CASE("VideoReader applies stream rotation") {
  // The fixtures are a 32x16 picture with a red block in the top-left corner and a green
  // block in the bottom-left corner, stored with a display matrix. The expected layouts are
  // those `ffmpeg -i <fixture> out.png` (ffmpeg 5.1, autorotate on) writes.
  struct Case {
    const char* name;
    int rotation;
    int width;
    int height;
    std::vector<CornerExpectation> corners;
  };
  const std::vector<Case> cases = {
      // 90 counter-clockwise: red bottom-left, green bottom-right.
      {"rotate90.mp4", 90, 16, 32, {{2, 28, 'r'}, {13, 28, 'g'}, {2, 3, 'k'}, {13, 3, 'k'}}},
      // 180: red bottom-right, green top-right.
      {"rotate180.mp4", 180, 32, 16, {{29, 13, 'r'}, {29, 2, 'g'}, {2, 2, 'k'}, {2, 13, 'k'}}},
      // 270 counter-clockwise (90 clockwise): red top-right, green top-left.
      {"rotate270.mp4", 270, 16, 32, {{13, 3, 'r'}, {2, 3, 'g'}, {2, 28, 'k'}, {13, 28, 'k'}}},
  };
  for (const Case& test : cases) {
    CAPTURE(test.name);
    VideoReader reader(dsn::test::fixture(test.name));
    CHECK(reader.info().rotation_degrees == test.rotation);
    CHECK(reader.info().width == test.width);
    CHECK(reader.info().height == test.height);
    const std::vector<VideoFrame> frames = read_all(reader);
    REQUIRE(frames.size() == 4);
    for (const VideoFrame& frame : frames) {
      REQUIRE(frame.image.width == test.width);
      REQUIRE(frame.image.height == test.height);
      check_corners(frame.image, test.corners);
    }
  }
}

TEST_CASE("VideoReader applies frame rotation") {
  // rotate90-sei.mp4 has no display matrix in the container. Its first access unit (the only
  // key frame) carries an H.264 display orientation SEI message, 90 degrees counter-clockwise,
  // which must stay in effect for the three frames after it.
  VideoReader reader(dsn::test::fixture("rotate90-sei.mp4"));
  CHECK(reader.info().rotation_degrees == 0);
  CHECK(reader.info().width == 32);
  CHECK(reader.info().height == 16);
  const std::vector<VideoFrame> frames = read_all(reader);
  REQUIRE(frames.size() == 4);
  for (const VideoFrame& frame : frames) {
    REQUIRE(frame.image.width == 16);
    REQUIRE(frame.image.height == 32);
    check_corners(frame.image, {{2, 28, 'r'}, {13, 28, 'g'}, {2, 3, 'k'}, {13, 3, 'k'}});
  }
}

TEST_CASE("VideoReader reports a missing file") {
  dsn::test::TempDir folder;
  const auto missing = folder / "missing.avi";
  CHECK_ERROR_MENTIONS(VideoReader{missing}, missing.string());
  CHECK_ERROR_MENTIONS(VideoReader{missing}, "not found");
  CHECK_ERROR_MENTIONS(VideoReader{folder.path()}, "directory");
}

TEST_CASE("VideoReader rejects a text file named .avi") {
  dsn::test::TempDir folder;
  const auto fake = folder / "fake.avi";
  std::string text;
  for (int line = 0; line < 50; ++line) {
    text += "This is a plain text file that only pretends to be a video.\n";
  }
  dsn::test::write_bytes(fake, text);
  CHECK_ERROR_MENTIONS(VideoReader{fake}, fake.string());
  CHECK_ERROR_MENTIONS(VideoReader{fake}, "cannot open");
}

TEST_CASE("VideoReader rejects audio without video") {
  // A 0.1 s mono 8-bit WAV file: RIFF header, "fmt " chunk, "data" chunk.
  const auto little_endian = [](uint32_t value, int bytes) {
    std::string out;
    for (int i = 0; i < bytes; ++i) {
      out += static_cast<char>((value >> (8 * i)) & 0xff);
    }
    return out;
  };
  const uint32_t sample_rate = 8000;
  const std::string samples(800, static_cast<char>(128));
  std::string wav = "RIFF" + little_endian(36 + 800, 4) + "WAVE";
  wav += "fmt " + little_endian(16, 4) + little_endian(1, 2) + little_endian(1, 2) +
         little_endian(sample_rate, 4) + little_endian(sample_rate, 4) + little_endian(1, 2) +
         little_endian(8, 2);
  wav += "data" + little_endian(800, 4) + samples;

  dsn::test::TempDir folder;
  const auto audio = folder / "tone.wav";
  dsn::test::write_bytes(audio, wav);
  CHECK_ERROR_MENTIONS(VideoReader{audio}, audio.string());
  CHECK_ERROR_MENTIONS(VideoReader{audio}, "no video stream");
}

TEST_CASE("VideoReader returns intact frames of a truncated file") {
  const auto original = dsn::test::demo_media("movie.avi");
  dsn::test::TempDir folder;
  const auto truncated = folder / "truncated.avi";
  {
    std::ifstream in(original, std::ios::binary);
    const auto size = static_cast<std::size_t>(std::filesystem::file_size(original));
    std::string head(size * 2 / 5, '\0');  // first 40 % of the bytes
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    REQUIRE(in.good());
    dsn::test::write_bytes(truncated, head);
  }

  std::vector<VideoFrame> full;
  {
    VideoReader reader(original);
    full = read_all(reader);
  }

  dsn::test::LogCapture log;
  VideoReader reader(truncated);
  const std::vector<VideoFrame> frames = read_all(reader);
  // The cut falls inside video packet 27, for which ffprobe reports "Packet corrupt (stream =
  // 0, dts = 27)". The reader drops that packet and returns frames 0 to 26.
  CHECK(frames.size() == 27);
  CHECK(reader.truncated());
  const std::vector<std::string> warnings = log.warnings();
  CHECK_MESSAGE(any_warning_mentions(warnings, truncated.string()),
                "no warning names " << truncated.string());
  CHECK(any_warning_mentions(warnings, "truncated"));

  // What was returned is identical to the start of the intact file.
  REQUIRE(frames.size() <= full.size());
  for (std::size_t k = 0; k < frames.size(); ++k) {
    CAPTURE(k);
    CHECK(frames[k].timestamp_s == full[k].timestamp_s);
    CHECK(frames[k].image.pixels == full[k].image.pixels);
  }
}

TEST_CASE("VideoReader opens names with a colon") {
  // FFmpeg would read "take:2" as a protocol name without the reader's "file:" prefix.
  dsn::test::TempDir folder;
  const auto copy = folder / "take:2.mkv";
  std::filesystem::copy_file(dsn::test::fixture("vfr.mkv"), copy);
  VideoReader reader(copy);
  CHECK(read_all(reader).size() == 8);
}
