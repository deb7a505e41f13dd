// Philox-4x32-10 counter-based random numbers (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011), usable from host and device code so that the CPU and CUDA backends
// draw identical dropout masks for the same (seed, offset).
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(DSN_DEVICE_EMULATION)
#define DSN_HOST_DEVICE __host__ __device__
#else
#define DSN_HOST_DEVICE
#endif

namespace dsn {

struct Philox4x32 {
  std::uint32_t v[4];
};

// Returns the Philox-4x32-10 bijection of a 128-bit counter (four words, low word first) under
// the 64-bit key (key0, key1). Matches the known-answer vectors of the Random123 reference.
DSN_HOST_DEVICE inline Philox4x32 philox4x32_10(Philox4x32 counter, std::uint32_t key0,
                                                std::uint32_t key1) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  std::uint32_t c0 = counter.v[0], c1 = counter.v[1], c2 = counter.v[2], c3 = counter.v[3];
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(kMul0) * c0;
    const std::uint64_t p1 = static_cast<std::uint64_t>(kMul1) * c2;
    const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32);
    const std::uint32_t lo0 = static_cast<std::uint32_t>(p0);
    const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32);
    const std::uint32_t lo1 = static_cast<std::uint32_t>(p1);
    c0 = hi1 ^ c1 ^ key0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ key1;
    c3 = lo0;
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return Philox4x32{{c0, c1, c2, c3}};
}

// Returns four 32-bit random words for counter `counter` under key `seed`: the 128-bit counter
// is (low word of counter, high word of counter, 0, 0) and the key is (low word, high word).
DSN_HOST_DEVICE inline Philox4x32 philox4x32(std::uint64_t counter, std::uint64_t seed) {
  const Philox4x32 words{{static_cast<std::uint32_t>(counter),
                          static_cast<std::uint32_t>(counter >> 32), 0u, 0u}};
  return philox4x32_10(words, static_cast<std::uint32_t>(seed),
                       static_cast<std::uint32_t>(seed >> 32));
}

// Uniform float in [0, 1) for element `index` of the stream (seed, offset): one Philox call per
// four elements, 24 random bits per float, so the value is exact in float32.
DSN_HOST_DEVICE inline float philox_uniform(std::uint64_t seed, std::uint64_t offset,
                                            std::uint64_t index) {
  const std::uint64_t element = offset + index;
  const Philox4x32 r = philox4x32(element / 4, seed);
  return static_cast<float>(r.v[element % 4] >> 8) * (1.0f / 16777216.0f);
}

}  // namespace dsn
