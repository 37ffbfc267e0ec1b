// Metrics against golden values from scikit-learn, the reference cal_pro_score and an independent
// exact AUPRO (scripts/golden/make_golden_metrics.py), plus hand-checked small cases and error paths.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/eval/accumulator.h"
#include "vcpclip/eval/metrics.h"

using namespace vcpclip::eval;

namespace {

const std::string kDir = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/metrics/";

template <typename T>
std::vector<T> read_raw(const std::string& path, size_t n) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  std::vector<T> v(n);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * sizeof(T)));
  EXPECT_EQ(size_t(f.gcount()), n * sizeof(T)) << path;
  return v;
}

nlohmann::json expected() {
  std::ifstream f(kDir + "expected.json");
  return nlohmann::json::parse(f);
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const vcpclip::Error& e) {
    return e.what();
  }
  return "(no error)";
}

ClassAccumulator load_case(const std::string& name, const nlohmann::json& c) {
  const auto shape = c["shape"].get<std::vector<int64_t>>();
  const size_t n = shape[0], hw = shape[1] * shape[2];
  auto maps = read_raw<float>(kDir + name + ".maps.f32", n * hw);
  auto masks = read_raw<uint8_t>(kDir + name + ".masks.u8", n * hw);
  auto scores = read_raw<double>(kDir + name + ".scores.f64", n);
  auto labels = read_raw<uint8_t>(kDir + name + ".labels.u8", n);
  ClassAccumulator acc(name);
  for (size_t i = 0; i < n; ++i)
    acc.add(name + "/" + std::to_string(i), maps.data() + i * hw, masks.data() + i * hw, shape[1], shape[2], scores[i],
            labels[i]);
  acc.normalize();
  return acc;
}

void expect_metric(const Metric& got, const nlohmann::json& want, const std::string& what) {
  if (want.is_null()) {
    EXPECT_FALSE(got.has_value()) << what << " should be undefined, got " << *got;
  } else {
    ASSERT_TRUE(got.has_value()) << what << " undefined, expected " << want;
    EXPECT_NEAR(*got, want.get<double>(), 1e-6) << what;
  }
}

}  // namespace

TEST(Metrics, MatchGoldenForEveryCaseChunkingAndAuproMode) {
  const auto exp = expected();
  for (const auto& [name, c] : exp["cases"].items()) {
    const auto acc = load_case(name, c);
    const auto& e = c["expected"];
    for (int64_t chunk : {int64_t(0), int64_t(4096), int64_t(1) << 40}) {
      for (AuproMode mode : {AuproMode::kExact, AuproMode::kReference}) {
        MetricsOptions o;
        o.table_bin_min = chunk;
        o.aupro = mode;
        const auto m = acc.compute(o);
        const std::string w = name + " chunk " + std::to_string(chunk) + " " + to_string(mode) + ": ";
        expect_metric(m.pixel.auroc, e["pixel_auroc"], w + "pixel_auroc");
        expect_metric(m.pixel.ap, e["pixel_ap"], w + "pixel_ap");
        expect_metric(m.pixel.f1_max, e["pixel_f1_max"], w + "pixel_f1_max");
        expect_metric(m.pixel.f1_threshold, e["pixel_f1_threshold"], w + "pixel_f1_threshold");
        expect_metric(m.pixel.iou, e["pixel_iou"], w + "pixel_iou");
        expect_metric(m.pixel.aupro, e[mode == AuproMode::kExact ? "aupro_exact" : "aupro_reference"], w + "aupro");
        expect_metric(m.image.auroc, e["image_auroc"], w + "image_auroc");
        expect_metric(m.image.ap, e["image_ap"], w + "image_ap");
        expect_metric(m.image.f1_max, e["image_f1_max"], w + "image_f1_max");
      }
    }
  }
}

TEST(Metrics, AllNormalClassWarnsAndLeavesPixelMetricsNull) {
  const auto exp = expected();
  const auto acc = load_case("allnormal", exp["cases"]["allnormal"]);
  const auto m = acc.compute(MetricsOptions{});
  ASSERT_EQ(m.warnings.size(), 2u);
  EXPECT_EQ(m.warnings[0],
            "class 'allnormal': no defect pixel in the ground truth; pixel AUROC, AUPRO, AP, F1-max and IoU are "
            "undefined (null)");
  EXPECT_EQ(m.warnings[1], "class 'allnormal': all images are normal; image AUROC, AP and F1-max are undefined (null)");
  EXPECT_EQ(m.num_images, 3);
  EXPECT_EQ(m.num_anomalous, 0);
}

TEST(Metrics, HandCheckedTiesAndSinglePixelRegions) {
  // Scores 0.9 (defect), 0.5 (defect), 0.5 (normal), 0.1 (normal) in one 2x2 map; the two
  // defect pixels are diagonal neighbours: one 8-connected region of area 2.
  const float map2[4] = {0.9f, 0.5f, 0.1f, 0.5f};
  const uint8_t mask2[4] = {1, 0, 0, 1};
  ClassAccumulator acc("hand");
  acc.add("a", map2, mask2, 2, 2, 1.0, 1);
  acc.add("b", map2, nullptr, 2, 2, 1.0, 0);  // tie between the two image scores
  const auto m = acc.compute(MetricsOptions{});
  // Pixels: defect {0.9, 0.5}, normal {0.5, 0.1, 0.9, 0.5, 0.1, 0.5}. Distinct thresholds
  // 0.9: tp 1 fp 1; 0.5: tp 2 fp 4; 0.1: tp 2 fp 6.
  // ROC (fpr, tpr): (0,0) (1/6,1/2) (4/6,1) (1,1): area = 1/24 + 3/6*3/4 + 2/6 = 0.75
  EXPECT_NEAR(*m.pixel.auroc, 0.75, 1e-12);
  // AP = 1/2*1/2 + 1/2*2/6 = 5/12
  EXPECT_NEAR(*m.pixel.ap, 5.0 / 12, 1e-12);
  // F1: t=0.9: P=1/2,R=1/2 → 0.5; t=0.5: P=1/3,R=1 → 0.5 (tie → lowest threshold 0.5)
  EXPECT_NEAR(*m.pixel.f1_max, 0.5, 1e-8);
  EXPECT_FLOAT_EQ(float(*m.pixel.f1_threshold), 0.5f);
  // IoU at score > 0.5: tp 1, fp 1 → 1 / (2 + 1)
  EXPECT_NEAR(*m.pixel.iou, 1.0 / 3, 1e-12);
  // Exact PRO: (0,0) → (1/6, 1/2) → (4/6, 1): area to 0.3 = 1/6*1/4 + (0.3-1/6)*(1/2 + pro(0.3))/2
  const double pro03 = 0.5 + 0.5 * (0.3 - 1.0 / 6) / (0.5);
  EXPECT_NEAR(*m.pixel.aupro, (1.0 / 24 + (0.3 - 1.0 / 6) * (0.5 + pro03) / 2) / 0.3, 1e-12);
  // Images: equal scores, one of each label → AUROC 0.5, AP 0.5, F1 2/3
  EXPECT_NEAR(*m.image.auroc, 0.5, 1e-12);
  EXPECT_NEAR(*m.image.ap, 0.5, 1e-12);
  EXPECT_NEAR(*m.image.f1_max, 2.0 / 3, 1e-12);
}

TEST(Metrics, SortableKeysOrderFloats) {
  const float v[] = {-INFINITY, -3.5f, -1e-30f, -0.0f, 0.0f, 1e-30f, 0.25f, 7.0f, INFINITY};
  for (size_t i = 0; i + 1 < sizeof(v) / sizeof(v[0]); ++i) {
    EXPECT_LE(sortable_key(v[i]), sortable_key(v[i + 1])) << v[i];
    EXPECT_EQ(key_to_float(sortable_key(v[i])), v[i]);
  }
  EXPECT_EQ(sortable_key(-0.0f), sortable_key(0.0f));
}

TEST(Metrics, BadInputErrors) {
  ClassAccumulator acc("bottle");
  std::vector<float> map(12, 0.5f);
  map[7] = NAN;
  EXPECT_EQ(error_of([&] { acc.add("bottle/broken/000", map.data(), nullptr, 3, 4, 0.1, 0); }),
            "class 'bottle', image 'bottle/broken/000': anomaly map contains NaN (first at row 1, column 3)");
  at::Tensor m = at::rand({8, 8});
  at::Tensor g = at::zeros({8, 9});
  EXPECT_EQ(error_of([&] { acc.add("bottle/good/001", m, g, 0.1, 0); }),
            "class 'bottle', image 'bottle/good/001': mask size [8, 9] does not match anomaly map size [8, 8]");
  EXPECT_EQ(error_of([&] { acc.compute(MetricsOptions{}); }), "class 'bottle' has no images to evaluate");
  EXPECT_EQ(error_of([] { parse_aupro_mode("approx"); }), "--aupro: expected 'exact' or 'reference', found 'approx'");
}

TEST(Metrics, TensorAddBinarisesMaskAndMatchesRawAdd) {
  at::manual_seed(3);
  at::Tensor m = at::rand({16, 16});
  at::Tensor g = at::rand({16, 16});
  ClassAccumulator a("t"), b("t");
  a.add("x", m, g, 0.3, 1);
  auto gb = (g > 0.5).to(at::kByte).contiguous();
  b.add("x", m.contiguous().data_ptr<float>(), gb.data_ptr<uint8_t>(), 16, 16, 0.3, 1);
  a.add("y", m.flip(0), at::Tensor(), 0.1, 0);
  auto mf = m.flip(0).contiguous();
  b.add("y", mf.data_ptr<float>(), nullptr, 16, 16, 0.1, 0);
  const auto ma = a.compute(MetricsOptions{}), mb = b.compute(MetricsOptions{});
  EXPECT_EQ(*ma.pixel.auroc, *mb.pixel.auroc);
  EXPECT_EQ(*ma.pixel.aupro, *mb.pixel.aupro);
  EXPECT_EQ(*ma.image.auroc, 1.0);
}
