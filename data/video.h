// Frame-by-frame video decoding with libavformat, libavcodec and libswscale. Frames come out
// upright (display-matrix rotation applied) as RGB images, with their presentation timestamps.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "data/image.h"

namespace dsn::data {

struct VideoFrame {
  Image image;             // (H, W, 3) RGB, upright
  int64_t index = 0;       // 0 for the first decoded frame, then 1, 2, ...
  double timestamp_s = 0;  // presentation time relative to the stream start time
  bool key_frame = false;
};

// Stream properties read when the file is opened.
struct VideoInfo {
  int width = 0;   // after rotation
  int height = 0;  // after rotation
  // Counter-clockwise angle (0, 90, 180 or 270) by which the reader turns each decoded image
  // to make it upright: av_display_rotation_get() of the stream display matrix, rounded to a
  // multiple of 90 and taken modulo 360. A frame display matrix (from a display orientation
  // SEI message) overrides it from that frame until the next key frame without one, so those
  // frames may differ in size from width x height.
  int rotation_degrees = 0;
  double frame_rate = 0;  // average rate from the container (an estimate), 0 when unknown
  std::optional<double> duration_s;  // from the stream, else from the container
  // Frame count stored in the container header, when it has one. It can differ from the
  // frames read() returns: AVI counts the empty chunks that stand for dropped frames.
  std::optional<int64_t> frame_count;
  std::string codec_name;  // FFmpeg decoder name, such as "h264" or "mjpeg"
};

// Decodes the best video stream of a file. Construct it once per file and call read() until it
// returns false. It is not thread-safe, so use one reader per thread.
//
// Truncated files do not throw. Reading stops when the file ends inside a packet (the demuxer
// marks that packet corrupt and the next read hits end of file) or when a read fails with an
// error other than end of file. The decoder is then drained, so every frame decoded from the
// intact packets before that point is still returned. After that, read() returns false,
// truncated() returns true, and a warning naming the file and the index of the last frame is
// logged through spdlog.
// A corrupt or undecodable packet in the middle of the file is skipped with a warning and
// counted by skipped_packets(), because decoders resynchronise at the next key frame.
// NOTE: a file cut exactly at a packet boundary reads as a shorter intact file and is not
// reported as truncated.
class VideoReader {
 public:
  // Opens the file and its decoder. Throws dsn::Error naming the file and the reason when the
  // file is missing, is not a media file FFmpeg recognises, has no video stream, or uses a
  // codec this FFmpeg build cannot decode.
  explicit VideoReader(const std::filesystem::path& path);
  ~VideoReader();
  VideoReader(VideoReader&&) noexcept;
  VideoReader& operator=(VideoReader&&) noexcept;
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  // Decodes the next frame in presentation order into `frame`. Returns false at the end of
  // the stream (or at the damage point of a truncated file).
  bool read(VideoFrame& frame);

  const VideoInfo& info() const;
  const std::filesystem::path& path() const;
  // True once read() has stopped early because the file is truncated (see the class comment).
  bool truncated() const;
  // Number of video packets skipped because they were corrupt or failed to decode.
  int64_t skipped_packets() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace dsn::data
