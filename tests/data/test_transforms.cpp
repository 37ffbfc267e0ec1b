// Preprocessing vs PIL / the reference transform (fixtures: scripts/golden/make_golden_transforms.py).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "support/test_util.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/data/transforms.h"

namespace fs = std::filesystem;
using namespace vcpclip::data;
using vcpclip::testing::error_of;

namespace {

const std::string kDir = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/data/transforms/";

// Same integer formula as pattern() in scripts/golden/make_golden_transforms.py.
cv::Mat pattern(int w, int h, int channels, uint32_t seed) {
  cv::Mat out(h, w, channels == 1 ? CV_8UC1 : CV_8UC3);
  const uint32_t seed_term = static_cast<uint32_t>((static_cast<uint64_t>(seed) * 2654435761ull) & 0xFFFFFFFFull);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) {
        uint32_t hsh =
            (uint32_t(x) * 73856093u) ^ (uint32_t(y) * 19349663u) ^ (uint32_t(c + 1) * 83492791u) ^ seed_term;
        hsh ^= hsh >> 13;
        hsh *= 0x5BD1E995u;
        hsh ^= hsh >> 15;
        const uint32_t v = (uint32_t(x) * (3 + c) + uint32_t(y) * (5 + 2 * c) + (hsh & 63u)) & 255u;
        out.ptr<uint8_t>(y)[x * channels + c] = static_cast<uint8_t>(v);
      }
  return out;
}

cv::Mat mask_pattern(int w, int h, uint8_t value) {
  cv::Mat m(h, w, CV_8UC1, cv::Scalar(0));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double dx = x - w * 0.3, dy = y - h * 0.35, r = std::min(w, h) * 0.18;
      bool on = dx * dx + dy * dy < r * r;
      on |= x >= int(w * 0.7) && x < int(w * 0.7) + 3 && y >= h / 8 && y < h - h / 8;
      on |= x == y + 5;
      on |= x >= w / 2 && x < w / 2 + 4 && y >= int(h * 0.75) && y < int(h * 0.75) + 4;
      if (on) m.at<uint8_t>(y, x) = value;
    }
  return m;
}

nlohmann::json manifest() {
  std::ifstream f(kDir + "manifest.json");
  EXPECT_TRUE(f.good()) << "missing " << kDir << "manifest.json";
  return nlohmann::json::parse(f);
}

cv::Mat read_golden(const std::string& file) {
  cv::Mat m = cv::imread(kDir + file, cv::IMREAD_UNCHANGED);
  EXPECT_FALSE(m.empty()) << file;
  if (m.channels() == 3) cv::cvtColor(m, m, cv::COLOR_BGR2RGB);
  return m;
}

double max_abs_diff(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat d;
  cv::absdiff(a, b, d);
  double mx = 0;
  cv::minMaxLoc(d.reshape(1), nullptr, &mx);
  return mx;
}

}  // namespace

TEST(Transforms, BicubicResizeMatchesPil) {
  auto man = manifest();
  ASSERT_GE(man["image_resize"].size(), 6u);
  for (const auto& c : man["image_resize"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    cv::Mat in = pattern(c["width"], c["height"], c["channels"], c["seed"]);
    cv::Mat out = resize_bicubic_pil(in, c["out_width"], c["out_height"]);
    ASSERT_EQ(out.cols, c["out_width"].get<int>());
    ASSERT_EQ(out.rows, c["out_height"].get<int>());
    ASSERT_EQ(out.channels(), c["channels"].get<int>());
    cv::Mat golden = read_golden(c["file"]);
    cv::Mat cmp = out;
    if (c.contains("crop")) {
      auto r = c["crop"];
      cmp = out(cv::Rect(r[0], r[1], r[2], r[3]));
    }
    // Byte-exact (docs/design.md, tolerances): every pixel of the golden region, and the sums below
    // over the whole output.
    EXPECT_EQ(max_abs_diff(cmp, golden), 0.0);
    int64_t total = 0, weighted = 0, i = 0;
    cv::Mat flat = out.reshape(1, 1);
    for (int k = 0; k < flat.cols; ++k, ++i) {
      const int64_t v = flat.at<uint8_t>(0, k);
      total += v;
      weighted += v * ((i % 251) + 1);
    }
    EXPECT_EQ(total, c["sum"].get<int64_t>());
    EXPECT_EQ(weighted, c["weighted_sum"].get<int64_t>());
  }
}

TEST(Transforms, MaskMatchesReferenceTargetTransform) {
  auto man = manifest();
  ASSERT_EQ(man["mask"].size(), 3u);
  for (const auto& c : man["mask"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    cv::Mat raw = mask_pattern(c["width"], c["height"], static_cast<uint8_t>(c["value"].get<int>()));
    at::Tensor m = preprocess_mask(raw, c["size"].get<int64_t>());
    ASSERT_EQ(m.sizes(), (std::vector<int64_t>{c["size"], c["size"]}));
    cv::Mat golden = read_golden(c["file"]);
    int64_t mismatches = 0, positives = 0;
    for (int y = 0; y < golden.rows; ++y)
      for (int x = 0; x < golden.cols; ++x) {
        const float v = m[y][x].item<float>();
        EXPECT_TRUE(v == 0.f || v == 1.f);
        positives += v > 0.5f;
        mismatches += (v > 0.5f) != (golden.at<uint8_t>(y, x) > 0);
      }
    EXPECT_EQ(mismatches, 0);
    EXPECT_EQ(positives, c["positives"].get<int64_t>());
    EXPECT_GT(positives, 0);
  }
}

TEST(Transforms, PreprocessImageMatchesReferenceTransform) {
  auto man = manifest();
  ASSERT_EQ(man["preprocess"].size(), 2u);
  for (const auto& c : man["preprocess"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    cv::Mat in = pattern(c["width"], c["height"], c["channels"], c["seed"]);
    if (in.channels() == 1) cv::cvtColor(in, in, cv::COLOR_GRAY2RGB);
    const int64_t s = c["size"];
    at::Tensor t = preprocess_image(in, s);
    ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, s, s}));
    ASSERT_EQ(t.dtype(), at::kFloat);
    std::ifstream f(kDir + c["file"].get<std::string>(), std::ios::binary);
    std::vector<float> golden(3 * s * s);
    f.read(reinterpret_cast<char*>(golden.data()), golden.size() * sizeof(float));
    ASSERT_TRUE(f.good());
    at::Tensor g = at::from_blob(golden.data(), {3, s, s}, at::kFloat);
    EXPECT_LE((t - g).abs().max().item<float>(), 1e-6f);
  }
}

TEST(Transforms, ReadAndLoadRoundTrip) {
  const fs::path dir = fs::temp_directory_path() / "vcpclip_test_transforms";
  fs::create_directories(dir);
  cv::Mat rgb = pattern(33, 21, 3, 9), bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  ASSERT_TRUE(cv::imwrite((dir / "a.png").string(), bgr));
  cv::Mat back = read_rgb((dir / "a.png").string());
  EXPECT_EQ(max_abs_diff(back, rgb), 0.0);
  at::Tensor t = load_image((dir / "a.png").string(), 16);
  EXPECT_TRUE(t.equal(preprocess_image(rgb, 16)));
  cv::Mat rt = denormalise_to_rgb(preprocess_image(rgb, 33));
  EXPECT_EQ(rt.size(), cv::Size(33, 33));

  // Grey PNG → RGB with three equal channels.
  cv::Mat grey = pattern(10, 12, 1, 3);
  ASSERT_TRUE(cv::imwrite((dir / "g.png").string(), grey));
  cv::Mat g3 = read_rgb((dir / "g.png").string());
  ASSERT_EQ(g3.type(), CV_8UC3);
  EXPECT_EQ(g3.at<cv::Vec3b>(5, 4)[0], grey.at<uint8_t>(5, 4));
  EXPECT_EQ(g3.at<cv::Vec3b>(5, 4)[2], grey.at<uint8_t>(5, 4));

  // Colour mask: PIL "L" conversion, then > 0.
  cv::Mat cm(4, 4, CV_8UC3, cv::Scalar(0, 0, 0));
  cm.at<cv::Vec3b>(1, 1) = cv::Vec3b(0, 0, 200);  // BGR red
  ASSERT_TRUE(cv::imwrite((dir / "m.png").string(), cm));
  cv::Mat m = read_mask((dir / "m.png").string());
  EXPECT_EQ(int(m.at<uint8_t>(1, 1)), (200 * 19595 + 0x8000) >> 16);
  EXPECT_EQ(int(m.at<uint8_t>(0, 0)), 0);
  EXPECT_EQ(load_mask("", 8).sum().item<float>(), 0.f);
  fs::remove_all(dir);
}

TEST(Transforms, ErrorsNameTheFile) {
  const fs::path dir = fs::temp_directory_path() / "vcpclip_test_transforms_err";
  fs::create_directories(dir);
  const std::string missing = (dir / "nope.png").string();
  try {
    read_rgb(missing);
    FAIL() << "no error";
  } catch (const vcpclip::Error& e) {
    EXPECT_EQ(std::string(e.what()), "image file not found: " + missing);
  }
  const std::string empty = (dir / "empty.png").string();
  std::ofstream(empty).close();
  try {
    read_rgb(empty);
    FAIL() << "no error";
  } catch (const vcpclip::Error& e) {
    EXPECT_EQ(std::string(e.what()), "image file is empty: " + empty);
  }
  const std::string junk = (dir / "junk.png").string();
  std::ofstream(junk) << "this is not a png";
  try {
    read_mask(junk);
    FAIL() << "no error";
  } catch (const vcpclip::Error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot decode mask file (not an image or corrupt): " + junk);
  }
  // Found by fuzz_image (fuzz/regressions/image/ppm_700m_rows.ppm): OpenCV throws its own
  // exception for a header announcing 700 million rows instead of returning an empty image.
  const std::string tall = (dir / "tall.ppm").string();
  std::ofstream(tall, std::ios::binary) << "P6\n8 699999999\n255\n" << std::string(64, '\x7f');
  const auto refused = "cannot decode image file (OpenCV refused it: ";
  EXPECT_EQ(error_of([&] { read_rgb(tall); }).rfind(refused, 0), 0u) << error_of([&] { read_rgb(tall); });
  EXPECT_NE(error_of([&] { read_rgb(tall); }).find("): " + tall), std::string::npos);
  EXPECT_EQ(error_of([&] { read_mask(tall); }).rfind("cannot decode mask file (OpenCV refused it: ", 0), 0u);
  EXPECT_THROW(preprocess_image(cv::Mat(4, 4, CV_8UC1), 8), vcpclip::Error);
  fs::remove_all(dir);
}
