// CUDA twin of kernels/sgd.h: one launch updates every parameter tensor of a network with SGD,
// momentum and weight decay, bit-identical to dsn::cpu::sgd_update.
//
// The tensor list is uploaded once into a device table (its pointers and multipliers do not
// change between steps), and each step passes only the step's scalars:
//   storage = device buffer of sgd_table_bytes(tensors.size()) bytes
//   SgdTable table = sgd_upload_table(tensors, storage, bytes);   // once
//   sgd_update(table, step, stream);                              // every step
#pragma once

#include <cstdint>
#include <span>

#include "kernels/cuda/stream.h"
#include "kernels/sgd.h"

namespace dsn::cuda {

// The device copy of a tensor list made by sgd_upload_table. Valid while its storage and the
// tensors' arrays are.
struct SgdTable {
  const void* segments = nullptr;  // device memory: one descriptor per non-empty tensor
  std::int64_t segment_count = 0;
  std::int64_t total_count = 0;  // elements of all tensors together
};

// Bytes of device storage that the table of `tensor_count` tensors needs.
std::int64_t sgd_table_bytes(std::int64_t tensor_count);

// Validates the tensors (dsn::validate in kernels/sgd.h) and copies their descriptors into
// `storage` (device memory of `storage_bytes` bytes) with a synchronous cudaMemcpy, so the
// call waits for the device: make it once per tensor list, not once per step.
SgdTable sgd_upload_table(std::span<const SgdTensor> tensors, void* storage,
                          std::int64_t storage_bytes);

// Applies one step to every tensor of the table, enqueued on `stream`.
void sgd_update(const SgdTable& table, const SgdStep& step, Stream stream);

}  // namespace dsn::cuda
