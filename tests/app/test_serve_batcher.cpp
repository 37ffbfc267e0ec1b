// The pieces of `vcpclip serve` in-process: dynamic batching (batches up to max_batch, one
// forward pass equal to single predictions, a full queue refused at once, draining past its
// deadline answers 503), the server's readiness while the model loads, the token comparison,
// the image header limits and base64.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <thread>

#include "../model/vcp_fixture.h"
#include "support/test_util.h"
#include "vcpclip/app/serve/batcher.h"
#include "vcpclip/app/serve/http.h"
#include "vcpclip/app/serve/image.h"
#include "vcpclip/http_lib.h"

using namespace vcpclip;
namespace fx = vcp_fixture;
using Clock = std::chrono::steady_clock;

namespace {

InferencerOptions options() {
  std::ostringstream s;
  s << "runtime:\n  threads: 1\nmodel:\n  backbone: " << fx::path("tiny_vcp_clip.json")
    << "\n  weights: " << fx::path("tiny_vcp_clip.pt") << "\n  vocab: " << fx::vocab_path()
    << "\n  image_size: 64\n  features_list: [2, 3, 4]\n";
  InferencerOptions o;
  o.config_text = s.str();
  o.checkpoint = fx::path("tiny_vcp.pth");
  return o;
}

const Inferencer& inferencer() {
  static const Inferencer inf(options());
  return inf;
}

cv::Mat image(int i) { return cv::imread(fx::path("image_" + std::to_string(i) + ".png"), cv::IMREAD_UNCHANGED); }

}  // namespace

TEST(ServeBatcher, BatchesEqualSinglePredictions) {
  app::ServeMetrics metrics;
  app::Batcher batcher(inferencer(), {2, 600000, 8}, &metrics);
  std::vector<app::Arrival> on_the_way;
  for (int i = 0; i < 4; ++i) on_the_way.push_back(batcher.announce());
  std::vector<std::future<app::BatchOutcome>> f;
  for (int i = 0; i < 3; ++i) f.push_back(*batcher.submit(image(i), &on_the_way[i]));
  // max_batch 2: the first two run together at once; the third waits for the fourth image, still
  // on its way, up to max_wait_ms (10 min): only draining ends its wait.
  const auto first = f[0].get();
  EXPECT_EQ(first.batch_size, 2);
  EXPECT_EQ(f[1].get().batch_size, 2);
  EXPECT_EQ(f[2].wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  batcher.drain(Clock::now() + std::chrono::seconds(60));
  const auto third = f[2].get();
  EXPECT_EQ(third.status, 200);
  EXPECT_EQ(third.batch_size, 1);
  const Prediction single = inferencer().predict(image(0));
  EXPECT_NEAR(first.prediction->score, single.score, 1e-4 * std::abs(single.score));
  EXPECT_LE(cv::norm(first.prediction->map, single.map, cv::NORM_INF), 1e-4);
  const std::string text = metrics.prometheus(batcher.depth());
  EXPECT_NE(text.find("vcpclip_batch_size_bucket{le=\"1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("vcpclip_batch_size_bucket{le=\"2\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("vcpclip_images_processed_total 3\n"), std::string::npos) << text;
}

TEST(ServeBatcher, ALoneImageRunsAtOnceAndAnnouncedImagesAreWaitedFor) {
  app::Batcher batcher(inferencer(), {8, 600000, 8}, nullptr);  // max_wait_ms: 10 min
  // nothing else on its way: the image runs without waiting for max_wait_ms
  auto lone = batcher.submit(image(0));
  ASSERT_EQ(lone->wait_for(std::chrono::seconds(120)), std::future_status::ready);
  EXPECT_EQ(lone->get().batch_size, 1);
  // one more announced: the queued image waits for it, and both run as one batch
  app::Arrival second = batcher.announce();
  auto a = batcher.submit(image(1));
  EXPECT_EQ(a->wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  auto b = batcher.submit(image(2), &second);
  EXPECT_EQ(a->get().batch_size, 2);
  EXPECT_EQ(b->get().batch_size, 2);
  // an announced request that fails before submitting (a corrupt image) stops being waited for
  std::optional<std::future<app::BatchOutcome>> c;
  {
    app::Arrival failing = batcher.announce();
    c = batcher.submit(image(0));
    EXPECT_EQ(c->wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  }
  ASSERT_EQ(c->wait_for(std::chrono::seconds(120)), std::future_status::ready);
  EXPECT_EQ(c->get().batch_size, 1);
}

TEST(ServeBatcher, FullQueueRefusesAndLateDrainAnswers503) {
  app::Batcher batcher(inferencer(), {8, 60000, 2}, nullptr);
  const app::Arrival held = batcher.announce();  // one more on its way: the queued images wait
  auto a = batcher.submit(image(0)), b = batcher.submit(image(1));
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(batcher.submit(image(2)).has_value());
  EXPECT_EQ(batcher.depth(), 2u);
  batcher.drain(Clock::now() - std::chrono::seconds(1));  // the drain time is already over
  const auto x = a->get(), y = b->get();
  EXPECT_EQ(x.status, 503);
  EXPECT_EQ(y.status, 503);
  EXPECT_EQ(x.error, "the server is shutting down (drain timeout)");
}

TEST(ServeServer, ReadyOnlyOnceTheModelIsSet) {
  app::ServeOptions o;
  o.port = 0;
  app::ServeServer server(o);
  const int port = server.bind();
  std::thread t([&] { server.listen(); });
  httplib::Client c("127.0.0.1", port);
  for (int i = 0; i < 100 && !c.Get("/v2/health/live"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(c.Get("/v2/health/live")->status, 200);
  auto r = c.Get("/v2/health/ready");
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, R"({"error":"the model is still loading"})");
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_EQ(c.Post("/v1/predict", "x", "image/png")->status, 503);
  EXPECT_EQ(c.Get("/v2/models/vcpclip")->status, 503);
  app::ServeModel m;
  m.inferencer = std::make_unique<Inferencer>(options());
  m.metadata = {{"name", "vcpclip"}};
  server.set_model(std::move(m));
  EXPECT_EQ(c.Get("/v2/health/ready")->status, 200);
  EXPECT_EQ(c.Get("/v2/models/vcpclip")->body, R"({"name":"vcpclip"})");
  server.drain();
  t.join();
  EXPECT_EQ(server.metrics().requests("/v2/health/ready", 503), 1u);
  EXPECT_EQ(server.metrics().requests("/v2/health/ready", 200), 1u);
}

TEST(ServeImage, HeaderLimitsAndBase64) {
  EXPECT_EQ(app::same_secret("abc", "abc"), true);
  EXPECT_EQ(app::same_secret("abc", "abd"), false);
  EXPECT_EQ(app::same_secret("abc", "abcd"), false);
  EXPECT_EQ(app::same_secret("", "a"), false);
  const std::string png = vcpclip::testing::slurp(fx::path("image_0.png"));
  ASSERT_TRUE(app::announced_size(png).has_value());
  EXPECT_EQ(*app::announced_size(png), cv::Size(52, 40));
  EXPECT_EQ(app::decode_request_image(png, 52 * 40).size(), cv::Size(52, 40));
  try {
    app::decode_request_image(png, 52 * 40 - 1);
    ADD_FAILURE() << "no error";
  } catch (const app::ServeError& e) {
    EXPECT_EQ(e.status(), 413);
    EXPECT_STREQ(e.what(), "the image has 52x40 pixels, over the limit of 2079 (serve.max_pixels)");
  }
  for (const std::string& s :
       std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\x10", 3)})
    EXPECT_EQ(app::base64_decode(app::base64_encode(s), "x"), s);
  EXPECT_EQ(app::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(app::base64_decode("Zm9vYg", "x"), "foob");
  try {
    app::base64_decode("Zm9v YmFy", "input \"image\"");
    ADD_FAILURE() << "no error";
  } catch (const app::ServeError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_STREQ(e.what(), "input \"image\" is not base64 (character 4)");
  }
  try {
    app::base64_decode("Zm9vY", "input \"image\"");
    ADD_FAILURE() << "no error";
  } catch (const app::ServeError& e) {
    EXPECT_STREQ(e.what(), "input \"image\" is not base64 (its length is impossible)");
  }
}
