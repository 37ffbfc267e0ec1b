// `vcpclip serve` as a process on a free loopback port: answers equal `vcpclip predict`
// (1e-4 relative, decisions identical), maps/masks/metadata, KServe v2, dynamic batching, a full
// queue, hostile requests (each with its status while /v2/health/live keeps answering), the token,
// and SIGTERM draining (every accepted request answered, exit 0).
#include <gtest/gtest.h>

#include <future>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "serve_fixture.h"
#include "support/run_binary.h"
#include "vcpclip/io/sha256.h"

namespace sf = serve_fixture;
namespace fs = std::filesystem;
namespace fx = vcp_fixture;
using nlohmann::json;

namespace {

const std::vector<std::string>& images() {
  static const std::vector<std::string> p{fx::path("image_0.png"), fx::path("image_1.png"), fx::path("image_2.png")};
  return p;
}

std::string b64(const std::string& bytes) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = uint8_t(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= uint8_t(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) n |= uint8_t(bytes[i + 2]);
    out += a[(n >> 18) & 63];
    out += a[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? a[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? a[n & 63] : '=';
  }
  return out;
}

cv::Mat png_of(const std::string& base64_text) {
  // OpenCV decodes the PNG; the server's base64 is checked against this test's encoder.
  std::string bytes;
  std::vector<int> value(256, -1);
  const std::string a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) value[uint8_t(a[i])] = i;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : base64_text) {
    if (c == '=') break;
    acc = (acc << 6) | value[uint8_t(c)];
    bits += 6;
    if (bits >= 8) bits -= 8, bytes += char((acc >> bits) & 0xFF);
  }
  EXPECT_EQ(b64(bytes), base64_text);
  return cv::imdecode(cv::Mat(1, int(bytes.size()), CV_8UC1, bytes.data()), cv::IMREAD_UNCHANGED);
}

/// Starts `n` predictions of one fixture image in the background (each returns its HTTP status,
/// 0 when no answer came) and waits until /metrics shows them all queued; *queued says whether it did.
std::vector<std::future<int>> fill_queue(sf::ServerProcess& server, int n, bool* queued) {
  std::vector<std::future<int>> waiting;
  for (int i = 0; i < n; ++i)
    waiting.push_back(std::async(std::launch::async, [&server] {
      httplib::Client c("127.0.0.1", server.port());
      c.set_read_timeout(60, 0);
      auto r = c.Post("/v1/predict", sf::file_bytes(images()[0]), "image/png");
      return r ? r->status : 0;
    }));
  httplib::Client c("127.0.0.1", server.port());
  const std::string depth = "vcpclip_queue_depth " + std::to_string(n);
  *queued = false;
  for (int i = 0; i < 100 && !*queued; ++i) {
    auto m = c.Get("/metrics");
    *queued = m && m->body.find(depth) != std::string::npos;
    if (!*queued) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return waiting;
}

/// `vcpclip predict` on the fixture images with the calibration: scores.json.
json predict_scores(const std::string& config, const std::string& out) {
  std::string cmd = "predict -c " + config + " -k " + fx::path("tiny_vcp.pth") + " -o " + out +
                    " --no-progress --calibration " + sf::calibration();
  for (const auto& p : images()) cmd += " -i " + p;
  const auto r = vcpclip::testing::run_vcpclip(cmd);
  EXPECT_EQ(r.status, 0) << r.out;
  return json::parse(vcpclip::testing::slurp(out + "/scores.json"));
}

void expect_close(double a, double b, const std::string& what) {
  EXPECT_LE(std::abs(a - b), 1e-4 * std::max(std::abs(a), std::abs(b))) << what << ": " << a << " vs " << b;
}

}  // namespace

TEST(Serve, ScoresAndDecisionsEqualPredictInBatches) {
  // A 2 s batching window: the three concurrent requests form one batch of 3.
  const auto config = sf::config_file("serve_parity", "  max_wait_ms: 2000\n  batch_wait: always\n  max_batch: 8\n");
  sf::ServerProcess server(config, {"--calibration", sf::calibration()});
  ASSERT_GT(server.port(), 0) << server.log();
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const json expected = predict_scores(config, (fs::temp_directory_path() / "serve_parity_predict").string());
  std::vector<std::future<json>> answers;
  for (const auto& path : images())
    answers.push_back(std::async(std::launch::async, [&, path] {
      httplib::Client c("127.0.0.1", server.port());
      auto r = c.Post("/v1/predict?mask=1", sf::file_bytes(path), "image/png");
      EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
      return r ? json::parse(r->body) : json();
    }));
  for (size_t i = 0; i < images().size(); ++i) {
    const json a = answers[i].get();
    const json& e = expected["images"][i];
    expect_close(a["score"].get<double>(), e["score"].get<double>(), images()[i]);
    EXPECT_EQ(a["decision"], e["decision"]) << images()[i];
    expect_close(a["normalized_score"].get<double>(), e["normalized_score"].get<double>(), images()[i]);
    EXPECT_EQ(a["batch_size"], 3) << "the three requests were not batched together";
    const cv::Mat image = cv::imread(images()[i], cv::IMREAD_UNCHANGED);
    EXPECT_EQ(a["image_size"], json::array({image.rows, image.cols}));
    const cv::Mat mask = png_of(a["mask_png"].get<std::string>());
    const cv::Mat predicted = cv::imread(
        (fs::temp_directory_path() / "serve_parity_predict" / (e["stem"].get<std::string>() + "_mask.png")).string(),
        cv::IMREAD_UNCHANGED);
    ASSERT_EQ(mask.size(), predicted.size());
    EXPECT_EQ(cv::countNonZero(mask != predicted), 0) << "mask differs from predict's for " << images()[i];
    EXPECT_EQ(a["regions"].size(), e["regions"].size());
  }
  // KServe v2: the same score and decision; the anomaly map at the input's size.
  httplib::Client c("127.0.0.1", server.port());
  const json req = {
      {"inputs",
       {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {b64(sf::file_bytes(images()[1]))}}}}},
      {"outputs", {{{"name", "score"}}, {{"name", "decision"}}, {{"name", "anomaly_map"}}}},
      {"id", "part-17"}};
  auto r = c.Post("/v2/models/vcpclip/infer", req.dump(), "application/json");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  const json k = json::parse(r->body);
  EXPECT_EQ(k["id"], "part-17");
  EXPECT_EQ(k["model_name"], "vcpclip");
  ASSERT_EQ(k["outputs"].size(), 3u);
  EXPECT_EQ(k["outputs"][0]["name"], "score");
  EXPECT_EQ(k["outputs"][0]["datatype"], "FP32");
  expect_close(k["outputs"][0]["data"][0].get<double>(), expected["images"][1]["score"].get<double>(), "kserve");
  EXPECT_EQ(k["outputs"][1]["data"][0], expected["images"][1]["decision"]);
  const cv::Mat image = cv::imread(images()[1], cv::IMREAD_UNCHANGED);
  EXPECT_EQ(k["outputs"][2]["shape"], json::array({image.rows, image.cols}));
  EXPECT_EQ(k["outputs"][2]["data"].size(), size_t(image.rows * image.cols));
  // Multipart upload: the same answer as raw bytes.
  httplib::MultipartFormDataItems items{{"image", sf::file_bytes(images()[2]), "image_2.png", "image/png"}};
  r = c.Post("/v1/predict", items);
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  expect_close(json::parse(r->body)["score"].get<double>(), expected["images"][2]["score"].get<double>(), "multipart");
}

TEST(Serve, MetadataMapsAndMetrics) {
  sf::ServerProcess server(sf::config_file("serve_meta", ""), {"--calibration", sf::calibration()});
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  httplib::Client c("127.0.0.1", server.port());
  auto r = c.Get("/v2/models/vcpclip");
  ASSERT_TRUE(r && r->status == 200);
  const json m = json::parse(r->body);
  EXPECT_EQ(m["name"], "vcpclip");
  EXPECT_EQ(m["parameters"]["image_size"], 64);
  EXPECT_EQ(m["parameters"]["backbone"], "tiny_vcp_clip.json");
  EXPECT_EQ(m["parameters"]["checkpoint_sha256"], vcpclip::io::sha256_file(fx::path("tiny_vcp.pth")));
  EXPECT_EQ(m["parameters"]["calibration"]["classes"].size(), 1u);
  r = c.Post("/v1/predict?map=1&levels=1", sf::file_bytes(images()[0]), "image/png");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "");
  const json a = json::parse(r->body);
  const cv::Mat image = cv::imread(images()[0], cv::IMREAD_UNCHANGED);
  const cv::Mat overlay = png_of(a["map_png"].get<std::string>()), levels = png_of(a["levels_png"].get<std::string>());
  EXPECT_EQ(overlay.size(), image.size());
  EXPECT_EQ(overlay.type(), CV_8UC3);
  EXPECT_EQ(levels.size(), image.size());
  EXPECT_EQ(levels.type(), CV_8UC1);
  EXPECT_EQ(a["pixel_threshold"], m["parameters"]["calibration"]["pixel_threshold"]);
  r = c.Get("/");
  ASSERT_TRUE(r && r->status == 200);
  EXPECT_NE(r->body.find("<title>vcpclip inspection</title>"), std::string::npos);
  EXPECT_EQ(r->body.find("http://"), std::string::npos) << "the page must not load anything from elsewhere";
  // The access log (which counts) runs after the answer is sent: wait for it briefly.
  const std::vector<std::string> lines{"vcpclip_requests_total{path=\"/v1/predict\",status=\"200\"} 1",
                                       "vcpclip_requests_total{path=\"/v2/models/vcpclip\",status=\"200\"} 1",
                                       "vcpclip_batch_size_bucket{le=\"1\"} 1",
                                       "vcpclip_batch_size_count 1",
                                       "vcpclip_images_processed_total 1",
                                       "vcpclip_queue_depth 0",
                                       "vcpclip_request_seconds_count"};
  std::string text;
  for (int i = 0; i < 50; ++i) {
    r = c.Get("/metrics");
    ASSERT_TRUE(r && r->status == 200);
    text = r->body;
    bool all = true;
    for (const auto& l : lines) all = all && text.find(l) != std::string::npos;
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const auto& l : lines) EXPECT_NE(text.find(l), std::string::npos) << l << "\n" << text;
}

TEST(Serve, FullQueueAnswers503AtOnce) {
  // Two images wait for a 5 s batching window; the third finds the queue (2) full.
  sf::ServerProcess server(sf::config_file("serve_queue", "  max_wait_ms: 5000\n  batch_wait: always\n  queue: 2\n"),
                           {});
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  bool queued = false;
  auto waiting = fill_queue(server, 2, &queued);
  ASSERT_TRUE(queued) << server.log();
  httplib::Client c("127.0.0.1", server.port());
  auto r = c.Post("/v1/predict", sf::file_bytes(images()[0]), "image/png");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_NE(r->body.find("the queue is full"), std::string::npos) << r->body;
  for (auto& w : waiting)
    EXPECT_EQ(w.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "503 came after the batch ran";
  for (auto& w : waiting) EXPECT_EQ(w.get(), 200);
}

TEST(Serve, HealthIsAnsweredWhileTheQueueIsFull) {
  // The queue (2) is full and its images wait for a 5 s batching window; the probes, the metrics
  // and the model's metadata are answered by the I/O threads without waiting, and a third image
  // gets 503 at once.
  sf::ServerProcess server(
      sf::config_file("serve_full_health", "  max_wait_ms: 5000\n  batch_wait: always\n  queue: 2\n  threads: 2\n"),
      {});
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  bool queued = false;
  auto waiting = fill_queue(server, 2, &queued);
  ASSERT_TRUE(queued) << server.log();
  httplib::Client c("127.0.0.1", server.port());
  for (const char* path : {"/v2/health/live", "/v2/health/ready", "/v2/models/vcpclip", "/"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
  }
  // Both workers (serve.threads = 2) wait for their batch: a third image is refused at once.
  auto r = c.Post("/v1/predict", sf::file_bytes(images()[0]), "image/png");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  for (auto& w : waiting)
    EXPECT_EQ(w.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "answered after the batch ran";
  for (auto& w : waiting) EXPECT_EQ(w.get(), 200);
}

TEST(Serve, SigtermAnswersAcceptedRequestsAndExitsZero) {
  // Three requests wait in a 20 s batching window; SIGTERM runs them at once and exits 0.
  sf::ServerProcess server(sf::config_file("serve_drain", "  max_wait_ms: 20000\n  batch_wait: always\n"), {});
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  std::vector<std::future<int>> waiting;
  for (size_t i = 0; i < 3; ++i)
    waiting.push_back(std::async(std::launch::async, [&, i] {
      httplib::Client c("127.0.0.1", server.port());
      c.set_read_timeout(60, 0);
      auto r = c.Post("/v1/predict", sf::file_bytes(images()[i]), "image/png");
      return r ? r->status : 0;
    }));
  httplib::Client c("127.0.0.1", server.port());
  bool queued = false;
  for (int i = 0; i < 200 && !queued; ++i) {
    auto m = c.Get("/metrics");
    queued = m && m->body.find("vcpclip_queue_depth 3") != std::string::npos;
    if (!queued) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(queued) << server.log();
  server.signal(SIGTERM);
  for (auto& w : waiting) EXPECT_EQ(w.get(), 200);
  EXPECT_EQ(server.wait_exit(30), 0) << server.log();
  EXPECT_NE(server.log().find("SIGTERM received"), std::string::npos);
  EXPECT_EQ(sf::raw_exchange(server.port(), "GET /v2/health/live HTTP/1.1\r\n\r\n", 2), "(connect failed)");
}

TEST(Serve, ALoneRequestRunsWithoutWaitingForABatch) {
  // batch_wait: arriving (the default): a 60 s window, but nothing else on its way, so the lone
  // request runs at once; waiting for the window would end in 503 at timeout_s (10 s).
  sf::ServerProcess server(sf::config_file("serve_lone", "  max_wait_ms: 60000\n  timeout_s: 10\n"), {});
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(60, 0);
  for (int i = 0; i < 2; ++i) {
    auto r = c.Post("/v1/predict", sf::file_bytes(images()[i]), "image/png");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(json::parse(r->body)["batch_size"], 1);
  }
  const auto bad = vcpclip::testing::run_vcpclip(
      "serve -c " + sf::config_file("serve_badwait", "  batch_wait: never\n") + " -k " + fx::path("tiny_vcp.pth"));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find(": expected arriving or always, found 'never'"), std::string::npos) << bad.out;
}

TEST(Serve, SigintDrainsAnIdleServer) {
  sf::ServerProcess server(sf::config_file("serve_sigint", ""), {});
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  server.signal(SIGINT);
  EXPECT_EQ(server.wait_exit(30), 0) << server.log();
}

TEST(Serve, TokenFromConfigAndWarningWithoutOne) {
  sf::ServerProcess with_token(sf::config_file("serve_token", "  token: s3cret\n"), {});
  ASSERT_TRUE(with_token.port() > 0 && with_token.wait_ready()) << with_token.log();
  httplib::Client c("127.0.0.1", with_token.port());
  auto r = c.Post("/v1/predict", sf::file_bytes(images()[0]), "image/png");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  c.set_bearer_token_auth("s3cret");
  r = c.Post("/v1/predict", sf::file_bytes(images()[0]), "image/png");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // Another host than loopback without a token: a warning.
  sf::ServerProcess open_server(sf::config_file("serve_open", ""), {"--host", "0.0.0.0"});
  ASSERT_TRUE(open_server.port() > 0) << open_server.log();
  EXPECT_NE(open_server.log().find("without a token"), std::string::npos) << open_server.log();
  EXPECT_EQ(with_token.log().find("without a token"), std::string::npos);
}

TEST(Serve, UnknownServeKeyIsAnError) {
  const auto config = sf::config_file("serve_badkey", "  max_batchs: 4\n");
  const auto r = vcpclip::testing::run_vcpclip("serve -c " + config + " -k " + fx::path("tiny_vcp.pth"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("serve.max_batchs"), std::string::npos) << r.out;
  const auto bad = vcpclip::testing::run_vcpclip("serve -c " + config +
                                                 " -k x.pth --set serve.max_batchs=null --set serve.port=70000");
  EXPECT_EQ(bad.status, 1);
}
