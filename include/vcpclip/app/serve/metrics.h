#pragma once
// Counters of `vcpclip serve` in the Prometheus text format (GET /metrics, README "Serving"):
//   vcpclip_requests_total{path,status}        requests answered (unknown paths count as "other")
//   vcpclip_request_seconds                    histogram of the time from routing to the answer
//   vcpclip_batch_size                         histogram of the images per forward pass
//   vcpclip_queue_depth                        images waiting for a batch (gauge)
//   vcpclip_images_processed_total             images that went through the model
// Thread-safe: every call takes one mutex (a few hundred nanoseconds per request).
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace vcpclip::app {

class ServeMetrics {
 public:
  ServeMetrics();
  /// One answered request; `path` is mapped to a known route or "other".
  void observe_request(const std::string& path, int status, double seconds);
  /// One forward pass over `images` images.
  void observe_batch(int images);
  /// The exposition text, with the current queue depth.
  std::string prometheus(size_t queue_depth) const;
  /// Requests answered so far with `status` on `path` (tests, bench).
  uint64_t requests(const std::string& path, int status) const;

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
};

/// The route label of a request path: the path itself for the server's routes, else "other".
std::string route_label(const std::string& path);

}  // namespace vcpclip::app
