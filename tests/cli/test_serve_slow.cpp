// Load on loopback, bounded in count and time: 2,000 requests from 16 keep-alive clients to a
// real `vcpclip serve` process (tiny fixture model). Every answer is 200 with the image's score,
// and the server's RSS while the last 500 requests run is within 10 % of the first 500's.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <numeric>

#include "serve_fixture.h"

namespace sf = serve_fixture;
namespace fx = vcp_fixture;

namespace {

/// VmRSS of a process in kB (0 when unreadable).
long rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

}  // namespace

TEST(ServeLoad, TwoThousandRequestsFromSixteenClients) {
  constexpr int kRequests = 2000, kClients = 16;
  sf::ServerProcess server(sf::config_file("serve_load", "  max_wait_ms: 5\n"), {});
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  std::vector<std::string> bodies;
  std::vector<double> scores;
  httplib::Client probe("127.0.0.1", server.port());
  for (int i = 0; i < 3; ++i) {
    bodies.push_back(sf::file_bytes(fx::path("image_" + std::to_string(i) + ".png")));
    auto r = probe.Post("/v1/predict", bodies.back(), "image/png");
    ASSERT_TRUE(r && r->status == 200);
    scores.push_back(nlohmann::json::parse(r->body)["score"].get<double>());
  }
  std::atomic<int> next{0}, done{0}, unexpected{0};
  std::vector<long> rss_first, rss_last;
  std::mutex rss_mutex;
  auto client = [&] {
    httplib::Client c("127.0.0.1", server.port());
    c.set_keep_alive(true);
    c.set_read_timeout(60, 0);
    for (int i = next++; i < kRequests; i = next++) {
      auto r = c.Post("/v1/predict", bodies[i % 3], "image/png");
      bool ok = r && r->status == 200;
      if (ok) {
        const double s = nlohmann::json::parse(r->body)["score"].get<double>();
        ok = std::abs(s - scores[i % 3]) <= 1e-4 * std::abs(scores[i % 3]);
      }
      if (!ok) ++unexpected;
      const int n = ++done;
      if (n % 25 == 0 && (n <= 500 || n > kRequests - 500)) {
        std::lock_guard<std::mutex> lock(rss_mutex);
        (n <= 500 ? rss_first : rss_last).push_back(rss_kb(server.pid()));
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) threads.emplace_back(client);
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), kRequests);
  EXPECT_EQ(unexpected.load(), 0);
  ASSERT_FALSE(rss_first.empty());
  ASSERT_FALSE(rss_last.empty());
  const double first = std::accumulate(rss_first.begin(), rss_first.end(), 0.0) / rss_first.size();
  const double last = std::accumulate(rss_last.begin(), rss_last.end(), 0.0) / rss_last.size();
  EXPECT_LE(std::abs(last - first), 0.10 * first) << "RSS first 500: " << first << " kB, last 500: " << last << " kB";
  std::printf("serve load: RSS over the first 500 requests %.0f kB, over the last 500 %.0f kB\n", first, last);
  auto m = probe.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(
      m->body.find("vcpclip_requests_total{path=\"/v1/predict\",status=\"200\"} " + std::to_string(kRequests + 3)),
      std::string::npos);
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(60), 0) << server.log();
}
