// Tests of the CUDA device emulation through the kernels in tests/kernels/*.cu: results against
// references computed here from the CUDA definitions, schedule dependence of a racy kernel, fault
// reports, and the runtime API's pointer checks. With DSN_CUDA_TESTS_ON_DEVICE the same kernels
// run on a GPU; the emulation-only cases are then left out.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "tests/kernels/test_kernels.h"

namespace {

using namespace dsn::emu_test;

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t count) : count_(count) {
    DSN_CUDA_CHECK(cudaMalloc(&data_, count * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    DSN_CUDA_CHECK(cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { DSN_CUDA_CHECK_LOG(cudaFree(data_)); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return data_; }
  std::vector<T> to_host() const {
    std::vector<T> host(count_);
    DSN_CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* data_ = nullptr;
  std::size_t count_;
};

// Inputs 0, 1, 2, ... scaled so that every block sum is exact in float.
std::vector<float> ramp(int n) {
  std::vector<float> values(n);
  for (int i = 0; i < n; ++i) values[i] = float(i % 1000) * 0.5f;
  return values;
}

std::vector<double> block_sums_reference(const std::vector<float>& in, int block) {
  std::vector<double> sums((in.size() + block - 1) / block, 0.0);
  for (std::size_t i = 0; i < in.size(); ++i) sums[i / block] += in[i];
  return sums;
}

std::vector<float> run_block_sum(ReduceKind kind, const std::vector<float>& in) {
  DeviceBuffer<float> d_in(in), d_out((in.size() + 255) / 256);
  block_sum(kind, d_in.get(), d_out.get(), int(in.size()), nullptr);
  return d_out.to_host();
}

}  // namespace

TEST_CASE("block sum through shared memory") {
  const std::vector<float> in = ramp(5000);  // the last block is partial
  const std::vector<double> expected = block_sums_reference(in, 256);
  for (ReduceKind kind : {ReduceKind::shared, ReduceKind::warps}) {
    const std::vector<float> got = run_block_sum(kind, in);
    REQUIRE(got.size() == expected.size());
    for (std::size_t b = 0; b < got.size(); ++b) {
      CAPTURE(b);
      CHECK(double(got[b]) == expected[b]);
    }
  }
}

TEST_CASE("warp intrinsics match their definitions") {
  const int blocks = 2, threads = 64, n = blocks * threads;
  std::vector<int> in(n);
  for (int t = 0; t < n; ++t) in[t] = 1 + (t * 37 + 11) % 101;
  DeviceBuffer<int> d_in(in), d_out(std::size_t(n) * kWarpOutputs);
  warp_intrinsics(d_in.get(), d_out.get(), blocks, threads, nullptr);
  const std::vector<int> out = d_out.to_host();

  for (int t = 0; t < n; ++t) {
    const int lane = t % 32, warp_base = t - lane, block_base = t - t % threads;
    const auto lane_value = [&](int l) { return in[warp_base + l]; };
    const int* o = &out[std::size_t(t) * kWarpOutputs];
    unsigned ballot = 0;
    bool any7 = false, all_positive = true;
    for (int l = 0; l < 32; ++l) {
      ballot |= unsigned(lane_value(l) & 1) << l;
      any7 = any7 || lane_value(l) % 7 == 0;
      all_positive = all_positive && lane_value(l) > 0;
    }
    int odd = 0, multiple_of_5 = 0;
    for (int i = block_base; i < block_base + threads; ++i) {
      odd += in[i] & 1;
      multiple_of_5 += in[i] % 5 == 0;
    }
    CAPTURE(t);
    CHECK(o[0] == lane_value(5));
    CHECK(o[1] == lane_value(lane / 8 * 8 + (lane + 3) % 8));
    CHECK(o[2] == (lane >= 3 ? lane_value(lane - 3) : in[t]));
    CHECK(o[3] == (lane % 16 + 5 < 16 ? lane_value(lane + 5) : in[t]));
    CHECK(o[4] == lane_value(lane ^ 9));
    CHECK(o[5] == ((lane ^ 20) < lane / 16 * 16 + 16 ? lane_value(lane ^ 20) : in[t]));
    CHECK(unsigned(o[6]) == ballot);
    CHECK(o[7] == int(any7));
    CHECK(o[8] == int(all_positive));
    int partial_down = -1;  // lanes 16-31 do not take part
    if (lane < 15) partial_down = lane_value(lane + 1);
    if (lane == 15) partial_down = in[t];
    CHECK(o[9] == partial_down);
    CHECK(o[10] == odd);
    CHECK(o[11] == 1);
    CHECK(o[12] == int(multiple_of_5 > 0));
    CHECK(o[13] == lane_value(lane ^ 1));
    CHECK(o[14] == lane_value(lane ^ 2) - 3 * lane_value(lane ^ 2));
    CHECK(unsigned(o[15]) == 0xffffffffu);
  }
}

TEST_CASE("dynamic shared memory reverses blocks") {
  const int blocks = 3, threads = 96;
  std::vector<float> in(blocks * threads);
  std::iota(in.begin(), in.end(), 1.0f);
  DeviceBuffer<float> d_in(in), d_out(in.size());
  reverse_in_blocks(d_in.get(), d_out.get(), blocks, threads, threads * sizeof(float), nullptr);
  const std::vector<float> out = d_out.to_host();
  for (int b = 0; b < blocks; ++b) {
    for (int t = 0; t < threads; ++t) {
      CAPTURE(b);
      CAPTURE(t);
      CHECK(out[b * threads + t] == in[b * threads + threads - 1 - t]);
    }
  }
}

TEST_CASE("atomics on global memory") {
  const int n = 3000, bin_count = 7;
  std::vector<int> values(n);
  for (int i = 0; i < n; ++i) values[i] = (i * 7919) % 1013;
  const AtomicResults initial{-1, 1 << 30, 0.0f, 0.0, 0, 0};
  DeviceBuffer<int> d_values(values);
  DeviceBuffer<unsigned> d_bins(std::vector<unsigned>(bin_count, 0));
  DeviceBuffer<AtomicResults> d_results(std::vector<AtomicResults>{initial});
  run_atomics(d_values.get(), n, d_bins.get(), bin_count, d_results.get(), nullptr);
  const std::vector<unsigned> bins = d_bins.to_host();
  const AtomicResults got = d_results.to_host()[0];

  std::vector<unsigned> expected_bins(bin_count, 0);
  int max = -1, min = 1 << 30, sum = 0;
  double scaled_sum = 0.0, double_sum = 0.0;
  for (int v : values) {
    ++expected_bins[v % bin_count];
    max = std::max(max, v);
    min = std::min(min, v);
    sum += v;
    scaled_sum += double(float(v) * 0.001f);
    double_sum += double(v) * 0.001;
  }
  for (int b = 0; b < bin_count; ++b) CHECK(bins[b] == expected_bins[b]);
  CHECK(got.max == max);
  CHECK(got.min == min);
  CHECK(got.count == unsigned(n));
  CHECK(got.cas_sum == sum);
  // Rounding bound of n float additions of non-negative terms, in any order.
  const double float_bound = 2.0 * n * std::ldexp(1.0, -24) * scaled_sum;
  CHECK(std::abs(double(got.float_sum) - scaled_sum) <= float_bound);
  CHECK(std::abs(got.double_sum - double_sum) <= 2.0 * n * std::ldexp(1.0, -53) * double_sum);
}

TEST_CASE("three-dimensional grid and block indices") {
  const int blocks = 2 * 3 * 2, threads = 4 * 2 * 2;
  DeviceBuffer<int> d_out(blocks * threads);
  write_indices_3d(d_out.get(), nullptr);
  const std::vector<int> out = d_out.to_host();
  for (int bz = 0; bz < 2; ++bz)
    for (int by = 0; by < 3; ++by)
      for (int bx = 0; bx < 2; ++bx)
        for (int tz = 0; tz < 2; ++tz)
          for (int ty = 0; ty < 2; ++ty)
            for (int tx = 0; tx < 4; ++tx) {
              const int block = (bz * 3 + by) * 2 + bx, thread = (tz * 2 + ty) * 4 + tx;
              const int code = tx | ty << 2 | tz << 4 | bx << 6 | by << 8 | bz << 10;
              CAPTURE(block);
              CAPTURE(thread);
              CHECK(out[block * threads + thread] == code);
            }
}

TEST_CASE("half and bfloat16 round trips") {
  // Expected values worked out by hand from the IEEE binary16 and bfloat16 formats with
  // round-to-nearest-even: 0.1f is 0x2E66 in half and 0x3DCD in bfloat16.
  const std::vector<float> in = {1.0f, 0.1f, -2.5f, 65504.0f, 70000.0f};
  const std::vector<float> half = {1.0f, 0.0999755859375f, -2.5f, 65504.0f, INFINITY};
  const std::vector<float> bf16 = {1.0f, 0.10009765625f, -2.5f, 65536.0f, 70144.0f};
  const int n = int(in.size());
  DeviceBuffer<float> d_in(in), d_out(2 * in.size());
  round_to_half(d_in.get(), d_out.get(), n, nullptr);
  const std::vector<float> out = d_out.to_host();
  for (int i = 0; i < n; ++i) {
    CAPTURE(in[i]);
    CHECK(out[i] == half[i]);
    CHECK(out[n + i] == bf16[i]);
  }
}

#if defined(DSN_DEVICE_EMULATION)

namespace {

// Sets a schedule for one test and restores the previous one, which may come from the
// environment (the ctest variants set DSN_EMU_SCHEDULE).
class ScheduleScope {
 public:
  explicit ScheduleScope(dsn::emu::Schedule schedule) : saved_(dsn::emu::schedule()) {
    dsn::emu::set_schedule(schedule);
  }
  ~ScheduleScope() { dsn::emu::set_schedule(saved_); }

 private:
  dsn::emu::Schedule saved_;
};

std::string fault_message(Fault fault) {
  DeviceBuffer<int> d_out(64);
  try {
    run_faulty(fault, d_out.get(), nullptr);
  } catch (const dsn::Error& error) {
    return error.what();
  }
  return "no error";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("missing barrier depends on schedule") {
  using dsn::emu::ScheduleOrder;
  const std::vector<float> in = ramp(1024);
  const std::vector<double> expected = block_sums_reference(in, 256);
  std::vector<float> forward, reverse;
  {
    ScheduleScope scope({ScheduleOrder::forward, 0});
    forward = run_block_sum(ReduceKind::missing_barrier, in);
  }
  {
    ScheduleScope scope({ScheduleOrder::reverse, 0});
    reverse = run_block_sum(ReduceKind::missing_barrier, in);
  }
  // Forward order runs thread 0's whole loop before the others add their pairs.
  CHECK(double(forward[0]) != expected[0]);
  CHECK(forward != reverse);
}

TEST_CASE("correct kernels agree across schedules") {
  using dsn::emu::ScheduleOrder;
  const std::vector<float> in = ramp(3000);
  std::vector<std::vector<float>> results;
  for (const dsn::emu::Schedule schedule : {dsn::emu::Schedule{ScheduleOrder::forward, 0},
                                            {ScheduleOrder::reverse, 0},
                                            {ScheduleOrder::random, 1},
                                            {ScheduleOrder::random, 99}}) {
    ScheduleScope scope(schedule);
    results.push_back(run_block_sum(ReduceKind::warps, in));
  }
  for (std::size_t i = 1; i < results.size(); ++i) CHECK(results[i] == results[0]);
}

TEST_CASE("worker count does not change results") {
  const std::vector<float> in = ramp(4096);
  const unsigned saved = dsn::emu::worker_count();
  dsn::emu::set_worker_count(1);
  const std::vector<float> one = run_block_sum(ReduceKind::shared, in);
  dsn::emu::set_worker_count(3);
  const std::vector<float> three = run_block_sum(ReduceKind::shared, in);
  dsn::emu::set_worker_count(saved);
  CHECK(one == three);
}

TEST_CASE("schedule names parse") {
  CHECK(dsn::emu::parse_schedule("forward").order == dsn::emu::ScheduleOrder::forward);
  CHECK(dsn::emu::parse_schedule("reverse").order == dsn::emu::ScheduleOrder::reverse);
  const dsn::emu::Schedule random = dsn::emu::parse_schedule("random:1234");
  CHECK(random.order == dsn::emu::ScheduleOrder::random);
  CHECK(random.seed == 1234);
  CHECK_THROWS_AS(dsn::emu::parse_schedule("backward"), dsn::Error);
  CHECK_THROWS_AS(dsn::emu::parse_schedule("random:x"), dsn::Error);
}

TEST_CASE("deadlock is reported") {
  const std::string message = fault_message(Fault::divergent_barriers);
  CHECK(contains(message, "deadlock in block (0, 0, 0)"));
  CHECK(contains(message, "32 of 64 threads wait at __syncthreads"));
  CHECK(contains(message, "warp 0 waits in __syncwarp with mask 0xffffffff"));
  CHECK(contains(message, "lanes 0xaaaaaaaa arrived"));
  CHECK(contains(message, "fault_kernels.cu"));
}

TEST_CASE("barrier after return is reported") {
  const std::string message = fault_message(Fault::barrier_after_return);
  // Which side comes first depends on the schedule; both name the barrier.
  CHECK(contains(message, "__syncthreads"));
  CHECK((contains(message, "returned while") || contains(message, "reached after")));
}

TEST_CASE("shuffle with exited lanes is reported") {
  CHECK(contains(fault_message(Fault::shuffle_after_exit), "returned"));
  CHECK(contains(fault_message(Fault::mask_without_caller), "does not include the calling lane"));
}

TEST_CASE("launch works again after a fault") {
  CHECK(contains(fault_message(Fault::divergent_barriers), "deadlock"));
  const std::vector<float> in = ramp(512);
  const std::vector<float> got = run_block_sum(ReduceKind::warps, in);
  CHECK(double(got[1]) == block_sums_reference(in, 256)[1]);
}

TEST_CASE("host pointer argument is rejected") {
  std::vector<float> host(256, 1.0f);
  DeviceBuffer<float> d_out(1);
  try {
    block_sum(ReduceKind::shared, host.data(), d_out.get(), 256, nullptr);
    FAIL("launch accepted a host pointer");
  } catch (const dsn::Error& error) {
    CHECK(contains(error.what(), "argument 0"));
    CHECK(contains(error.what(), "not in memory from cudaMalloc"));
  }
}

TEST_CASE("dynamic shared limit follows cudaFuncSetAttribute") {
  const int threads = 32;
  std::vector<float> in(threads, 2.0f);
  DeviceBuffer<float> d_in(in), d_out(threads);
  const std::size_t large = 64 * 1024;
  CHECK_THROWS_AS(reverse_in_blocks(d_in.get(), d_out.get(), 1, threads, large, nullptr),
                  dsn::Error);
  allow_dynamic_shared(int(large));
  reverse_in_blocks(d_in.get(), d_out.get(), 1, threads, large, nullptr);
  CHECK(d_out.to_host() == in);
}

TEST_CASE("invalid launch configuration is rejected") {
  DeviceBuffer<float> d_in(1), d_out(1);
  CHECK_THROWS_AS(reverse_in_blocks(d_in.get(), d_out.get(), 0, 32, 128, nullptr), dsn::Error);
  CHECK_THROWS_AS(reverse_in_blocks(d_in.get(), d_out.get(), 1, 2048, 8192, nullptr), dsn::Error);
}

TEST_CASE("cudaMalloc fills with NaN bytes") {
  DeviceBuffer<float> buffer(16);
  for (float value : buffer.to_host()) CHECK(std::isnan(value));
  DSN_CUDA_CHECK(cudaMemset(buffer.get(), 0, 16 * sizeof(float)));
  for (float value : buffer.to_host()) CHECK(value == 0.0f);
}

TEST_CASE("cudaMemcpy checks pointers against the copy kind") {
  DeviceBuffer<float> device(8);
  std::vector<float> host(8, 1.0f);
  CHECK(cudaMemcpy(host.data(), host.data() + 4, 16, cudaMemcpyHostToDevice) ==
        cudaErrorInvalidValue);
  CHECK(contains(dsn::emu::last_error_detail(), "is not memory from cudaMalloc"));
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(cudaMemcpy(device.get(), host.data(), 64, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(host.data(), device.get(), 36, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(contains(dsn::emu::last_error_detail(), "runs past the end"));
  CHECK(cudaMemcpy(device.get(), host.data(), 32, cudaMemcpyDefault) == cudaSuccess);
  CHECK(cudaFree(host.data()) == cudaErrorInvalidValue);
  CHECK_THROWS_WITH_AS(DSN_CUDA_CHECK(cudaMemset(host.data(), 0, 4)),
                       doctest::Contains("cudaMemset(host.data(), 0, 4) failed"), dsn::Error);
  cudaGetLastError();
}

TEST_CASE("device properties name the emulation") {
  cudaDeviceProp prop;
  DSN_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  CHECK(contains(prop.name, "emulation"));
  CHECK(prop.warpSize == 32);
  cudaEvent_t start, stop;
  DSN_CUDA_CHECK(cudaEventCreate(&start));
  DSN_CUDA_CHECK(cudaEventCreate(&stop));
  DSN_CUDA_CHECK(cudaEventRecord(start));
  DSN_CUDA_CHECK(cudaEventRecord(stop));
  float ms = -1.0f;
  DSN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  CHECK(ms >= 0.0f);
  DSN_CUDA_CHECK(cudaEventDestroy(start));
  DSN_CUDA_CHECK(cudaEventDestroy(stop));
}

#endif  // DSN_DEVICE_EMULATION
