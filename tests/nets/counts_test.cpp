// Layer-table totals against independent counts: tools/count_dsn_vgg.py (written from the
// Caffe definition, not from this code), torchvision's published VGG-16 figures, and the
// map and head sizes of the DSN-VGG-Face reference table at 224 x 224.
#include <cmath>
#include <map>
#include <string>

#include <doctest/doctest.h>

#include "nets/config.h"
#include "nets/emotion_net.h"
#include "nets/summary.h"
#include "tests/nets/support.h"

namespace dsn::nets {
namespace {

// Printed by `python3 tools/count_dsn_vgg.py`.
constexpr std::int64_t kDsn224BackboneParameters = 14714688;
constexpr std::int64_t kDsn224HeadParameters = 13135673;
constexpr std::int64_t kDsn224Parameters = 27850361;
constexpr std::int64_t kDsn224Trainable = 27837705;
constexpr std::int64_t kDsn224BackboneMacs = 16566792192;
constexpr std::int64_t kDsn224HeadMacs = 8266359522;
constexpr std::int64_t kDsn224Macs = 24833151714;

constexpr std::int64_t kDsnSmallBackboneParameters = 15660;
constexpr std::int64_t kDsnSmallHeadParameters = 101960;
constexpr std::int64_t kDsnSmallParameters = 117620;
constexpr std::int64_t kDsnSmallTrainable = 104964;
constexpr std::int64_t kDsnSmallBackboneMacs = 3625344;
constexpr std::int64_t kDsnSmallHeadMacs = 1436549;
constexpr std::int64_t kDsnSmallMacs = 5061893;

constexpr std::int64_t kVgg224ConvMacs = 15346630656;
constexpr std::int64_t kVgg224Macs = 15466196992;

std::map<std::string, LayerRow> rows_by_name(const std::vector<LayerRow>& rows) {
  std::map<std::string, LayerRow> result;
  for (const LayerRow& row : rows) result[row.name] = row;
  return result;
}

std::int64_t parameter_count(EmotionNet& net) {
  std::int64_t count = 0;
  for (const auto& [name, parameter] : net.named_parameters()) count += parameter->value.numel();
  return count;
}

// Map and head sizes of the reference's DSN-VGG-Face table at 224 x 224.
void check_reference_sizes(const std::map<std::string, LayerRow>& rows) {
  CHECK(rows.at("conv1_2").output == Shape{1, 64, 232, 232});
  CHECK(rows.at("pool1").output == Shape{1, 64, 116, 116});
  CHECK(rows.at("pool2").output == Shape{1, 128, 58, 58});
  CHECK(rows.at("pool3").output == Shape{1, 256, 29, 29});
  CHECK(rows.at("pool4").output == Shape{1, 512, 15, 15});
  CHECK(rows.at("pool5").output == Shape{1, 512, 8, 8});
  CHECK(rows.at("pool5a").output == Shape{1, 512, 8, 8});

  // Score map sizes A(m) and side FC inputs of the reference: 8, 15, 29, 58, 116, 232.
  const std::int64_t sizes[] = {0, 232, 116, 58, 29, 15, 8};
  for (int m = 1; m <= 6; ++m) {
    CAPTURE(m);
    const std::string side = "side" + std::to_string(m);
    const std::int64_t size = sizes[m];
    CHECK(rows.at(side + ".score").output == Shape{1, 1, size, size});
    CHECK(rows.at(side + ".fc").parameters == size * size * 7 + 7);
  }
  CHECK(rows.at("side6.conv").output == Shape{1, 256, 8, 8});
  CHECK(rows.at("side4.conv").output == Shape{1, 128, 29, 29});
  CHECK(rows.at("side1.conv").output == Shape{1, 64, 232, 232});
  CHECK(rows.at("fuse").output == Shape{1, 1, 224, 224});
  CHECK(rows.at("fuse_fc").parameters == 50176 * 7 + 7);

  // Upsampling factors of the reference table, visible in the kernel sizes (2f x 2f).
  CHECK(rows.at("up6_to_4").parameters == 8 * 8);
  CHECK(rows.at("up5_to_4").parameters == 4 * 4);
  CHECK(rows.at("up6_to_1").parameters == 64 * 64);
  CHECK(rows.at("up3_to_1").parameters == 8 * 8);
  CHECK(rows.at("up4_to_2").parameters == 8 * 8);
  CHECK(rows.at("up2_to_fuse").parameters == 4 * 4);
  CHECK(rows.at("up6_to_fuse").output == Shape{1, 1, 288, 288});  // (8 + 1) * 32
}

TEST_CASE("dsn_vgg_face 224 table matches the script") {
  const NetConfig config = load_config(test::configs_dir() / "dsn_vgg_face.yaml");
  const auto net = make_net(config);
  const std::vector<LayerRow> rows = layer_table(*net);
  const TableTotals sum = totals(rows);

  CHECK(sum.backbone_parameters == kDsn224BackboneParameters);
  CHECK(sum.head_parameters == kDsn224HeadParameters);
  CHECK(sum.parameters == kDsn224Parameters);
  CHECK(sum.trainable_parameters == kDsn224Trainable);
  CHECK(sum.backbone_macs == kDsn224BackboneMacs);
  CHECK(sum.head_macs == kDsn224HeadMacs);
  CHECK(sum.macs == kDsn224Macs);
  // Every parameter appears in exactly one row.
  CHECK(parameter_count(*net) == sum.parameters);

  // The reference's rounded figures: about 24.8 GMAC (16.6 backbone, 8.3 heads), 27.9 M.
  CHECK(std::abs(static_cast<double>(sum.macs) - 24.8e9) < 0.05e9);
  CHECK(std::abs(static_cast<double>(sum.backbone_macs) - 16.6e9) < 0.05e9);
  CHECK(std::abs(static_cast<double>(sum.head_macs) - 8.3e9) < 0.05e9);
  CHECK(std::abs(static_cast<double>(sum.parameters) - 27.9e6) < 0.05e6);

  const std::string text = format_table(rows);
  CHECK_MESSAGE(test::contains(text, "24.8 GMAC"), text);
  CHECK_MESSAGE(test::contains(text, "27.9 M"), text);

  check_reference_sizes(rows_by_name(rows));
}

TEST_CASE("dsn_vgg_face small table matches the script") {
  const NetConfig config = load_config(test::configs_dir() / "dsn_vgg_face_small.yaml");
  const auto net = make_net(config);
  const TableTotals sum = totals(layer_table(*net));
  CHECK(sum.backbone_parameters == kDsnSmallBackboneParameters);
  CHECK(sum.head_parameters == kDsnSmallHeadParameters);
  CHECK(sum.parameters == kDsnSmallParameters);
  CHECK(sum.trainable_parameters == kDsnSmallTrainable);
  CHECK(sum.backbone_macs == kDsnSmallBackboneMacs);
  CHECK(sum.head_macs == kDsnSmallHeadMacs);
  CHECK(sum.macs == kDsnSmallMacs);
  CHECK(parameter_count(*net) == sum.parameters);
}

TEST_CASE("short_count formats") {
  CHECK(short_count(950) == "950");
  CHECK(short_count(1500) == "1.5 k");
  CHECK(short_count(27850361) == "27.9 M");
  CHECK(short_count(24833151714) == "24.8 G");
}

TEST_CASE("shapes-only table equals executed table") {
  const auto net = make_net(test::small_dsn_config());
  const std::vector<LayerRow> shapes_only = layer_table(*net, false);
  const std::vector<LayerRow> executed = layer_table(*net, true);
  REQUIRE(shapes_only.size() == executed.size());
  for (std::size_t i = 0; i < executed.size(); ++i) {
    CAPTURE(executed[i].name);
    CHECK(shapes_only[i].name == executed[i].name);
    CHECK(shapes_only[i].type == executed[i].type);
    CHECK(shapes_only[i].output == executed[i].output);
    CHECK(shapes_only[i].parameters == executed[i].parameters);
    CHECK(shapes_only[i].macs == executed[i].macs);
  }
  CHECK(net->is_training());  // layer_table restores the mode
}

// torchvision's vgg16 page (pytorch.org/vision/stable/models/generated/torchvision.models.vgg16
// .html) lists 138,357,544 parameters and 15.47 GFLOPS, which counts MACs, at 224 x 224. Its
// fc8 holds 4096 x 1000 + 1000 = 4,097,000 of them, so fc8 to 7 classes (28,679) gives
// 134,289,223. The convolutions hold 14,714,688, and the FC layers cost 123.6 M MACs.
TEST_CASE("vgg_face 224 matches torchvision vgg16") {
  const NetConfig config = load_config(test::configs_dir() / "vgg_face.yaml");
  const auto net = make_net(config);
  const std::vector<LayerRow> rows = layer_table(*net);
  const TableTotals sum = totals(rows);
  const auto by_name = rows_by_name(rows);

  CHECK(sum.backbone_parameters == 14714688);
  CHECK(sum.parameters == 138357544 - 4097000 + 28679);
  CHECK(sum.trainable_parameters == sum.parameters);
  CHECK(parameter_count(*net) == sum.parameters);
  CHECK(by_name.at("pool5").output == Shape{1, 512, 7, 7});

  CHECK(sum.backbone_macs == kVgg224ConvMacs);
  CHECK(sum.macs == kVgg224Macs);
  const std::int64_t fc_macs_1000 = 25088 * 4096 + 4096 * 4096 + 4096 * 1000;
  CHECK(sum.macs - by_name.at("fc8").macs + 4096 * 1000 == kVgg224ConvMacs + fc_macs_1000);
  CHECK(std::abs(static_cast<double>(fc_macs_1000) - 123.6e6) < 0.05e6);
  // Published to two decimals: 15.47 G.
  const double macs_1000 = static_cast<double>(kVgg224ConvMacs + fc_macs_1000);
  CHECK(std::abs(macs_1000 - 15.47e9) < 0.005e9);
}

}  // namespace
}  // namespace dsn::nets
