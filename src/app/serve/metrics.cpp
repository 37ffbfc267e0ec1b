// Prometheus counters of `vcpclip serve` (see include/vcpclip/app/serve/metrics.h).
#include "vcpclip/app/serve/metrics.h"

#include <algorithm>
#include <cstdio>
#include <set>

namespace vcpclip::app {
namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

std::string route_label(const std::string& path) {
  static const std::set<std::string> known{"/",
                                           "/v1/predict",
                                           "/v2/health/live",
                                           "/v2/health/ready",
                                           "/v2/models/vcpclip",
                                           "/v2/models/vcpclip/ready",
                                           "/v2/models/vcpclip/infer",
                                           "/metrics"};
  return known.count(path) ? path : "other";
}

ServeMetrics::ServeMetrics() {
  latency_.bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  batch_.bounds = {1, 2, 4, 8, 16, 32, 64, 128};
  latency_.counts.assign(latency_.bounds.size() + 1, 0);
  batch_.counts.assign(batch_.bounds.size() + 1, 0);
}

void ServeMetrics::Histogram::add(double v) {
  const size_t i = std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin();
  ++counts[i];
  sum += v;
  ++total;
}

void ServeMetrics::Histogram::write(std::string& out, const std::string& name) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i];
    out += name + "_bucket{le=\"" + number(bounds[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(total) + "\n";
  out += name + "_sum " + number(sum) + "\n";
  out += name + "_count " + std::to_string(total) + "\n";
}

void ServeMetrics::observe_request(const std::string& path, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route_label(path), status}];
  latency_.add(seconds);
}

void ServeMetrics::observe_batch(int images) {
  std::lock_guard<std::mutex> lock(mutex_);
  batch_.add(images);
  images_ += static_cast<uint64_t>(images);
}

uint64_t ServeMetrics::requests(const std::string& path, int status) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = requests_.find({route_label(path), status});
  return it == requests_.end() ? 0 : it->second;
}

std::string ServeMetrics::prometheus(size_t queue_depth) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  out += "# HELP vcpclip_requests_total HTTP requests answered, by route and status.\n";
  out += "# TYPE vcpclip_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += "vcpclip_requests_total{path=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(n) + "\n";
  out += "# HELP vcpclip_request_seconds Time from routing a request to its answer.\n";
  out += "# TYPE vcpclip_request_seconds histogram\n";
  latency_.write(out, "vcpclip_request_seconds");
  out += "# HELP vcpclip_batch_size Images per forward pass.\n";
  out += "# TYPE vcpclip_batch_size histogram\n";
  batch_.write(out, "vcpclip_batch_size");
  out += "# HELP vcpclip_queue_depth Images waiting for a batch.\n";
  out += "# TYPE vcpclip_queue_depth gauge\n";
  out += "vcpclip_queue_depth " + std::to_string(queue_depth) + "\n";
  out += "# HELP vcpclip_images_processed_total Images that went through the model.\n";
  out += "# TYPE vcpclip_images_processed_total counter\n";
  out += "vcpclip_images_processed_total " + std::to_string(images_) + "\n";
  out += "# HELP vcpclip_connections_open Connections held now.\n";
  out += "# TYPE vcpclip_connections_open gauge\n";
  out += "vcpclip_connections_open " + std::to_string(open_.load()) + "\n";
  out += "# HELP vcpclip_connections_accepted_total Connections accepted.\n";
  out += "# TYPE vcpclip_connections_accepted_total counter\n";
  out += "vcpclip_connections_accepted_total " + std::to_string(accepted_.load()) + "\n";
  out += "# HELP vcpclip_connections_refused_total Connections closed at accept: serve.max_connections were open.\n";
  out += "# TYPE vcpclip_connections_refused_total counter\n";
  out += "vcpclip_connections_refused_total " + std::to_string(refused_.load()) + "\n";
  out += "# HELP vcpclip_timeouts_total Connections ended by a timeout, by the phase that ran out of time.\n";
  out += "# TYPE vcpclip_timeouts_total counter\n";
  const char* kinds[] = {"", "header", "body", "keep_alive", "write"};
  for (int k = 1; k < 5; ++k)
    out +=
        std::string("vcpclip_timeouts_total{kind=\"") + kinds[k] + "\"} " + std::to_string(timeouts_[k].load()) + "\n";
  out += "# HELP vcpclip_accept_backoffs_total Accepts that failed for want of file descriptors (EMFILE/ENFILE).\n";
  out += "# TYPE vcpclip_accept_backoffs_total counter\n";
  out += "vcpclip_accept_backoffs_total " + std::to_string(accept_backoffs_.load()) + "\n";
  return out;
}

}  // namespace vcpclip::app
