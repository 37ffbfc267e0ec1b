#pragma once
// The `serve:` section of a run config (`vcpclip serve`, README "Serving"):
//
//   serve:
//     host: 127.0.0.1        # bind address; another host without a token logs a warning
//     port: 8080             # 0 = any free port (the chosen one is printed)
//     max_batch: 8           # images per forward pass (dynamic batching)
//     max_wait_ms: 5         # how long the first queued image waits for others
//     batch_wait: arriving   # arriving: wait only while other requests are decoding their image
//                            # (a lone request runs at once); always: wait max_wait_ms for a fuller
//                            # batch whenever it is not full (Triton's fixed queue delay)
//     queue: 64              # queued images; one more is answered 503 at once
//     max_body_mb: 32        # request body limit (413 above)
//     max_pixels: 40000000   # decoded pixel limit (413 above; checked from the header first)
//     timeout_s: 30          # answer write limit, per-request wait for the model, drain limit,
//                            # and the upper bound of the three connection timeouts below
//     header_timeout_s: 10   # the whole request head must arrive within it (from accept, or
//                            # from the first byte on a kept-alive connection); 408 and close
//     body_timeout_s: 30     # the whole body must arrive within it after the head; 408 and close
//     keep_alive_timeout_s: 5  # an idle kept-alive connection is closed after it
//     max_connections: 10000 # open connections; more are closed at accept (and counted)
//     io_threads: 2          # event-loop threads that own every connection
//     token: ""              # bearer token ("" = none; VCPCLIP_SERVE_TOKEN wins when set)
//     threads: 0             # worker threads for the inference endpoints: decoding and waiting
//                            # for the batch (0 = queue + 16, so a full queue answers 503)
#include <cstdint>
#include <string>

#include "vcpclip/io/config_node.h"

namespace vcpclip::app {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  int max_batch = 8;
  int max_wait_ms = 5;
  bool wait_always = false;  ///< batch_wait: always (true) | arriving (false)
  int queue = 64;
  int64_t max_body_mb = 32;
  int64_t max_pixels = 40000000;
  int timeout_s = 30;
  int header_timeout_s = 10;
  int body_timeout_s = 30;
  int keep_alive_timeout_s = 5;
  int64_t max_connections = 10000;
  int io_threads = 2;
  std::string token;
  int threads = 0;

  /// The worker thread count (`threads`, or queue + 16 for 0).
  int worker_threads() const { return threads > 0 ? threads : queue + 16; }
};

/// Reads the `serve:` section (every key checked, calls finish()).
ServeOptions parse_serve_options(io::ConfigNode& node);

}  // namespace vcpclip::app
