// Predict throughput (images/s of VcpClip::predict_maps) and peak RSS on the weights written by
// scripts/bench_predict_reference.py, printed next to the reference's numbers with the ratio.
//   /usr/bin/python3 scripts/bench_predict_reference.py --out /tmp/vcp_bench --threads 2 --images 8
//   build/bench_predict --dir /tmp/vcp_bench --threads 2 --images 8 [--batch 8]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "vcpclip/model/tokenizer.h"
#include "vcpclip/model/vcp_clip.h"

namespace {

double peak_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp/vcp_bench";
  int threads = 2, images = 8, batch = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--dir"))
      dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--images"))
      images = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--batch"))
      batch = std::stoi(argv[i + 1]);
  }
  at::set_num_threads(threads);
  nlohmann::json ref;
  {
    std::ifstream in(dir + "/reference_times.json");
    if (!in) {
      std::fprintf(stderr, "run scripts/bench_predict_reference.py --out %s first\n", dir.c_str());
      return 1;
    }
    ref = nlohmann::json::parse(in);
  }
  std::printf("%-6s %6s %12s %12s %8s\n", "config", "S", "C++ img/s", "ref img/s", "ratio");
  for (const std::string name : {"tiny", "mid"}) {
    const auto& r = ref.at(name);
    vcpclip::model::ModelOptions o;
    o.backbone = dir + "/" + name + "_clip.json";
    o.weights = dir + "/" + name + "_clip.pt";
    o.image_size = r.at("image_size").get<int64_t>();
    o.features_list = r.at("features_list").get<std::vector<int64_t>>();
    auto model = vcpclip::model::build_vcp_clip(o, c10::Device(c10::kCPU));
    vcpclip::model::load_vcp_checkpoint(*model, dir + "/" + name + ".pth");
    model->eval();
    auto x = at::randn({images, 3, o.image_size, o.image_size});
    model->predict_maps(x.slice(0, 0, 1));  // warm-up
    auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < images; s += batch) model->predict_maps(x.slice(0, s, std::min(images, s + batch)));
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double ips = images / dt, rips = r.at("images_per_s").get<double>();
    std::printf("%-6s %6lld %12.2f %12.2f %7.2fx\n", name.c_str(), static_cast<long long>(o.image_size), ips, rips,
                ips / rips);
  }
  std::printf("peak RSS: C++ %.0f MB, reference %.0f MB (threads %d, batch %d)\n", peak_rss_mb(),
              ref.at("peak_rss_mb").get<double>(), threads, batch);
  return 0;
}
