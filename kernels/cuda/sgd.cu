// SGD with momentum and weight decay over all parameter tensors in one launch, the CUDA twin of
// kernels/cpu/sgd.cpp (update rule in kernels/sgd.h).
//
// The tensors form one concatenated parameter space: the device table holds, per non-empty
// tensor, its pointers, multipliers and `begin`, the offset of its first element. Each block
// takes chunks of kChunkElements consecutive elements, in a grid-stride loop over chunks. A
// thread finds the tensor of its first element by binary search over `begin` and then walks
// forward, because its later elements in the chunk only grow. Lanes touch consecutive
// elements, so accesses stay coalesced inside a tensor, and small tensors (biases of a few
// elements) share a chunk instead of wasting a block each.
//
// Design choice a reader may question: both fused multiply-adds are written as __fmaf_rn and
// the product rate * decayed as __fmul_rn, matching the CPU twin's std::fma and plain product.
// nvcc's default contraction then cannot change any rounding, so the twins agree bit for bit on
// a GPU as well as in the device emulation.
// NOTE: so far that agreement has been tested in the device emulation only, not on a GPU.
#include "kernels/cuda/compat.cuh"

#include "kernels/cuda/sgd.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/error.h"

namespace dsn::cuda {
namespace {

constexpr int kBlockThreads = 256;
constexpr std::int64_t kChunkElements = kBlockThreads * 8;
// Grids stop growing here and loop instead. 65535 blocks of 256 threads are about 60 times what
// an H200 (132 SMs of 2048 threads) holds at once.
constexpr std::int64_t kMaxBlocks = 65535;

// One non-empty tensor in the device table.
struct SgdSegment {
  float* param;
  const float* grad;
  float* momentum_buffer;
  std::int64_t begin;  // offset of element 0 in the concatenated parameter space
  std::int64_t count;
  float lr_mult;
  float decay_mult;
};

// Index of the last segment whose begin is at most `element`.
__device__ std::int64_t find_segment(const SgdSegment* segments, std::int64_t segment_count,
                                     std::int64_t element) {
  std::int64_t low = 0, high = segment_count - 1;
  while (low < high) {
    const std::int64_t middle = (low + high + 1) / 2;
    if (segments[middle].begin <= element) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return low;
}

__global__ void sgd_update_chunked(const SgdSegment* segments, std::int64_t segment_count,
                                   std::int64_t total_count, SgdStep step) {
  const std::int64_t chunk_stride = static_cast<std::int64_t>(gridDim.x) * kChunkElements;
  for (std::int64_t chunk = static_cast<std::int64_t>(blockIdx.x) * kChunkElements;
       chunk < total_count; chunk += chunk_stride) {
    const std::int64_t chunk_end =
        chunk + kChunkElements < total_count ? chunk + kChunkElements : total_count;
    std::int64_t element = chunk + threadIdx.x;
    if (element >= chunk_end) continue;

    std::int64_t s = find_segment(segments, segment_count, element);
    SgdSegment segment = segments[s];
    float rate = __fmul_rn(step.lr, segment.lr_mult);
    float decay = __fmul_rn(step.weight_decay, segment.decay_mult);
    for (; element < chunk_end; element += kBlockThreads) {
      while (element >= segment.begin + segment.count) {
        segment = segments[++s];
        rate = __fmul_rn(step.lr, segment.lr_mult);
        decay = __fmul_rn(step.weight_decay, segment.decay_mult);
      }
      const std::int64_t i = element - segment.begin;
      const float w = segment.param[i];
      const float decayed = __fmaf_rn(decay, w, segment.grad[i]);
      const float v =
          __fmaf_rn(step.momentum, segment.momentum_buffer[i], __fmul_rn(rate, decayed));
      segment.momentum_buffer[i] = v;
      segment.param[i] = w - v;  // v comes from an fma, so there is nothing to contract
    }
  }
}

}  // namespace

std::int64_t sgd_table_bytes(std::int64_t tensor_count) {
  DSN_CHECK(tensor_count >= 0, "sgd_table_bytes: tensor count {} must not be negative",
            tensor_count);
  return tensor_count * static_cast<std::int64_t>(sizeof(SgdSegment));
}

SgdTable sgd_upload_table(std::span<const SgdTensor> tensors, void* storage,
                          std::int64_t storage_bytes) {
  validate(tensors, SgdStep{});
  std::vector<SgdSegment> segments;
  std::int64_t total = 0;
  for (const SgdTensor& tensor : tensors) {
    if (tensor.count == 0) continue;
    segments.push_back({tensor.param, tensor.grad, tensor.momentum_buffer, total, tensor.count,
                        tensor.lr_mult, tensor.decay_mult});
    total += tensor.count;
  }
  const std::int64_t bytes = sgd_table_bytes(static_cast<std::int64_t>(segments.size()));
  DSN_CHECK(storage_bytes >= bytes,
            "sgd_upload_table: storage of {} bytes is too small for {} tensors; allocate "
            "sgd_table_bytes({}) = {} bytes",
            storage_bytes, tensors.size(), tensors.size(),
            sgd_table_bytes(static_cast<std::int64_t>(tensors.size())));
  DSN_CHECK(storage != nullptr || bytes == 0, "sgd_upload_table: storage is null");
  if (bytes > 0) {
    DSN_CUDA_CHECK(cudaMemcpy(storage, segments.data(), static_cast<std::size_t>(bytes),
                              cudaMemcpyHostToDevice));
  }
  return {storage, static_cast<std::int64_t>(segments.size()), total};
}

void sgd_update(const SgdTable& table, const SgdStep& step, Stream stream) {
  validate({}, step);
  DSN_CHECK(table.segment_count >= 0 && table.total_count >= 0 &&
                (table.segments != nullptr || table.segment_count == 0),
            "sgd_update: invalid table ({} segments, {} elements); build it with "
            "sgd_upload_table",
            table.segment_count, table.total_count);
  if (table.total_count == 0) return;
  const std::int64_t blocks = std::min(ceil_div(table.total_count, kChunkElements), kMaxBlocks);
  launch(sgd_update_chunked, blocks, kBlockThreads, 0, stream,
         static_cast<const SgdSegment*>(table.segments), table.segment_count, table.total_count,
         step);
}

}  // namespace dsn::cuda
