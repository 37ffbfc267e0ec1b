// The page of `vcpclip serve` in a real browser: Debian's chromium, headless, driven by
// playwright-core (tests/browser/serve_page.mjs). Upload an image, wait for the result; the
// score and decision shown equal the API's answer for the same file, the threshold slider
// changes the mask preview only, nothing is fetched from elsewhere; a screenshot goes to
// <build>/serve_page.png. Skipped when chromium, node or playwright-core is missing, except
// under CI=true, where that is a failure.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "serve_fixture.h"
#include "support/run_binary.h"

namespace sf = serve_fixture;
namespace fx = vcp_fixture;
namespace fs = std::filesystem;

namespace {

std::string missing_browser_tools() {
  if (!fs::exists("/usr/bin/chromium")) return "/usr/bin/chromium";
  if (vcpclip::testing::run_command("command -v node").status != 0) return "node";
  if (!fs::exists(std::string(VCPCLIP_SOURCE_DIR) + "/tests/browser/node_modules/playwright-core/package.json"))
    return "playwright-core (scripts/test_deps.sh)";
  return "";
}

}  // namespace

TEST(ServeBrowser, PageShowsTheApiAnswer) {
  if (const auto missing = missing_browser_tools(); !missing.empty()) {
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true") FAIL() << "CI=true and the browser test cannot run: missing " << missing;
    GTEST_SKIP() << "missing " << missing;
  }
  sf::ServerProcess server(sf::config_file("serve_browser", ""), {"--calibration", sf::calibration()});
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  const std::string image = fx::path("image_1.png");
  httplib::Client c("127.0.0.1", server.port());
  auto r = c.Post("/v1/predict", sf::file_bytes(image), "image/png");
  ASSERT_TRUE(r && r->status == 200);
  const auto api = nlohmann::json::parse(r->body);
  const std::string shot = std::string(VCPCLIP_BINARY_DIR) + "/serve_page.png";
  fs::remove(shot);
  const auto run = vcpclip::testing::run_command(
      "node " + std::string(VCPCLIP_SOURCE_DIR) +
      "/tests/browser/serve_page.mjs http://127.0.0.1:" + std::to_string(server.port()) + "/ " + image + " " + shot);
  ASSERT_EQ(run.status, 0) << run.out;
  const auto shown = nlohmann::json::parse(run.out.substr(run.out.rfind("{\"score_text\"")));
  char text[64];
  std::snprintf(text, sizeof text, "%.6g", api["score"].get<double>());
  EXPECT_EQ(shown["score_value"].get<double>(), api["score"].get<double>());
  EXPECT_EQ(std::stod(shown["score_text"].get<std::string>()), std::stod(text));
  std::string decision = api["decision"].get<std::string>();
  for (auto& ch : decision) ch = static_cast<char>(std::toupper(ch));
  EXPECT_EQ(shown["decision"], decision);
  EXPECT_EQ(shown["history"], 1);
  EXPECT_GT(shown["overlay"].get<int>(), 0);
  const auto& mask = shown["mask"];
  EXPECT_EQ(mask["atZero"]["set"], mask["atZero"]["total"]) << "threshold 0: every pixel is set";
  EXPECT_LE(mask["atOne"]["set"], mask["calibrated"]["set"]);
  EXPECT_EQ(mask["afterReset"], mask["calibrated"]);
  EXPECT_EQ(shown["foreign"].size(), 0u) << shown["foreign"].dump();
  EXPECT_EQ(shown["errors"].size(), 0u) << shown["errors"].dump();
  EXPECT_TRUE(fs::exists(shot));
  // The slider changed nothing on the server: the same answer again.
  r = c.Post("/v1/predict", sf::file_bytes(image), "image/png");
  ASSERT_TRUE(r && r->status == 200);
  EXPECT_EQ(nlohmann::json::parse(r->body)["decision"], api["decision"]);
}
