// cuda layout copies against their dsn::cpu twins, bit for bit, and against the concatenation
// and crop references of tests/support/reference.h. The cases cover channel counts 1, 3 and
// 17, batch 1 and 3, and plane sizes that allow float4 copies (H * W a multiple of 4) or not.
// They add misaligned pointers, long rows split into column blocks, and crop windows at every
// edge.
// Destinations start filled with a marker, so a copy that writes outside its range or skips an
// element fails.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/error.h"
#include "kernels/cuda/layout.h"
#include "kernels/layout.h"
#include "tests/cuda/device_buffer.h"
#include "tests/support/reference.h"

namespace dsn {
namespace {

using test::DeviceBuffer;

constexpr float kMarker = -777.5f;

// Returns an empty string when both spans hold the same bits, else the first difference.
std::string bitwise_mismatch(std::span<const float> got, std::span<const float> expected) {
  if (got.size() != expected.size()) {
    return fmt::format("size mismatch: got {}, expected {}", got.size(), expected.size());
  }
  std::size_t differences = 0, first = 0;
  for (std::size_t i = got.size(); i-- > 0;) {
    if (std::memcmp(&got[i], &expected[i], sizeof(float)) != 0) {
      ++differences;
      first = i;
    }
  }
  if (differences == 0) return {};
  return fmt::format("{} of {} elements differ; first at index {}: got {:.9g}, expected {:.9g}",
                     differences, got.size(), first, got[first], expected[first]);
}

std::vector<float> to_float(const ref::Vec& values) {
  return {values.begin(), values.end()};
}

// Concatenates inputs of 1, 3 and 17 channels (in that order) with one channel_insert each,
// on the device and with the CPU twin. `shift` floats of padding before every device tensor
// make the pointers misaligned when it is not a multiple of four.
void check_concat(std::int64_t n, std::int64_t hw, std::size_t shift) {
  CAPTURE(n);
  CAPTURE(hw);
  CAPTURE(shift);
  const std::vector<std::int64_t> channels = {1, 3, 17};
  const std::int64_t total = 21;
  std::vector<ref::Vec> inputs_double;
  std::vector<float> host_dst(std::size_t(n * total * hw), kMarker);
  std::vector<float> padded_dst(shift + host_dst.size(), kMarker);
  DeviceBuffer<float> dst(padded_dst);

  std::int64_t offset = 0;
  for (std::size_t t = 0; t < channels.size(); ++t) {
    const std::vector<float> src =
        ref::random_uniform(std::size_t(n * channels[t] * hw), -1.0f, 1.0f, 40 + std::uint32_t(t));
    inputs_double.push_back(ref::to_double(src));
    std::vector<float> padded_src(shift, 0.0f);
    padded_src.insert(padded_src.end(), src.begin(), src.end());
    DeviceBuffer<float> src_device(padded_src);
    cuda::channel_insert(n, channels[t], total, hw, offset, src_device.get() + shift,
                         dst.get() + shift, nullptr);
    cpu::channel_insert(n, channels[t], total, hw, offset, src.data(), host_dst.data());
    offset += channels[t];
  }

  const std::vector<float> got_padded = dst.to_host();
  const std::vector<float> got(got_padded.begin() + std::ptrdiff_t(shift), got_padded.end());
  for (std::size_t i = 0; i < shift; ++i) CHECK(got_padded[i] == kMarker);
  const std::string mismatch = bitwise_mismatch(got, host_dst);
  CHECK_MESSAGE(mismatch.empty(), mismatch);
  const std::string reference_mismatch =
      bitwise_mismatch(got, to_float(ref::concat(n, channels, hw, inputs_double)));
  CHECK_MESSAGE(reference_mismatch.empty(), reference_mismatch);

  // Slicing every input back out of the concatenation must return it unchanged.
  offset = 0;
  for (std::size_t t = 0; t < channels.size(); ++t) {
    std::vector<float> padded_out(shift + std::size_t(n * channels[t] * hw), kMarker);
    DeviceBuffer<float> out(padded_out);
    cuda::channel_slice(n, total, channels[t], hw, offset, dst.get() + shift, out.get() + shift,
                        nullptr);
    const std::vector<float> sliced_padded = out.to_host();
    const std::vector<float> sliced(sliced_padded.begin() + std::ptrdiff_t(shift),
                                    sliced_padded.end());
    const std::string slice_mismatch = bitwise_mismatch(sliced, to_float(inputs_double[t]));
    CHECK_MESSAGE(slice_mismatch.empty(), slice_mismatch);
    offset += channels[t];
  }
}

TEST_CASE("cuda layout channel concat and slice match cpu") {
  for (const std::int64_t n : {1, 3}) {
    for (const std::int64_t hw : {1, 4, 35, 49, 64}) {
      check_concat(n, hw, 0);
      check_concat(n, hw, 1);
    }
  }
  // Rows of 17 * 3000 floats: few rows, so the copy adds column blocks.
  check_concat(1, 3000, 0);
  check_concat(3, 3001, 2);
}

TEST_CASE("cuda layout channel_slice matches cpu on odd offsets") {
  const std::int64_t n = 3, c_src = 17, hw = 6;
  const std::vector<float> src = ref::random_uniform(std::size_t(n * c_src * hw), -1.0f, 1.0f, 9);
  DeviceBuffer<float> src_device(src);
  for (const std::int64_t offset : {0, 1, 5, 14}) {
    for (const std::int64_t c_dst : {1, 3}) {
      CAPTURE(offset);
      CAPTURE(c_dst);
      std::vector<float> expected(std::size_t(n * c_dst * hw), kMarker);
      DeviceBuffer<float> dst(expected);
      cuda::channel_slice(n, c_src, c_dst, hw, offset, src_device.get(), dst.get(), nullptr);
      cpu::channel_slice(n, c_src, c_dst, hw, offset, src.data(), expected.data());
      const std::string mismatch = bitwise_mismatch(dst.to_host(), expected);
      CHECK_MESSAGE(mismatch.empty(), mismatch);
    }
  }
}

CropShape make_crop(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                    std::int64_t offset_h, std::int64_t offset_w, std::int64_t out_h,
                    std::int64_t out_w) {
  CropShape shape;
  shape.n = n;
  shape.c = c;
  shape.h = h;
  shape.w = w;
  shape.offset_h = offset_h;
  shape.offset_w = offset_w;
  shape.out_h = out_h;
  shape.out_w = out_w;
  return shape;
}

// Windows at the top-left and bottom-right corners, in the middle, the whole input, a single
// cell, float4-aligned rows (w, offset_w and out_w multiples of 4), and long rows.
std::vector<CropShape> crop_shapes() {
  return {
      make_crop(1, 1, 5, 7, 0, 0, 3, 4),   make_crop(3, 17, 9, 11, 2, 1, 5, 7),
      make_crop(1, 3, 9, 11, 4, 6, 5, 5),  make_crop(3, 3, 6, 5, 0, 0, 6, 5),
      make_crop(1, 3, 1, 1, 0, 0, 1, 1),   make_crop(3, 3, 8, 8, 0, 4, 8, 4),
      make_crop(2, 1, 12, 16, 3, 8, 7, 8), make_crop(1, 1, 3, 3000, 1, 5, 2, 2990),
  };
}

std::string describe(const CropShape& s) {
  return fmt::format("x ({}, {}, {}, {}), window {}x{} at ({}, {})", s.n, s.c, s.h, s.w, s.out_h,
                     s.out_w, s.offset_h, s.offset_w);
}

TEST_CASE("cuda layout crop forward matches cpu") {
  for (const CropShape& shape : crop_shapes()) {
    CAPTURE(describe(shape));
    const std::vector<float> x =
        ref::random_uniform(std::size_t(shape.n * shape.c * shape.h * shape.w), -1.0f, 1.0f, 3);
    std::vector<float> expected(std::size_t(shape.n * shape.c * shape.out_h * shape.out_w),
                                kMarker);
    DeviceBuffer<float> x_device(x), y_device(expected);
    cuda::crop_forward(shape, x_device.get(), y_device.get(), nullptr);
    cpu::crop_forward(shape, x.data(), expected.data());
    const std::vector<float> got = y_device.to_host();
    const std::string mismatch = bitwise_mismatch(got, expected);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
    const std::string reference_mismatch =
        bitwise_mismatch(got, to_float(ref::crop(shape, ref::to_double(x))));
    CHECK_MESSAGE(reference_mismatch.empty(), reference_mismatch);
  }
}

TEST_CASE("cuda layout crop backward matches cpu") {
  for (const CropShape& shape : crop_shapes()) {
    CAPTURE(describe(shape));
    const std::vector<float> dy = ref::random_uniform(
        std::size_t(shape.n * shape.c * shape.out_h * shape.out_w), -1.0f, 1.0f, 4);
    // The marker must be overwritten everywhere: zeros outside the window, dy inside.
    std::vector<float> expected(std::size_t(shape.n * shape.c * shape.h * shape.w), kMarker);
    DeviceBuffer<float> dy_device(dy), dx_device(expected);
    cuda::crop_backward(shape, dy_device.get(), dx_device.get(), nullptr);
    cpu::crop_backward(shape, dy.data(), expected.data());
    const std::string mismatch = bitwise_mismatch(dx_device.to_host(), expected);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
  }
}

TEST_CASE("cuda layout misaligned crop matches cpu") {
  const CropShape shape = make_crop(3, 3, 8, 8, 1, 4, 6, 4);
  const std::size_t in_size = std::size_t(shape.n * shape.c * shape.h * shape.w);
  const std::size_t out_size = std::size_t(shape.n * shape.c * shape.out_h * shape.out_w);
  const std::vector<float> x = ref::random_uniform(in_size + 1, -1.0f, 1.0f, 5);
  std::vector<float> expected(out_size + 1, kMarker);
  DeviceBuffer<float> x_device(x), y_device(expected);
  cuda::crop_forward(shape, x_device.get() + 1, y_device.get() + 1, nullptr);
  cpu::crop_forward(shape, x.data() + 1, expected.data() + 1);
  const std::string mismatch = bitwise_mismatch(y_device.to_host(), expected);
  CHECK_MESSAGE(mismatch.empty(), mismatch);
}

TEST_CASE("cuda layout rejects invalid shapes") {
  DeviceBuffer<float> buffer(64);
  CHECK_THROWS_AS(cuda::channel_insert(1, 3, 4, 2, 2, buffer.get(), buffer.get(), nullptr), Error);
  CHECK_THROWS_AS(cuda::channel_slice(1, 4, 3, 2, -1, buffer.get(), buffer.get(), nullptr), Error);
  CHECK_THROWS_AS(cuda::channel_insert(0, 1, 1, 2, 0, buffer.get(), buffer.get(), nullptr), Error);
  CHECK_THROWS_AS(
      cuda::crop_forward(make_crop(1, 1, 4, 4, 2, 0, 3, 4), buffer.get(), buffer.get(), nullptr),
      Error);
  CHECK_THROWS_AS(
      cuda::crop_backward(make_crop(1, 1, 4, 4, 0, -1, 2, 2), buffer.get(), buffer.get(), nullptr),
      Error);
}

TEST_CASE("cuda layout row tiles cover short and long rows") {
  const cuda::detail::RowTiles short_rows = cuda::detail::plan_row_tiles(1000, 3);
  CHECK(short_rows.tile_width == 4);
  CHECK(short_rows.tile_height == 64);
  CHECK(short_rows.column_blocks == 1);
  const cuda::detail::RowTiles long_rows = cuda::detail::plan_row_tiles(2, 100000);
  CHECK(long_rows.tile_width == 256);
  CHECK(long_rows.tile_height == 1);
  CHECK(long_rows.row_blocks == 2);
  CHECK(long_rows.column_blocks > 1);
  CHECK_THROWS_AS(cuda::detail::plan_row_tiles(std::int64_t(1) << 31, 1), Error);
}

}  // namespace
}  // namespace dsn
