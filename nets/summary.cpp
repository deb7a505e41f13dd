#include "nets/summary.h"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "engine/autograd.h"
#include "nets/emotion_net.h"

namespace dsn::nets {
namespace {

// "24,833,151,714"
std::string group_digits(std::int64_t value) {
  const std::string digits = std::to_string(value < 0 ? -value : value);
  std::string grouped;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  return value < 0 ? "-" + grouped : grouped;
}

// Restores a module's training mode when the scope ends, also on an exception.
class ModeRestorer {
 public:
  explicit ModeRestorer(Module& module) : module_(module), training_(module.is_training()) {}
  ~ModeRestorer() { module_.train(training_); }
  ModeRestorer(const ModeRestorer&) = delete;
  ModeRestorer& operator=(const ModeRestorer&) = delete;

 private:
  Module& module_;
  bool training_;
};

// "24.8 GMAC", "950 MAC"
std::string short_macs(std::int64_t value) {
  const std::string count = short_count(value);
  return std::abs(value) >= 1000 ? count + "MAC" : count + " MAC";
}

}  // namespace

std::vector<LayerRow> layer_table(EmotionNet& net, bool execute) {
  ModeRestorer restorer(net);
  net.eval();
  LayerRecorder recorder(!execute);
  RecorderScope scope(net, &recorder);
  autograd::NoGradGuard no_grad;
  const std::int64_t size = net.config().input_size;
  const Shape input_shape = {1, 3, size, size};
  // An executed pass needs the input on the parameters' device; a shapes-only pass runs no op.
  const auto parameters = net.named_parameters();
  const Device device =
      parameters.empty() ? Device::cpu() : parameters.front().second->value.device();
  const Tensor x =
      execute ? Tensor::zeros(input_shape, DType::Float32, device) : Tensor::empty(input_shape);
  net.forward(x);
  return recorder.rows();
}

TableTotals totals(const std::vector<LayerRow>& rows) {
  TableTotals result;
  for (const LayerRow& row : rows) {
    result.parameters += row.parameters;
    result.trainable_parameters += row.trainable_parameters;
    result.macs += row.macs;
    if (row.part == NetPart::Backbone) {
      result.backbone_parameters += row.parameters;
      result.backbone_macs += row.macs;
    } else {
      result.head_parameters += row.parameters;
      result.head_macs += row.macs;
    }
  }
  return result;
}

std::string short_count(std::int64_t value) {
  constexpr std::array<std::pair<double, const char*>, 4> kPrefixes = {
      {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}}};
  const double magnitude = std::abs(static_cast<double>(value));
  for (const auto& [scale, prefix] : kPrefixes) {
    if (magnitude >= scale)
      return fmt::format("{:.1f} {}", static_cast<double>(value) / scale, prefix);
  }
  return std::to_string(value);
}

std::string format_table(const std::vector<LayerRow>& rows) {
  std::size_t name_width = 5, type_width = 4, shape_width = 6;
  for (const LayerRow& row : rows) {
    name_width = std::max(name_width, row.name.size());
    type_width = std::max(type_width, row.type.size());
    shape_width = std::max(shape_width, to_string(row.output).size());
  }
  const TableTotals sum = totals(rows);
  const std::size_t parameter_width =
      std::max<std::size_t>(10, group_digits(sum.parameters).size());
  const std::size_t mac_width = std::max<std::size_t>(4, group_digits(sum.macs).size());

  std::string text;
  const auto add_line = [&](const std::string& name, const std::string& type,
                            const std::string& shape, const std::string& parameters,
                            const std::string& macs) {
    text +=
        fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>{}}  {:>{}}\n", name, name_width, type, type_width,
                    shape, shape_width, parameters, parameter_width, macs, mac_width);
  };
  add_line("layer", "type", "output", "parameters", "MACs");
  bool heads_started = false;
  for (const LayerRow& row : rows) {
    if (row.part == NetPart::Heads && !heads_started) {
      text += fmt::format("{:-<{}}\n", "-- heads ",
                          name_width + type_width + shape_width + parameter_width + mac_width + 8);
      heads_started = true;
    }
    add_line(row.name, row.type, to_string(row.output), group_digits(row.parameters),
             group_digits(row.macs));
  }
  text += fmt::format("\nparameters  {} ({}), trainable {} ({})\n", group_digits(sum.parameters),
                      short_count(sum.parameters), group_digits(sum.trainable_parameters),
                      short_count(sum.trainable_parameters));
  text += fmt::format("            backbone {} ({}), heads {} ({})\n",
                      group_digits(sum.backbone_parameters), short_count(sum.backbone_parameters),
                      group_digits(sum.head_parameters), short_count(sum.head_parameters));
  text += fmt::format("MACs        {} ({}) for one image\n", group_digits(sum.macs),
                      short_macs(sum.macs));
  text += fmt::format("            backbone {} ({}), heads {} ({})\n",
                      group_digits(sum.backbone_macs), short_macs(sum.backbone_macs),
                      group_digits(sum.head_macs), short_macs(sum.head_macs));
  text +=
      "MACs: multiply-accumulates of convolutions, transposed convolutions and fully "
      "connected layers;\npooling, ReLU, dropout, crops and sums count 0.\n";
  return text;
}

}  // namespace dsn::nets
