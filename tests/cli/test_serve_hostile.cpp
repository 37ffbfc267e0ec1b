// Hostile requests to a real `vcpclip serve` process (≥ 30 kinds): each gets its status and a
// JSON error, and /v2/health/live keeps answering after every one. Raw sockets, so that the
// malformed ones reach the server as sent.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "serve_fixture.h"

namespace sf = serve_fixture;
namespace fx = vcp_fixture;

namespace {

const std::string kToken = "tok-123";

struct Case {
  std::string name;
  std::string bytes;  ///< the whole request
  int status;         ///< expected status
  bool hold_open = false;
};

std::string request(const std::string& method, const std::string& path, const std::string& type,
                    const std::string& body, const std::string& auth = "Bearer " + kToken,
                    const std::string& extra = "") {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!auth.empty()) r += "Authorization: " + auth + "\r\n";
  if (!type.empty()) r += "Content-Type: " + type + "\r\n";
  r += extra;
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return r;
}

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }
std::string le16(uint32_t v) { return {char(v), char(v >> 8)}; }
std::string le32(uint32_t v) { return le16(v & 0xFFFF) + le16(v >> 16); }

std::string png_header(uint32_t w, uint32_t h) {
  return std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + "IHDR" + be32(w) + be32(h) +
         std::string("\x08\x02\0\0\0", 5) + be32(0x12345678);
}
std::string bmp_header(uint32_t w, uint32_t h) {
  return "BM" + le32(54) + le32(0) + le32(54) + le32(40) + le32(w) + le32(h) + le16(1) + le16(24) +
         std::string(24, '\0');
}
std::string jpeg_header(uint16_t w, uint16_t h) {
  return std::string("\xFF\xD8\xFF\xC0\x00\x11\x08", 7) + char(h >> 8) + char(h & 0xFF) + char(w >> 8) +
         char(w & 0xFF) + std::string("\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01", 10) + std::string(64, '\0');
}
std::string kserve(const std::string& input) { return R"({"inputs":[)" + input + "]}"; }
std::string multipart(const std::string& field, const std::string& content) {
  return "--XyZ\r\nContent-Disposition: form-data; name=\"" + field +
         "\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n" + content + "\r\n--XyZ--\r\n";
}

std::vector<Case> cases() {
  const std::string png = sf::file_bytes(fx::path("image_0.png"));
  const std::string p = "/v1/predict", k = "/v2/models/vcpclip/infer";
  const std::string big_body(2 << 20, 'x');  // serve.max_body_mb is 1
  std::vector<Case> c{
      {"empty body", request("POST", p, "image/png", ""), 400},
      {"not an image", request("POST", p, "image/png", "hello, this is not a PNG at all"), 400},
      {"random bytes with a JPEG type", request("POST", p, "image/jpeg", std::string(3000, '\x5a')), 400},
      {"PNG cut after its header", request("POST", p, "image/png", png.substr(0, 60)), 400},
      {"PNG cut in half", request("POST", p, "image/png", png.substr(0, png.size() / 2)), 400},
      {"PNG signature only", request("POST", p, "image/png", png.substr(0, 8)), 400},
      {"JPEG markers only", request("POST", p, "image/jpeg", std::string("\xFF\xD8\xFF\xD9", 4)), 400},
      {"PNG announcing 100000x100000", request("POST", p, "image/png", png_header(100000, 100000) + png.substr(33)),
       413},
      {"BMP announcing 50000x50000", request("POST", p, "image/bmp", bmp_header(50000, 50000)), 413},
      {"JPEG announcing 65000x65000", request("POST", p, "image/jpeg", jpeg_header(65000, 65000)), 413},
      {"GIF announcing 65535x65535", request("POST", p, "image/gif", "GIF89a" + le16(65535) + le16(65535) + "\0\0\0"),
       413},
      {"body over max_body_mb", request("POST", p, "image/png", big_body), 413},
      {"wrong content type", request("POST", p, "text/plain", png), 415},
      {"no content type", request("POST", p, "", png), 415},
      {"JSON to /v1/predict", request("POST", p, "application/json", "{}"), 415},
      {"multipart without `image`", request("POST", p, "multipart/form-data; boundary=XyZ", multipart("file", png)),
       400},
      {"multipart with a corrupt image",
       request("POST", p, "multipart/form-data; boundary=XyZ", multipart("image", "garbage")), 400},
      {"bad query flag", request("POST", p + "?map=maybe", "image/png", png), 400},
      {"header line over 8 KiB",
       request("GET", "/v2/health/live", "", "", "", "X-Big: " + std::string(10000, 'a') + "\r\n"), 400},
      {"request line over 8 KiB", request("GET", "/" + std::string(9000, 'a'), "", ""), 414},
      {"unknown method", request("BREW", "/v1/predict", "", ""), 400},
      {"not HTTP", "GARBAGE\r\n\r\n", 400},
      {"wrong method on /v1/predict", request("PUT", p, "image/png", png), 405},
      {"GET on /v1/predict", request("GET", p, "", ""), 405},
      {"DELETE on /v2/health/live", request("DELETE", "/v2/health/live", "", ""), 405},
      {"POST on /metrics", request("POST", "/metrics", "text/plain", "x"), 405},
      {"unknown path", request("GET", "/nope", "", ""), 404},
      {"path traversal", request("GET", "/../../etc/passwd", "", ""), 404},
      {"another model", request("GET", "/v2/models/other", "", ""), 404},
      {"missing token", request("POST", p, "image/png", png, ""), 401},
      {"wrong token", request("POST", p, "image/png", png, "Bearer tok-124"), 401},
      {"token of another length", request("POST", p, "image/png", png, "Bearer tok"), 401},
      {"token without Bearer", request("POST", p, "image/png", png, kToken), 401},
      {"metrics without token", request("GET", "/metrics", "", "", ""), 401},
      {"KServe body not JSON", request("POST", k, "application/json", "{not json"), 400},
      {"KServe no inputs", request("POST", k, "application/json", "{}"), 400},
      {"KServe wrong input name",
       request("POST", k, "application/json",
               kserve(R"({"name":"img","datatype":"BYTES","shape":[1],"data":["AA=="]})")),
       400},
      {"KServe FP32 input",
       request("POST", k, "application/json", kserve(R"({"name":"image","datatype":"FP32","shape":[1],"data":[1.0]})")),
       400},
      {"KServe shape [2]",
       request("POST", k, "application/json",
               kserve(R"({"name":"image","datatype":"BYTES","shape":[2],"data":["AA==","AA=="]})")),
       400},
      {"KServe invalid base64",
       request("POST", k, "application/json",
               kserve(R"({"name":"image","datatype":"BYTES","shape":[1],"data":["%%%%"]})")),
       400},
      {"KServe base64 of garbage",
       request("POST", k, "application/json",
               kserve(R"({"name":"image","datatype":"BYTES","shape":[1],"data":["aGVsbG8gd29ybGQ="]})")),
       400},
      {"KServe unknown output",
       request(
           "POST", k, "application/json",
           R"({"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":["AA=="]}],"outputs":[{"name":"x"}]})"),
       400},
      // Announces 1000 bytes, sends 10, then stops: serve.body_timeout_s (capped by timeout_s = 2 s)
      // ends it with 408 Request Timeout.
      {"client that stops sending its body",
       "POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kToken +
           "\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n0123456789",
       408, true},
  };
  return c;
}

}  // namespace

TEST(ServeHostile, EachRequestGetsItsStatusAndTheServerStaysLive) {
  const auto config = sf::config_file("serve_hostile", "  max_body_mb: 1\n  timeout_s: 2\n");
  sf::ServerProcess server(config, {}, kToken);
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  const auto all = cases();
  EXPECT_GE(all.size(), 30u);
  for (const auto& c : all) {
    const std::string answer = sf::raw_exchange(server.port(), c.bytes, 15, c.hold_open);
    EXPECT_EQ(sf::raw_status(answer), c.status) << c.name << ":\n" << answer.substr(0, 300);
    const auto body = answer.substr(std::min(answer.size(), answer.find("\r\n\r\n") + 4));
    const auto j = nlohmann::json::parse(body, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error") && j["error"].is_string()) << c.name << ": " << body;
    EXPECT_EQ(answer.find("root:"), std::string::npos) << c.name;
    const std::string live = sf::raw_exchange(server.port(), "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n", 5);
    EXPECT_EQ(sf::raw_status(live), 200) << "after " << c.name;
  }
  // A client that stops sending its headers gets 408 after serve.header_timeout_s (capped by timeout_s).
  const std::string silent = sf::raw_exchange(server.port(), "POST /v1/predict HTTP/1.1\r\nHost: x\r\n", 15, true);
  EXPECT_EQ(sf::raw_status(silent), 408) << silent;
  // A valid request still works, and the 401s were counted.
  const std::string ok = sf::raw_exchange(
      server.port(), request("POST", "/v1/predict", "image/png", sf::file_bytes(fx::path("image_0.png"))), 15);
  EXPECT_EQ(sf::raw_status(ok), 200) << ok.substr(0, 300);
  const std::string metrics = sf::raw_exchange(server.port(), request("GET", "/metrics", "", ""), 5);
  EXPECT_NE(metrics.find("vcpclip_requests_total{path=\"/v1/predict\",status=\"401\"} 4"), std::string::npos)
      << metrics;
  // After all that, SIGTERM still ends it cleanly: exit 0, and in the -DVCPCLIP_SANITIZE=ON build
  // no sanitizer report (ASan, UBSan and LeakSanitizer at exit would make the status non-zero).
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(30), 0) << server.log();
  EXPECT_EQ(server.log().find("Sanitizer"), std::string::npos) << server.log();
  EXPECT_EQ(server.log().find("runtime error"), std::string::npos) << server.log();
}

namespace {

/// GET /metrics on a connection of its own (Connection: close, so no keep-alive timeout counts).
std::string metrics_text(int port) {
  return sf::raw_exchange(
      port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " + kToken + "\r\n\r\n", 5);
}

int live_status(int port) {
  return sf::raw_status(
      sf::raw_exchange(port, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5));
}

/// Reads until the server closes the connection (at most 15 s); its answer, and whether it closed.
std::pair<std::string, bool> until_closed(sf::RawConnection& c) {
  std::string answer = c.read_for(15);
  return {answer, c.closed_by_server()};
}

}  // namespace

// Slow clients end themselves, not the server: each kind reaches its end state, is counted in
// /metrics, and /v2/health/live answers while they stall and after they are gone.
TEST(ServeHostile, SlowClientsAreEndedAndCounted) {
  const auto config = sf::config_file("serve_slow_clients",
                                      "  timeout_s: 10\n  header_timeout_s: 2\n  body_timeout_s: 2\n"
                                      "  keep_alive_timeout_s: 1\n  max_connections: 16\n");
  sf::ServerProcess server(config, {}, kToken);
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  const int port = server.port();
  sf::RawConnection head(port), body(port), trickle(port), idle(port);
  ASSERT_TRUE(head.connected() && body.connected() && trickle.connected() && idle.connected());
  // Stalled head: the request line and one header, then nothing.
  ASSERT_TRUE(head.send_bytes("POST /v1/predict HTTP/1.1\r\nHost: x\r\n"));
  // Stalled body: announces 1000 bytes, sends 10.
  ASSERT_TRUE(body.send_bytes("POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kToken +
                              "\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n0123456789"));
  // Idle keep-alive: one request, then silence.
  ASSERT_TRUE(idle.send_bytes("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"));
  // One byte a second: a whole head would take 40 s; header_timeout_s (2 s) applies to the whole head.
  const std::string slow = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string trickle_answer;
  size_t trickled = 0;
  std::thread trickler([&] {
    while (trickled < slow.size() && trickle.send_bytes(slow.substr(trickled, 1))) {
      ++trickled;
      trickle_answer += trickle.read_for(1.0);
      if (trickle.closed_by_server()) break;
    }
    trickle_answer += trickle.read_for(10);
  });
  EXPECT_EQ(live_status(port), 200) << "while the slow clients stall";
  const auto [head_answer, head_closed] = until_closed(head);
  EXPECT_EQ(sf::raw_status(head_answer), 408) << head_answer;
  EXPECT_TRUE(head_closed);
  EXPECT_NE(head_answer.find("serve.header_timeout_s"), std::string::npos) << head_answer;
  const auto [body_answer, body_closed] = until_closed(body);
  EXPECT_EQ(sf::raw_status(body_answer), 408) << body_answer;
  EXPECT_TRUE(body_closed);
  EXPECT_NE(body_answer.find("serve.body_timeout_s"), std::string::npos) << body_answer;
  const auto [idle_answer, idle_closed] = until_closed(idle);
  EXPECT_EQ(sf::raw_status(idle_answer), 200) << idle_answer;
  EXPECT_EQ(idle_answer.find("408"), std::string::npos) << "an idle connection is closed without an answer";
  EXPECT_TRUE(idle_closed);
  trickler.join();
  EXPECT_EQ(sf::raw_status(trickle_answer), 408) << trickle_answer;
  EXPECT_TRUE(trickle.closed_by_server());
  EXPECT_LT(trickled, slow.size()) << "the trickled head was never completed";

  // Many connections from one client: max_connections (16) are held, the rest closed at accept.
  std::string m;
  for (int i = 0; i < 100; ++i) {  // the closed connections above are no longer counted as open
    m = metrics_text(port);
    if (sf::metric(m, "vcpclip_connections_open") == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(sf::metric(m, "vcpclip_connections_open"), 1) << m;
  std::vector<std::unique_ptr<sf::RawConnection>> many;
  for (int i = 0; i < 24; ++i) many.push_back(std::make_unique<sf::RawConnection>(port));
  int closed_at_once = 0;
  for (size_t i = 16; i < many.size(); ++i) {
    many[i]->read_for(1.0);  // within the header timeout (2 s): only a refusal closes it this early
    closed_at_once += many[i]->closed_by_server();
  }
  EXPECT_EQ(closed_at_once, 8);
  for (size_t i = 0; i < 16; ++i) {
    EXPECT_TRUE(many[i]->connected());
    EXPECT_EQ(many[i]->read_for(15), "") << "a connection that never sent a byte is closed without an answer";
    EXPECT_TRUE(many[i]->closed_by_server()) << "connection " << i;
  }
  many.clear();
  EXPECT_EQ(live_status(port), 200) << "after the slow clients";
  for (int i = 0; i < 100; ++i) {
    m = metrics_text(port);
    if (sf::metric(m, "vcpclip_connections_open") == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(sf::metric(m, "vcpclip_connections_open"), 1) << m;
  EXPECT_EQ(sf::metric(m, "vcpclip_connections_refused_total"), 8) << m;
  EXPECT_EQ(sf::metric(m, "vcpclip_timeouts_total{kind=\"header\"}"), 18) << m;  // head, trickle, 16 silent
  EXPECT_EQ(sf::metric(m, "vcpclip_timeouts_total{kind=\"body\"}"), 1) << m;
  EXPECT_EQ(sf::metric(m, "vcpclip_timeouts_total{kind=\"keep_alive\"}"), 1) << m;
  EXPECT_EQ(sf::metric(m, "vcpclip_timeouts_total{kind=\"write\"}"), 0) << m;
  EXPECT_NE(server.log().find("serve: file descriptors: limit"), std::string::npos) << server.log();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(30), 0) << server.log();
}

// Out of file descriptors (fault injection: the server runs under RLIMIT_NOFILE 96, soft and
// hard, so raising the soft limit gains nothing): connections past the limit wait in the backlog
// while accept fails with EMFILE; the server keeps running, backs off, logs it and counts it, and
// once the held connections close it accepts and answers the waiting ones and new ones as before.
TEST(ServeHostile, OutOfDescriptorsBacksOffAndRecovers) {
  const auto config = sf::config_file("serve_emfile", "  header_timeout_s: 30\n  max_connections: 10000\n");
  sf::ServerProcess server(config, {}, kToken, 96);
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  const int port = server.port();
  std::vector<std::unique_ptr<sf::RawConnection>> held;
  for (int i = 0; i < 160; ++i) held.push_back(std::make_unique<sf::RawConnection>(port));
  for (const auto& c : held) ASSERT_TRUE(c->connected());
  // The last connections wait in the backlog: a request sent on one is not answered yet.
  ASSERT_TRUE(held.back()->send_bytes("GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(held.back()->read_for(2.0), "") << "answered although the server has no descriptor left";
  std::string log;
  for (int i = 0; i < 100 && log.find("serve: accept failed") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    log = server.log();
  }
  EXPECT_NE(log.find("serve: accept failed (Too many open files)"), std::string::npos) << log;
  EXPECT_NE(log.find("the descriptor limit 96 is below serve.max_connections"), std::string::npos) << log;
  // Closing the others frees descriptors: the waiting request is accepted and answered.
  auto waiting = std::move(held.back());
  held.pop_back();
  held.clear();
  const std::string answer = waiting->read_for(15);
  EXPECT_EQ(sf::raw_status(answer), 200) << answer;
  EXPECT_EQ(live_status(port), 200) << "after the descriptors came back";
  const std::string m = metrics_text(port);
  EXPECT_GT(sf::metric(m, "vcpclip_accept_backoffs_total"), 0) << m;
  EXPECT_EQ(sf::metric(m, "vcpclip_connections_refused_total"), 0) << m;
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(30), 0) << server.log();
}
