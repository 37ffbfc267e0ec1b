// The `serve:` config section (see include/vcpclip/app/config/serve_options.h).
#include "vcpclip/app/config/serve_options.h"

#include "vcpclip/common/error.h"

namespace vcpclip::app {
namespace {

template <typename T>
T in_range(io::ConfigNode& node, const std::string& key, T fallback, T lo, T hi) {
  const T v = node.get<T>(key, fallback);
  VCP_CHECK(v >= lo && v <= hi, "config key ", node.where(key), ": expected ", lo, "..", hi, ", found ", v);
  return v;
}

}  // namespace

ServeOptions parse_serve_options(io::ConfigNode& node) {
  ServeOptions o;
  o.host = node.get<std::string>("host", o.host);
  VCP_CHECK(!o.host.empty(), "config key ", node.where("host"), ": expected an address, found an empty text");
  o.port = in_range(node, "port", o.port, 0, 65535);
  o.max_batch = in_range(node, "max_batch", o.max_batch, 1, 1024);
  o.max_wait_ms = in_range(node, "max_wait_ms", o.max_wait_ms, 0, 60000);
  const std::string wait = node.get<std::string>("batch_wait", "arriving");
  VCP_CHECK(wait == "arriving" || wait == "always", "config key ", node.where("batch_wait"),
            ": expected arriving or always, found '", wait, "'");
  o.wait_always = wait == "always";
  o.queue = in_range(node, "queue", o.queue, 1, 100000);
  o.max_body_mb = in_range<int64_t>(node, "max_body_mb", o.max_body_mb, 1, 4096);
  o.max_pixels = in_range<int64_t>(node, "max_pixels", o.max_pixels, 1, int64_t{1} << 34);
  o.timeout_s = in_range(node, "timeout_s", o.timeout_s, 1, 3600);
  o.header_timeout_s = in_range(node, "header_timeout_s", o.header_timeout_s, 1, 3600);
  o.body_timeout_s = in_range(node, "body_timeout_s", o.body_timeout_s, 1, 3600);
  o.keep_alive_timeout_s = in_range(node, "keep_alive_timeout_s", o.keep_alive_timeout_s, 1, 3600);
  o.max_connections = in_range<int64_t>(node, "max_connections", o.max_connections, 1, 10000000);
  o.io_threads = in_range(node, "io_threads", o.io_threads, 1, 64);
  o.token = node.get<std::string>("token", o.token);
  o.threads = in_range(node, "threads", o.threads, 0, 4096);
  node.finish();
  return o;
}

}  // namespace vcpclip::app
