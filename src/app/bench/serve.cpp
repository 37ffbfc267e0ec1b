// `vcpclip bench --only serve`: what `vcpclip serve` adds (README "Serving"). For the tiny
// fixture model (S=64) and the mid model (a ViT-B-16-like tower at width 384, S=224, random
// weights), in this process, side by side and repeated:
//   latency at concurrency 1: median over sequential requests of POST /v1/predict (loopback,
//     PNG bytes in, JSON out) vs Inferencer::predict on the decoded image; target: added
//     ≤ 5 % + 2 ms
//   throughput with 8 concurrent clients (dynamic batching, max_batch 8) vs `vcpclip predict`
//     (run_predict, batch 8, heatmaps and maps written) on the same images; target ≥ 0.9×
#include "vcpclip/app/serve/serve.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <thread>

#include "sections.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/config/run_util.h"
#include "vcpclip/app/predict.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/http_lib.h"

namespace fs = std::filesystem;

namespace vcpclip::app::bench_detail {
namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

/// Writes the case's config (and, for mid, a checkpoint of its random model); returns the config path.
std::string write_case(const std::string& name, const fs::path& dir, std::string* checkpoint) {
  std::ofstream cfg(dir / (name + ".yaml"));
  cfg << "runtime:\n  threads: 0\nmodel:\n";
  if (name == "tiny") {
    const std::string fx = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/vcp/";
    cfg << "  backbone: " << fx << "tiny_vcp_clip.json\n  weights: " << fx
        << "tiny_vcp_clip.pt\n  image_size: 64\n  features_list: [2, 3, 4]\n";
    *checkpoint = fx + "tiny_vcp.pth";
  } else {
    std::ofstream(dir / "mid.json") << kMidBackbone;
    cfg << "  backbone: " << (dir / "mid.json").string() << "\n  image_size: 224\n  features_list: [2, 4, 5, 6]\n";
    cfg.flush();
    const auto opts = *load_run_config((dir / (name + ".yaml")).string()).model;
    auto model = build_quiet(opts, c10::Device(c10::kCPU));
    *checkpoint = (dir / "mid.pth").string();
    model::save_vcp_checkpoint(*model, *checkpoint);
  }
  cfg << "predict:\n  batch_size: 8\nserve:\n  port: 0\n  max_batch: 8\n  max_wait_ms: 5\n";
  return (dir / (name + ".yaml")).string();
}

/// Random-texture PNGs of 256×256 (the same files for every column).
std::vector<std::string> write_images(const fs::path& dir, int n) {
  fs::create_directories(dir);
  std::mt19937 rng(7);
  std::vector<std::string> paths;
  for (int i = 0; i < n; ++i) {
    cv::Mat m(256, 256, CV_8UC3);
    cv::randu(m, cv::Scalar::all(0), cv::Scalar::all(255));
    cv::GaussianBlur(m, m, cv::Size(9, 9), 3);
    paths.push_back((dir / ("img_" + std::to_string(i) + ".png")).string());
    cv::imwrite(paths.back(), m);
  }
  return paths;
}

}  // namespace

using Row = ServeRow;

ServeRow measure_serve(const std::string& config, const std::string& checkpoint, const std::vector<std::string>& paths,
                       int requests, const fs::path& out) {
  Row row;
  std::vector<std::string> bodies;
  std::vector<cv::Mat> decoded;
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    bodies.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    decoded.push_back(cv::imread(p, cv::IMREAD_UNCHANGED));
  }
  ServeFlags flags;
  flags.config = config;
  flags.checkpoint = checkpoint;
  const ServeRequest req = make_serve_request(flags);
  ServeServer server(req.serve);
  const int port = server.bind();
  std::thread http([&] { server.listen(); });
  ServeModel model = load_serve_model(req);
  const Inferencer& inf = *model.inferencer;
  std::vector<double> direct, over_http;
  for (int i = 0; i < requests; ++i) {  // Inferencer::predict, one image at a time
    const auto t0 = Clock::now();
    inf.predict(decoded[i % decoded.size()]);
    direct.push_back(seconds_since(t0) * 1e3);
  }
  server.set_model(std::move(model));
  httplib::Client c("127.0.0.1", port);
  c.set_keep_alive(true);
  c.set_tcp_nodelay(true);  // as curl and most HTTP clients do
  for (int i = 0; i < requests; ++i) {
    const auto t0 = Clock::now();
    auto r = c.Post("/v1/predict", bodies[i % bodies.size()], "image/png");
    VCP_CHECK(r && r->status == 200, "bench serve: a request failed");
    over_http.push_back(seconds_since(t0) * 1e3);
  }
  row.direct_ms = median(direct);
  row.http_ms = median(over_http);
  std::atomic<int> next{0};
  const int total = 4 * requests;
  const auto t0 = Clock::now();
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&] {
      httplib::Client cc("127.0.0.1", port);
      cc.set_keep_alive(true);
      cc.set_tcp_nodelay(true);
      cc.set_read_timeout(300, 0);
      for (int i = next++; i < total; i = next++) cc.Post("/v1/predict", bodies[i % bodies.size()], "image/png");
    });
  for (auto& t : clients) t.join();
  row.serve_ips = total / seconds_since(t0);
  server.drain();
  http.join();
  PredictFlags pf;
  pf.checkpoint = checkpoint;
  pf.inputs = paths;
  pf.out_dir = out.string();
  pf.progress = false;
  row.predict_ips = run_predict(make_predict_request(load_run_config(config), pf)).images_per_second;
  return row;
}

nlohmann::json serve_section(BenchContext& ctx) {
  ctx.section("serve");
  const fs::path dir = ctx.work / "serve";
  fs::create_directories(dir);
  const int repeats = ctx.opts.quick ? 1 : std::max(1, ctx.opts.repeats);
  ctx.out << "\n[serve] vcpclip serve on loopback vs Inferencer::predict (concurrency 1, median ms) and vs "
             "`vcpclip predict` (8 clients, img/s; predict batch 8); 256x256 PNGs, "
          << repeats << " repetition(s): median [min, max]\n";
  char line[240];
  std::snprintf(line, sizeof line, "  %-5s %4s %22s %22s %9s %20s %20s %7s\n", "model", "S", "Inferencer ms", "HTTP ms",
                "added", "serve img/s", "predict img/s", "ratio");
  ctx.out << line;
  nlohmann::json arr = nlohmann::json::array();
  for (const std::string name : {"tiny", "mid"}) {
    if (ctx.opts.quick && name != "tiny") continue;
    std::string checkpoint;
    const std::string config = write_case(name, dir, &checkpoint);
    const auto paths = write_images(dir / (name + "_images"), name == "tiny" ? 32 : 16);
    const int requests = ctx.opts.quick ? 8 : (name == "tiny" ? 64 : 16);
    std::vector<Row> rows;
    for (int r = 0; r < repeats; ++r)
      rows.push_back(measure_serve(config, checkpoint, paths, requests, dir / (name + "_out")));
    auto stat = [&](double Row::*f) {
      std::vector<double> v;
      for (const auto& r : rows) v.push_back(r.*f);
      return std::array<double, 3>{median(v), *std::min_element(v.begin(), v.end()),
                                   *std::max_element(v.begin(), v.end())};
    };
    const auto d = stat(&Row::direct_ms), h = stat(&Row::http_ms), s = stat(&Row::serve_ips),
               p = stat(&Row::predict_ips);
    auto cell = [](const std::array<double, 3>& v) {
      return fmt("%.2f", v[0]) + " [" + fmt("%.2f", v[1]) + ", " + fmt("%.2f", v[2]) + "]";
    };
    const double added = h[0] - d[0], allowed = 0.05 * d[0] + 2.0;
    const int64_t size = name == "tiny" ? 64 : 224;
    std::snprintf(line, sizeof line, "  %-5s %4lld %22s %22s %9s %20s %20s %6.2fx\n", name.c_str(), (long long)size,
                  cell(d).c_str(), cell(h).c_str(), fmt("%+.2f ms", added).c_str(), cell(s).c_str(), cell(p).c_str(),
                  s[0] / p[0]);
    ctx.out << line << std::flush;
    arr.push_back({{"model", name},
                   {"image_size", size},
                   {"inferencer_ms", d},
                   {"http_ms", h},
                   {"added_ms", added},
                   {"added_target_ms", allowed},
                   {"added_within_target", added <= allowed},
                   {"serve_images_per_second", s},
                   {"predict_images_per_second", p},
                   {"throughput_ratio", s[0] / p[0]},
                   {"throughput_within_target", s[0] >= 0.9 * p[0]}});
  }
  return {{"repeats", repeats}, {"cases", arr}};
}

}  // namespace vcpclip::app::bench_detail
