#include "data/video.h"

#include <cmath>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>

#include <spdlog/spdlog.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include "engine/error.h"

namespace dsn::data {
namespace {

struct FormatContextDeleter {
  void operator()(AVFormatContext* context) const { avformat_close_input(&context); }
};
struct CodecContextDeleter {
  void operator()(AVCodecContext* context) const { avcodec_free_context(&context); }
};
struct FrameDeleter {
  void operator()(AVFrame* frame) const { av_frame_free(&frame); }
};
struct PacketDeleter {
  void operator()(AVPacket* packet) const { av_packet_free(&packet); }
};
struct DictionaryDeleter {
  void operator()(AVDictionary** dictionary) const { av_dict_free(dictionary); }
};
struct ScaleContextDeleter {
  void operator()(SwsContext* context) const { sws_freeContext(context); }
};

using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using ScaleContextPtr = std::unique_ptr<SwsContext, ScaleContextDeleter>;

std::string error_string(int code) {
  char buffer[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buffer, sizeof(buffer));
  return buffer;
}

// Forwards FFmpeg's own log lines to spdlog at debug level. The reader reports every failure
// it acts on as an exception or as its own warning. FFmpeg's lines repeat those details, and
// without this callback they would go straight to stderr, once per damaged packet.
void forward_ffmpeg_log(void* context, int level, const char* format, va_list arguments) {
  if (level > AV_LOG_WARNING || !spdlog::should_log(spdlog::level::debug)) {
    return;
  }
  static thread_local int print_prefix = 1;
  char line[1024] = {};
  av_log_format_line2(context, level, format, arguments, line, sizeof(line), &print_prefix);
  std::string_view text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  if (!text.empty()) {
    spdlog::debug("ffmpeg: {}", text);
  }
}

void install_ffmpeg_log_forwarding() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(&forward_ffmpeg_log); });
}

// Converts a display matrix to the counter-clockwise quarter-turn angle in [0, 360).
int rotation_from_display_matrix(const int32_t* matrix, const std::string& file) {
  const double angle = av_display_rotation_get(matrix);
  if (std::isnan(angle)) {
    return 0;
  }
  const long rounded = std::lround(angle / 90.0) * 90;
  if (std::abs(angle - static_cast<double>(rounded)) > 1.0) {
    spdlog::warn("{}: display rotation {:.1f} degrees is not a multiple of 90; using {}", file,
                 angle, rounded);
  }
  return static_cast<int>(((rounded % 360) + 360) % 360);
}

const int32_t* stream_display_matrix(const AVStream* stream) {
  constexpr std::size_t kMatrixBytes = 9 * sizeof(int32_t);
#if LIBAVFORMAT_VERSION_MAJOR < 61
  std::size_t size = 0;
  const uint8_t* data = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &size);
  return data != nullptr && size >= kMatrixBytes ? reinterpret_cast<const int32_t*>(data) : nullptr;
#else
  // NOTE: FFmpeg 7 (libavformat 61) keeps stream side data in the codec parameters only.
  // Only the branch above (FFmpeg 5.1, Debian 12) has been compiled and tested.
  const AVCodecParameters* parameters = stream->codecpar;
  const AVPacketSideData* side_data = av_packet_side_data_get(
      parameters->coded_side_data, parameters->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
  return side_data != nullptr && side_data->size >= kMatrixBytes
             ? reinterpret_cast<const int32_t*>(side_data->data)
             : nullptr;
#endif
}

bool is_key_frame(const AVFrame* frame) {
#ifdef AV_FRAME_FLAG_KEY
  return (frame->flags & AV_FRAME_FLAG_KEY) != 0;
#else
  return frame->key_frame != 0;
#endif
}

// Damaged files can have thousands of bad packets, so only the first ones are logged singly.
constexpr int64_t kMaxSkipWarnings = 5;

// Maps the deprecated full-range "J" formats to their plain equivalents, so that swscale gets
// the range from sws_setColorspaceDetails instead of guessing it (and warning).
AVPixelFormat plain_pixel_format(AVPixelFormat format, bool& full_range) {
  switch (format) {
    case AV_PIX_FMT_YUVJ420P:
      full_range = true;
      return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
      full_range = true;
      return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
      full_range = true;
      return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
      full_range = true;
      return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P:
      full_range = true;
      return AV_PIX_FMT_YUV411P;
    default:
      return format;
  }
}

}  // namespace

struct VideoReader::State {
  std::filesystem::path path;
  std::string name;  // path as text, for messages
  VideoInfo info;

  FormatContextPtr format;
  CodecContextPtr codec;
  AVStream* stream = nullptr;  // owned by `format`
  PacketPtr packet;
  FramePtr decoded;
  FramePtr rgb;

  // swscale context and the source properties it was made for.
  ScaleContextPtr scaler;
  int scaler_width = 0;
  int scaler_height = 0;
  int scaler_format = AV_PIX_FMT_NONE;
  int scaler_range = AVCOL_RANGE_UNSPECIFIED;
  int scaler_colorspace = AVCOL_SPC_UNSPECIFIED;

  std::optional<int> frame_rotation;    // from the last frame display matrix still in effect
  int64_t origin_pts = AV_NOPTS_VALUE;  // timestamp 0 in stream time base units
  double previous_timestamp_s = -1.0;
  int64_t frames_returned = 0;
  int64_t video_packets_read = 0;
  int64_t skipped_packets = 0;
  bool last_packet_corrupt = false;

  bool draining = false;
  bool finished = false;
  bool truncated = false;
  std::string truncation_reason;

  void open();
  void read_stream_info();
  void feed_decoder();
  void start_draining();
  void skip_packet(const std::string& reason);
  void finish();
  void convert(VideoFrame& frame);
  void update_scaler(const AVFrame* source);
};

void VideoReader::State::open() {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    fail(fmt::format("video file not found: {} (check the path)", name));
  }
  if (std::filesystem::is_directory(path, error)) {
    fail(fmt::format("cannot open {} as a video: it is a directory", name));
  }
  install_ffmpeg_log_forwarding();

  // The "file:" prefix keeps a name such as "take:2.avi" from being parsed as a protocol, and
  // the whitelist stops a playlist-type file from making FFmpeg open network URLs.
  const std::string url = "file:" + name;
  AVDictionary* raw_options = nullptr;
  av_dict_set(&raw_options, "protocol_whitelist", "file", 0);
  const std::unique_ptr<AVDictionary*, DictionaryDeleter> open_options(&raw_options);
  AVFormatContext* raw_format = nullptr;
  int result = avformat_open_input(&raw_format, url.c_str(), nullptr, &raw_options);
  if (result < 0) {
    fail(
        fmt::format("cannot open {} as a video: {} (FFmpeg does not recognise it as a media "
                    "file; is the file damaged or not a video?)",
                    name, error_string(result)));
  }
  format.reset(raw_format);
  result = avformat_find_stream_info(format.get(), nullptr);
  if (result < 0) {
    fail(fmt::format("cannot read the stream information of {}: {}", name, error_string(result)));
  }

  const AVCodec* decoder = nullptr;
  result = av_find_best_stream(format.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
  if (result == AVERROR_STREAM_NOT_FOUND) {
    fail(fmt::format("{} contains no video stream", name));
  }
  if (result == AVERROR_DECODER_NOT_FOUND) {
    std::string codec_name = "unknown";
    for (unsigned i = 0; i < format->nb_streams; ++i) {
      if (format->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
        codec_name = avcodec_get_name(format->streams[i]->codecpar->codec_id);
        break;
      }
    }
    fail(
        fmt::format("{}: video codec '{}' is not supported: this FFmpeg build has no decoder "
                    "for it (convert the file, for example to H.264)",
                    name, codec_name));
  }
  DSN_CHECK(result >= 0, "cannot select a video stream in {}: {}", name, error_string(result));
  stream = format->streams[result];

  codec.reset(avcodec_alloc_context3(decoder));
  DSN_CHECK(codec != nullptr, "out of memory allocating the decoder for {}", name);
  result = avcodec_parameters_to_context(codec.get(), stream->codecpar);
  DSN_CHECK(result >= 0, "cannot configure the {} decoder for {}: {}", decoder->name, name,
            error_string(result));
  codec->pkt_timebase = stream->time_base;
  result = avcodec_open2(codec.get(), decoder, nullptr);
  if (result < 0) {
    fail(fmt::format("{}: cannot open the {} decoder: {}", name, decoder->name,
                     error_string(result)));
  }

  packet.reset(av_packet_alloc());
  decoded.reset(av_frame_alloc());
  rgb.reset(av_frame_alloc());
  DSN_CHECK(packet && decoded && rgb, "out of memory allocating frames for {}", name);
  read_stream_info();
}

void VideoReader::State::read_stream_info() {
  const AVCodecParameters* parameters = stream->codecpar;
  info.codec_name = codec->codec->name;
  if (const int32_t* matrix = stream_display_matrix(stream)) {
    info.rotation_degrees = rotation_from_display_matrix(matrix, name);
  }
  const bool swaps = info.rotation_degrees == 90 || info.rotation_degrees == 270;
  info.width = swaps ? parameters->height : parameters->width;
  info.height = swaps ? parameters->width : parameters->height;

  if (stream->avg_frame_rate.num > 0 && stream->avg_frame_rate.den > 0) {
    info.frame_rate = av_q2d(stream->avg_frame_rate);
  } else if (stream->r_frame_rate.num > 0 && stream->r_frame_rate.den > 0) {
    info.frame_rate = av_q2d(stream->r_frame_rate);
  }
  if (stream->duration != AV_NOPTS_VALUE && stream->duration > 0) {
    info.duration_s = static_cast<double>(stream->duration) * av_q2d(stream->time_base);
  } else if (format->duration != AV_NOPTS_VALUE && format->duration > 0) {
    info.duration_s = static_cast<double>(format->duration) / AV_TIME_BASE;
  }
  if (stream->nb_frames > 0) {
    info.frame_count = stream->nb_frames;
  }
  if (stream->start_time != AV_NOPTS_VALUE) {
    origin_pts = stream->start_time;
  }
}

// Reads packets until one video packet has been sent to the decoder or the input has ended.
void VideoReader::State::feed_decoder() {
  while (true) {
    av_packet_unref(packet.get());
    const int result = av_read_frame(format.get(), packet.get());
    if (result == AVERROR_EOF) {
      if (last_packet_corrupt) {
        truncated = true;
        truncation_reason = "the last packet in the file is incomplete";
      }
      start_draining();
      return;
    }
    if (result < 0) {
      truncated = true;
      truncation_reason = fmt::format("reading failed after video packet {}: {}",
                                      video_packets_read, error_string(result));
      start_draining();
      return;
    }

    // A demuxer marks a packet corrupt when the file ended (or a transport lost data) inside
    // it. Only EOF right after such a packet counts as truncation.
    last_packet_corrupt = (packet->flags & AV_PKT_FLAG_CORRUPT) != 0;
    if (packet->stream_index != stream->index) {
      continue;
    }
    ++video_packets_read;
    if (last_packet_corrupt) {
      skip_packet(fmt::format("the demuxer marked video packet {} (decode order) corrupt",
                              video_packets_read - 1));
      continue;
    }
    const int sent = avcodec_send_packet(codec.get(), packet.get());
    if (sent < 0) {
      skip_packet(fmt::format("decoding video packet {} (decode order) failed: {}",
                              video_packets_read - 1, error_string(sent)));
      continue;
    }
    return;
  }
}

void VideoReader::State::skip_packet(const std::string& reason) {
  ++skipped_packets;
  if (skipped_packets <= kMaxSkipWarnings) {
    spdlog::warn("{}: skipped damaged video data after frame {}: {}", name, frames_returned - 1,
                 reason);
  }
}

void VideoReader::State::start_draining() {
  // A null packet signals the end of the input, so the decoder releases the frames it still
  // buffers (reordering delay, frame threads).
  const int result = avcodec_send_packet(codec.get(), nullptr);
  DSN_CHECK(result >= 0 || result == AVERROR_EOF, "{}: cannot flush the decoder: {}", name,
            error_string(result));
  draining = true;
}

void VideoReader::State::finish() {
  finished = true;
  if (skipped_packets > kMaxSkipWarnings) {
    spdlog::warn("{}: skipped {} damaged video packets in total; the first {} are logged above",
                 name, skipped_packets, kMaxSkipWarnings);
  }
  if (truncated) {
    spdlog::warn(
        "{}: the video ends early, the file is truncated or damaged ({}); returned "
        "the {} frames decoded before that point, the last with index {}",
        name, truncation_reason, frames_returned, frames_returned - 1);
  }
}

void VideoReader::State::update_scaler(const AVFrame* source) {
  const int range = source->color_range;
  const int colorspace = source->colorspace;
  if (scaler && scaler_width == source->width && scaler_height == source->height &&
      scaler_format == source->format && scaler_range == range && scaler_colorspace == colorspace) {
    return;
  }

  bool full_range = range == AVCOL_RANGE_JPEG;
  const AVPixelFormat source_format =
      plain_pixel_format(static_cast<AVPixelFormat>(source->format), full_range);
  scaler.reset(sws_getContext(source->width, source->height, source_format, source->width,
                              source->height, AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr,
                              nullptr));
  DSN_CHECK(scaler != nullptr, "{}: swscale cannot convert pixel format {} to RGB24", name,
            av_get_pix_fmt_name(source_format));

  const AVPixFmtDescriptor* descriptor = av_pix_fmt_desc_get(source_format);
  const bool is_yuv = descriptor != nullptr && (descriptor->flags & AV_PIX_FMT_FLAG_RGB) == 0 &&
                      descriptor->nb_components >= 3;
  if (is_yuv) {
    // The frame's colour matrix (BT.601, BT.709, ...) and range decide the YUV to RGB
    // coefficients. RGB output is always full range.
    sws_setColorspaceDetails(scaler.get(), sws_getCoefficients(colorspace), full_range ? 1 : 0,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
  }

  av_frame_unref(rgb.get());
  rgb->width = source->width;
  rgb->height = source->height;
  rgb->format = AV_PIX_FMT_RGB24;
  const int result = av_frame_get_buffer(rgb.get(), 0);
  DSN_CHECK(result >= 0, "{}: cannot allocate an RGB frame of {}x{}: {}", name, source->width,
            source->height, error_string(result));

  scaler_width = source->width;
  scaler_height = source->height;
  scaler_format = source->format;
  scaler_range = range;
  scaler_colorspace = colorspace;
}

void VideoReader::State::convert(VideoFrame& frame) {
  const AVFrame* source = decoded.get();
  update_scaler(source);
  sws_scale(scaler.get(), source->data, source->linesize, 0, source->height, rgb->data,
            rgb->linesize);

  Image image = make_image(source->width, source->height, 3);
  const std::size_t row_bytes = static_cast<std::size_t>(source->width) * 3;
  for (int y = 0; y < source->height; ++y) {
    std::memcpy(image.pixels.data() + y * row_bytes, rgb->data[0] + y * rgb->linesize[0],
                row_bytes);
  }

  // A frame display matrix (from a display orientation SEI message) usually comes with the
  // key frame only. It stays in effect until the next key frame without one, which
  // approximates the H.264 rule that the message persists until the next IDR picture.
  const AVFrameSideData* side_data = av_frame_get_side_data(source, AV_FRAME_DATA_DISPLAYMATRIX);
  if (side_data != nullptr && side_data->size >= 9 * sizeof(int32_t)) {
    frame_rotation =
        rotation_from_display_matrix(reinterpret_cast<const int32_t*>(side_data->data), name);
  } else if (is_key_frame(source)) {
    frame_rotation.reset();
  }
  const int rotation = frame_rotation.value_or(info.rotation_degrees);
  frame.image = rotation == 0 ? std::move(image) : rotate_image(image, rotation);

  // Timestamps come from the stream, never from index / frame rate, because frame rates vary.
  // Only a frame without any timestamp gets one estimated from the previous frame.
  double timestamp_s = 0.0;
  const int64_t pts = source->best_effort_timestamp;
  if (pts != AV_NOPTS_VALUE) {
    if (origin_pts == AV_NOPTS_VALUE) {
      origin_pts = pts;
    }
    const AVRational time_base = stream->time_base;
    timestamp_s = static_cast<double>(pts - origin_pts) * time_base.num / time_base.den;
  } else if (frames_returned > 0) {
    const double step = info.frame_rate > 0 ? 1.0 / info.frame_rate : 0.0;
    timestamp_s = previous_timestamp_s + step;
    spdlog::debug("{}: frame {} has no timestamp; estimated {:.6f} s", name, frames_returned,
                  timestamp_s);
  }

  frame.index = frames_returned;
  frame.timestamp_s = timestamp_s;
  frame.key_frame = is_key_frame(source);
  previous_timestamp_s = timestamp_s;
  ++frames_returned;
}

VideoReader::VideoReader(const std::filesystem::path& path) : state_(std::make_unique<State>()) {
  state_->path = path;
  state_->name = path.string();
  state_->open();
}

VideoReader::~VideoReader() = default;
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;

bool VideoReader::read(VideoFrame& frame) {
  State& state = *state_;
  while (!state.finished) {
    const int result = avcodec_receive_frame(state.codec.get(), state.decoded.get());
    if (result == 0) {
      state.convert(frame);
      av_frame_unref(state.decoded.get());
      return true;
    }
    if (result == AVERROR_EOF) {
      state.finish();
      break;
    }
    if (result != AVERROR(EAGAIN)) {
      // Some decoders report a damaged packet only when they try to output its frame.
      state.skip_packet(fmt::format("decoding failed: {}", error_string(result)));
      continue;
    }
    if (state.draining) {
      // A drained decoder returns EOF, never EAGAIN, so end here rather than loop.
      state.finish();
      break;
    }
    state.feed_decoder();
  }
  return false;
}

const VideoInfo& VideoReader::info() const {
  return state_->info;
}
const std::filesystem::path& VideoReader::path() const {
  return state_->path;
}
bool VideoReader::truncated() const {
  return state_->truncated;
}
int64_t VideoReader::skipped_packets() const {
  return state_->skipped_packets;
}

}  // namespace dsn::data
