// Many held connections do not starve the line (issue: a thread per connection did). A real
// `vcpclip serve` process (tiny fixture model) holds idle keep-alive clients and clients stalled
// mid-head and mid-body, while a few well-behaved clients make predictions and a probe asks
// /v2/health/live every 0.25 s. Counts are scaled to a 2-core shared CI machine; the README
// gives the full-size measurement (scripts/tools/serve_crowd.py). Loopback only.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "serve_fixture.h"

namespace sf = serve_fixture;
namespace fx = vcp_fixture;

TEST(ServeCrowd, IdleAndStalledClientsLeaveTheLineFree) {
  constexpr int kIdle = 200, kStalled = 100, kClients = 4, kPredictions = 60;
  // Long connection timeouts, so that every held connection stays held for the whole test.
  sf::ServerProcess server(sf::config_file("serve_crowd",
                                           "  timeout_s: 300\n  header_timeout_s: 300\n  body_timeout_s: 300\n"
                                           "  keep_alive_timeout_s: 300\n"),
                           {});
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  const int port = server.port();
  const std::string png = sf::file_bytes(fx::path("image_0.png"));
  httplib::Client probe_client("127.0.0.1", port);
  auto first = probe_client.Post("/v1/predict", png, "image/png");
  ASSERT_TRUE(first && first->status == 200);
  const double score = nlohmann::json::parse(first->body)["score"].get<double>();

  std::vector<std::unique_ptr<sf::RawConnection>> held;
  for (int i = 0; i < kIdle; ++i) {  // idle keep-alive: one answered request each, then silence
    held.push_back(std::make_unique<sf::RawConnection>(port));
    ASSERT_TRUE(held.back()->send_bytes("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_EQ(sf::raw_status(held.back()->read_answer(30)), 200) << "idle client " << i;
  }
  for (int i = 0; i < kStalled; ++i) {  // half stop mid-head, half mid-body
    held.push_back(std::make_unique<sf::RawConnection>(port));
    ASSERT_TRUE(held.back()->send_bytes(i % 2 ? "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Ty"
                                              : "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                                "Content-Length: 100000\r\n\r\n" +
                                                    png.substr(0, 100)));
  }
  auto metrics = [&] {
    auto r = probe_client.Get("/metrics");
    return r ? r->body : std::string();
  };
  EXPECT_GE(sf::metric(metrics(), "vcpclip_connections_open"), kIdle + kStalled) << metrics();

  std::atomic<bool> done{false};
  std::vector<std::pair<int, double>> probes;  // status, seconds
  std::thread prober([&] {
    while (!done) {
      const auto t0 = std::chrono::steady_clock::now();
      const int status = sf::raw_status(
          sf::raw_exchange(port, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 10));
      probes.emplace_back(status, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  std::atomic<int> next{0}, ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t)
    clients.emplace_back([&] {
      httplib::Client c("127.0.0.1", port);
      c.set_keep_alive(true);
      c.set_read_timeout(60, 0);
      for (int i = next++; i < kPredictions; i = next++) {
        auto r = c.Post("/v1/predict", png, "image/png");
        const bool good =
            r && r->status == 200 &&
            std::abs(nlohmann::json::parse(r->body)["score"].get<double>() - score) <= 1e-4 * std::abs(score);
        ++(good ? ok : failed);
      }
    });
  for (auto& t : clients) t.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // a few probes after the load too
  done = true;
  prober.join();
  EXPECT_EQ(ok.load(), kPredictions);
  EXPECT_EQ(failed.load(), 0);
  ASSERT_GE(probes.size(), 2u);
  for (const auto& [status, seconds] : probes) {
    EXPECT_EQ(status, 200);
    EXPECT_LT(seconds, 5.0) << "a live probe waited (generous bound for a shared CI machine)";
  }
  // Every held connection is still held (nothing timed out), and once they go, the server is as before.
  const std::string during = metrics();
  EXPECT_GE(sf::metric(during, "vcpclip_connections_open"), kIdle + kStalled) << during;
  EXPECT_EQ(sf::metric(during, "vcpclip_timeouts_total{kind=\"header\"}"), 0) << during;
  held.clear();
  std::string after;
  for (int i = 0; i < 200; ++i) {
    after = metrics();
    if (sf::metric(after, "vcpclip_connections_open") <= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_LE(sf::metric(after, "vcpclip_connections_open"), 1) << after;
  auto last = probe_client.Post("/v1/predict", png, "image/png");
  ASSERT_TRUE(last);
  EXPECT_EQ(last->status, 200);
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(60), 0) << server.log();
}
