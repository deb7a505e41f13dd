// The layer table of a network (`dsn inspect`): one row per layer with its output shape,
// parameter count and multiply-accumulates, recorded from the network's own forward pass so the
// table cannot drift from the graph.
//
// MAC counts, for a batch of N:
// - convolution: N * K * P * Q * C * R * S (output positions times filter taps; bias adds are
//   not counted);
// - transposed convolution: the MACs of the convolution whose backward-data pass it is,
//   N * C_in * H_in * W_in * C_out * R * S;
// - fully connected: N * in * out;
// - pooling, ReLU, dropout, crop and element-wise sums: 0 (they do no multiply-accumulates).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dsn::nets {

class EmotionNet;

// Section of the network a layer belongs to: the shared backbone or the heads (side outputs,
// upsampling, fusion and classifiers).
enum class NetPart { Backbone, Heads };

struct LayerRow {
  std::string name;  // module or op name, e.g. "conv1_1", "side4.refine", "up6_to_4"
  std::string type;  // e.g. "conv 3x3 p1 +relu", "max pool 3x3 s2 p1", "fc"
  Shape output;      // (N, C, H, W) or (N, features)
  std::int64_t parameters = 0;
  std::int64_t trainable_parameters = 0;  // parameters with a non-zero learning-rate multiplier
  std::int64_t macs = 0;
  NetPart part = NetPart::Backbone;
};

// Collects rows while a network runs forward. In shapes-only mode the network's layers compute
// output shapes with the ops' own size formulas and skip the kernels, so they return
// uninitialised tensors of the right shapes. The rows are identical to those of an executed pass.
class LayerRecorder {
 public:
  explicit LayerRecorder(bool shapes_only) : shapes_only_(shapes_only) {}
  bool shapes_only() const { return shapes_only_; }
  void add(LayerRow row) { rows_.push_back(std::move(row)); }
  const std::vector<LayerRow>& rows() const { return rows_; }

 private:
  bool shapes_only_;
  std::vector<LayerRow> rows_;
};

struct TableTotals {
  std::int64_t parameters = 0;
  std::int64_t trainable_parameters = 0;
  std::int64_t macs = 0;
  std::int64_t backbone_parameters = 0;
  std::int64_t head_parameters = 0;
  std::int64_t backbone_macs = 0;
  std::int64_t head_macs = 0;
};

// Records the rows of one forward pass of a batch-1 input of the configured size, under
// NoGradGuard and in evaluation mode (the previous mode is restored). With `execute` false the
// pass is shapes-only and runs no kernels. With `execute` true the kernels run on a zero input.
std::vector<LayerRow> layer_table(EmotionNet& net, bool execute = false);

TableTotals totals(const std::vector<LayerRow>& rows);

// A fixed-width text table: name, type, output shape, parameters, MACs, then the totals with
// exact counts and short forms (e.g. "24.8 GMAC", "27.9 M").
std::string format_table(const std::vector<LayerRow>& rows);

// "27.9 M", "24.8 G", "812.3 k", "950": one decimal and an SI prefix.
std::string short_count(std::int64_t value);

}  // namespace dsn::nets
