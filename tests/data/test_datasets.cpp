// Dataset readers on generated synthetic sets and on real rows of the VisA split file and the MVTec
// meta file (committed excerpts, tests/fixtures/data/README.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_util.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/data/datasets.h"
#include "vcpclip/data/synthetic.h"

using vcpclip::testing::error_of;

namespace fs = std::filesystem;
using namespace vcpclip::data;

namespace {

const std::string kFixtures = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/data/";

std::string tmpdir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("vcpclip_test_datasets_" + name);
  fs::remove_all(p);
  return p.string();
}

SynthOptions small(const std::string& layout, const std::string& out) {
  SynthOptions o;
  o.layout = layout;
  o.out = out;
  o.classes = 5;
  o.images = 10;
  o.train_images = 3;
  o.size = 32;
  o.seed = 7;
  return o;
}

}  // namespace

TEST(Datasets, MvtecAndFolderReadersOnSynthetic) {
  const std::string root = tmpdir("mvtec");
  auto sum = generate_synthetic(small("mvtec", root));
  EXPECT_EQ(sum.classes, (std::vector<std::string>{"stripes", "fabric", "disk", "screw", "stripes_2"}));
  using Reader = DatasetIndex (*)(const std::string&, const std::string&, const std::vector<std::string>&);
  for (Reader reader : {Reader(&read_mvtec), Reader(&read_folder)}) {
    DatasetIndex idx = reader(root, "test", {});
    // MVTec reader lists classes sorted by name.
    EXPECT_EQ(idx.classes, (std::vector<std::string>{"disk", "fabric", "screw", "stripes", "stripes_2"}));
    ASSERT_EQ(idx.samples.size(), 50u);
    std::map<std::string, int> normal, anomalous;
    for (const auto& s : idx.samples) {
      (s.anomaly ? anomalous : normal)[s.cls_name]++;
      if (s.anomaly) {
        EXPECT_NE(s.specie_name, "good");
        EXPECT_TRUE(fs::exists(s.mask_path)) << s.mask_path;
        EXPECT_EQ(fs::path(s.mask_path).filename().string(), fs::path(s.image_path).stem().string() + "_mask.png");
      } else {
        EXPECT_EQ(s.specie_name, "good");
        EXPECT_EQ(s.mask_path, "");
      }
    }
    for (const auto& c : idx.classes) {
      EXPECT_EQ(normal[c], 4) << c;
      EXPECT_EQ(anomalous[c], 6) << c;
    }
    EXPECT_EQ(reader(root, "train", {}).samples.size(), 15u);
  }
  auto f = read_mvtec(root, "test", {"screw", "disk"});
  EXPECT_EQ(f.classes, (std::vector<std::string>{"disk", "screw"}));
  EXPECT_EQ(f.samples.size(), 20u);
  EXPECT_EQ(error_of([&] { read_mvtec(root, "test", {"bottle"}); }),
            "unknown class 'bottle' in the class filter for MVTec AD layout at " + root +
                "; available: disk, fabric, screw, stripes, stripes_2");
  EXPECT_EQ(error_of([&] { read_mvtec(root + "/nope", "test", {}); }),
            "MVTec AD root not found (expected a directory): " + root + "/nope");
  EXPECT_EQ(error_of([&] { read_mvtec(root, "val", {}); }), "split must be 'train' or 'test', found 'val'");

  // Folder reader: masks named like the image (no _mask suffix), JPEG images.
  const fs::path g = fs::path(root) / "disk" / "ground_truth" / "missing";
  for (const auto& e : fs::directory_iterator(g)) {
    const std::string n = e.path().filename().string();
    fs::rename(e.path(), g / (n.substr(0, n.size() - std::string("_mask.png").size()) + ".png"));
  }
  for (const auto& s : read_folder(root, "test", {"disk"}).samples)
    if (s.specie_name == "missing") EXPECT_TRUE(fs::exists(s.mask_path)) << s.mask_path;
  fs::remove_all(root);
}

TEST(Datasets, VisaReaderOnSynthetic) {
  const std::string root = tmpdir("visa");
  auto o = small("visa", root);
  o.set = "target";
  generate_synthetic(o);
  DatasetIndex idx = read_visa(root, "", "test", {});
  EXPECT_EQ(idx.classes, (std::vector<std::string>{"checker", "wood", "plate", "bottle", "checker_2"}));
  ASSERT_EQ(idx.samples.size(), 50u);
  int anomalous = 0;
  for (const auto& s : idx.samples) {
    EXPECT_TRUE(fs::exists(s.image_path)) << s.image_path;
    if (s.anomaly) {
      ++anomalous;
      EXPECT_EQ(s.specie_name, "anomaly");
      EXPECT_TRUE(fs::exists(s.mask_path)) << s.mask_path;
    } else {
      EXPECT_EQ(s.mask_path, "");
    }
  }
  EXPECT_EQ(anomalous, 30);
  EXPECT_EQ(read_visa(root, "", "train", {"wood"}).samples.size(), 3u);

  DataOptions d;
  d.layout = "visa";
  d.root = root;
  d.classes = {"plate"};
  EXPECT_EQ(read_samples(d).size(), 10u);

  // Malformed rows are reported with file and line.
  const std::string bad = root + "/bad.csv";
  std::ofstream(bad) << "object,split,label,image,mask\r\nwood,test,broken,wood/a.JPG,\r\n";
  EXPECT_EQ(error_of([&] { read_visa(root, bad, "test", {}); }),
            bad + ":2: label must be normal or anomaly, found 'broken'");
  std::ofstream(bad) << "object,split,label,image\nwood,test,normal,wood/a.JPG\n";
  EXPECT_EQ(error_of([&] { read_visa(root, bad, "test", {}); }),
            "unexpected header in VisA split file " + bad +
                ": expected 'object,split,label,image,mask', found 'object,split,label,image'");
  fs::remove_all(root);
}

TEST(Datasets, MetaReaderOnWrittenFile) {
  const std::string root = tmpdir("meta");
  fs::create_directories(root);
  nlohmann::ordered_json j;
  j["test"]["zeta"] = {
      {{"img_path", "z/1.png"}, {"mask_path", ""}, {"cls_name", "zeta"}, {"specie_name", "good"}, {"anomaly", 0}},
      {{"img_path", "z/2.png"},
       {"mask_path", "z/2_mask.png"},
       {"cls_name", "zeta"},
       {"specie_name", "cut"},
       {"anomaly", 1}}};
  j["test"]["alpha"] = {
      {{"img_path", "a/1.png"}, {"mask_path", ""}, {"cls_name", "alpha"}, {"specie_name", "good"}, {"anomaly", 0}}};
  j["train"]["zeta"] = nlohmann::ordered_json::array();
  std::ofstream(root + "/meta_toy.json") << j.dump();
  auto idx = read_meta(root, "", "test", {});
  EXPECT_EQ(idx.classes, (std::vector<std::string>{"zeta", "alpha"}));  // file order, as the reference
  ASSERT_EQ(idx.samples.size(), 3u);
  EXPECT_EQ(idx.samples[1].image_path, (fs::path(root) / "z/2.png").string());
  EXPECT_EQ(idx.samples[1].mask_path, (fs::path(root) / "z/2_mask.png").string());
  EXPECT_EQ(idx.samples[1].specie_name, "cut");
  EXPECT_EQ(idx.samples[0].mask_path, "");
  EXPECT_EQ(read_meta(root, "", "train", {}).samples.size(), 0u);
  std::ofstream(root + "/meta_two.json") << "{}";
  EXPECT_EQ(error_of([&] { read_meta(root, "", "test", {}); }),
            "meta layout: expected exactly one meta_<name>.json in " + root + " (or give `meta:`), found 2: " + root +
                "/meta_toy.json, " + root + "/meta_two.json");
  EXPECT_EQ(error_of([&] { read_meta(root, root + "/meta_two.json", "test", {}); }),
            "meta file " + root + "/meta_two.json has no 'test' split");
  fs::remove_all(root);
}

TEST(Datasets, RealVisaSplitFile) {
  // Real rows of VisA's split file (tests/fixtures/data/README.md): 3 objects, CRLF line ends.
  const std::string csv = kFixtures + "visa_1cls_excerpt.csv";
  // Independent count with a plain line parser.
  std::ifstream in(csv);
  ASSERT_TRUE(in) << csv;
  std::string line;
  std::getline(in, line);
  std::map<std::string, std::map<std::string, int>> counts;  // object -> "split/label" -> n
  int64_t rows = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::stringstream ss(line);
    std::string obj, split, label;
    std::getline(ss, obj, ',');
    std::getline(ss, split, ',');
    std::getline(ss, label, ',');
    counts[obj][split + "/" + label]++;
    ++rows;
  }
  EXPECT_EQ(rows, 18);
  EXPECT_EQ(counts.size(), 3u);
  // The reader needs a root directory; the images themselves are not needed to list samples.
  const std::string root = tmpdir("realvisa");
  fs::create_directories(root);
  for (const std::string split : {"train", "test"}) {
    auto idx = read_visa(root, csv, split, {});
    EXPECT_EQ(idx.classes, (std::vector<std::string>{"candle", "pcb4", "pipe_fryum"})) << split;
    std::map<std::string, int> normal, anomalous;
    for (const auto& s : idx.samples) (s.anomaly ? anomalous : normal)[s.cls_name]++;
    for (const auto& [obj, c] : counts) {
      EXPECT_EQ(normal[obj], c.count(split + "/normal") ? c.at(split + "/normal") : 0) << obj << " " << split;
      EXPECT_EQ(anomalous[obj], c.count(split + "/anomaly") ? c.at(split + "/anomaly") : 0) << obj << " " << split;
    }
    EXPECT_EQ(idx.samples.size(), split == "train" ? 6u : 12u) << split;
  }
  auto test = read_visa(root, csv, "test", {"pcb4"});
  ASSERT_EQ(test.samples.size(), 4u);
  // File order is kept; masks only for anomaly rows.
  EXPECT_EQ(test.samples.front().image_path, (fs::path(root) / "pcb4/Data/Images/Normal/0107.JPG").string());
  EXPECT_EQ(test.samples.front().mask_path, "");
  EXPECT_EQ(test.samples[2].image_path, (fs::path(root) / "pcb4/Data/Images/Anomaly/000.JPG").string());
  EXPECT_EQ(test.samples[2].mask_path, (fs::path(root) / "pcb4/Data/Masks/Anomaly/000.png").string());
  EXPECT_EQ(test.samples[2].anomaly, 1);
  fs::remove_all(root);
}

TEST(Datasets, RealMvtecMetaFile) {
  // Real entries of the reference's MVTec AD meta file (tests/fixtures/data/README.md).
  const std::string meta = kFixtures + "meta_mvtec_excerpt.json";
  std::ifstream in(meta);
  ASSERT_TRUE(in) << meta;
  const auto j = nlohmann::json::parse(in);
  const std::string root = tmpdir("realmeta");
  fs::create_directories(root);
  auto idx = read_meta(root, meta, "test", {});
  EXPECT_EQ(idx.samples.size(), 12u);
  EXPECT_EQ(idx.classes, (std::vector<std::string>{"bottle", "carpet", "zipper"}));
  std::map<std::string, int> per_class, anomalous;
  for (const auto& s : idx.samples) {
    per_class[s.cls_name]++;
    anomalous[s.cls_name] += s.anomaly;
    EXPECT_EQ(s.mask_path.empty(), s.anomaly == 0);
  }
  for (const auto& [cls, items] : j["test"].items()) {
    EXPECT_EQ(per_class[cls], static_cast<int>(items.size())) << cls;
    int a = 0;
    for (const auto& it : items) a += it["anomaly"].get<int>();
    EXPECT_EQ(anomalous[cls], a) << cls;
  }
  EXPECT_EQ(anomalous["carpet"], 2);
  // File order; paths joined to the root as the reference does.
  EXPECT_EQ(idx.samples[1].image_path,
            (fs::path(root) / "mvtec/bottle/test/anomaly/mvtec_contamination_000266.bmp").string());
  EXPECT_EQ(idx.samples[1].specie_name, "anomaly");
  EXPECT_EQ(read_meta(root, meta, "train", {}).samples.size(), 4u);
  EXPECT_EQ(read_meta(root, meta, "test", {"bottle", "zipper"}).samples.size(), 8u);
  fs::remove_all(root);
}

TEST(Datasets, ParseDataOptions) {
  auto cfg = vcpclip::io::ConfigNode::from_string("data: {layout: mvtec, root: /d, classes: [a, b]}", "<test>");
  auto node = cfg.section("data");
  DataOptions o = parse_data_options(node, true);
  EXPECT_EQ(o.layout, "mvtec");
  EXPECT_EQ(o.root, "/d");
  EXPECT_EQ(o.split, "test");
  EXPECT_EQ(o.classes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(o.workers, 2);
  EXPECT_EQ(o.prefetch, 2);
  EXPECT_FALSE(o.skip_bad);
  EXPECT_TRUE(o.augment);
  EXPECT_DOUBLE_EQ(o.mosaic_p, 0.2);

  auto cfg2 = vcpclip::io::ConfigNode::from_string("data: {layout: visa, root: /v}", "<test>");
  auto n2 = cfg2.section("data");
  DataOptions v = parse_data_options(n2, true);
  EXPECT_TRUE(v.augment);
  EXPECT_DOUBLE_EQ(v.mosaic_p, 0.0);
  auto n3 = cfg2.section("data");
  EXPECT_FALSE(parse_data_options(n3, false).augment);

  auto bad = vcpclip::io::ConfigNode::from_string("data: {layout: coco, root: /v}", "<test>");
  auto nb = bad.section("data");
  EXPECT_EQ(error_of([&] { parse_data_options(nb); }),
            "expected mvtec, visa, meta or folder for " + nb.where("layout") + ", found 'coco'");
  auto unk = vcpclip::io::ConfigNode::from_string("data: {layout: visa, root: /v, roots: 1}", "<test>");
  auto nu = unk.section("data");
  EXPECT_NE(error_of([&] { parse_data_options(nu); }).find("roots"), std::string::npos);
}
