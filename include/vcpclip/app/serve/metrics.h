#pragma once
// Counters of `vcpclip serve` in the Prometheus text format (GET /metrics, README "Serving"):
//   vcpclip_requests_total{path,status}        requests answered (unknown paths count as "other")
//   vcpclip_request_seconds                    histogram of the time from routing to the answer
//   vcpclip_batch_size                         histogram of the images per forward pass
//   vcpclip_queue_depth                        images waiting for a batch (gauge)
//   vcpclip_images_processed_total             images that went through the model
//   vcpclip_connections_open                   connections held now (gauge)
//   vcpclip_connections_accepted_total         connections accepted
//   vcpclip_connections_refused_total          connections closed at accept (serve.max_connections)
//   vcpclip_timeouts_total{kind}               connections ended by a timeout: header, body,
//                                              keep_alive (idle), write (the client did not read)
//   vcpclip_accept_backoffs_total              accepts that failed for want of descriptors
//                                              (EMFILE/ENFILE) and were retried after a pause
// Thread-safe: the request and batch counters take one mutex (a few hundred nanoseconds per
// request); the connection counters are atomics (the I/O threads never wait on that mutex).
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace vcpclip::app {

class ServeMetrics {
 public:
  /// Which deadline ended a connection (none: not a timeout that is counted).
  enum class Timeout { none, header, body, keep_alive, write };

  ServeMetrics();
  /// One answered request; `path` is mapped to a known route or "other".
  void observe_request(const std::string& path, int status, double seconds);
  /// One forward pass over `images` images.
  void observe_batch(int images);
  /// The exposition text, with the current queue depth.
  std::string prometheus(size_t queue_depth) const;
  /// Requests answered so far with `status` on `path` (tests, bench).
  uint64_t requests(const std::string& path, int status) const;

  void connection_opened() {
    ++open_;
    ++accepted_;
  }
  void connection_closed() { --open_; }
  int64_t connections_open() const { return open_; }
  void observe_refused() { ++refused_; }
  void observe_timeout(Timeout kind) {
    if (kind != Timeout::none) ++timeouts_[static_cast<int>(kind)];
  }
  uint64_t timeouts(Timeout kind) const { return timeouts_[static_cast<int>(kind)]; }
  void observe_accept_backoff() { ++accept_backoffs_; }

 private:
  struct Histogram {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  ///< per bucket (not cumulative), plus +Inf at the end
    double sum = 0;
    uint64_t total = 0;
    void add(double v);
    void write(std::string& out, const std::string& name) const;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  Histogram latency_, batch_;
  uint64_t images_ = 0;
  std::atomic<int64_t> open_{0};
  std::atomic<uint64_t> accepted_{0}, refused_{0}, accept_backoffs_{0};
  std::atomic<uint64_t> timeouts_[5] = {};
};

/// The route label of a request path: the path itself for the server's routes, else "other".
std::string route_label(const std::string& path);

}  // namespace vcpclip::app
