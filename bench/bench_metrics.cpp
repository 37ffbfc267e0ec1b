// bench_metrics: time of all metrics (pixel AUROC, AP, F1-max + IoU, AUPRO exact and reference,
// image metrics) for one class of synthetic 518² maps, peak RSS, and — with python3 — the same
// metrics computed by scikit-learn + the reference 200-step cal_pro_score on a subset, side by side.
//
//   bench_metrics [--maps 400] [--size 518] [--threads 2] [--rss-maps 0] [--python-maps 0]
//                 [--ref /tmp/ref]
//   --rss-maps N    afterwards, accumulate N maps (e.g. 1725, a whole MVTec AD test set) in one
//                   class, compute all metrics and print the peak RSS
//   --python-maps K write the first K maps to a temporary folder and time
//                   bench/reference/bench_metrics_reference.py on them (and this code on the same K)
#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <opencv2/imgproc.hpp>
#include <random>
#include <string>

#include "vcpclip/app/bench/bench.h"
#include "vcpclip/build_info.h"
#include "vcpclip/eval/accumulator.h"

using namespace vcpclip::eval;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

using vcpclip::app::peak_rss_mb;

// Synthetic maps: smooth random field + bumps over 0–3 elliptic defects (shared with `vcpclip bench`).
static void fill(ClassAccumulator& acc, int n, int size, uint32_t seed) {
  vcpclip::app::fill_synthetic_maps(acc, n, size, seed);
}

static double time_metrics(const ClassAccumulator& acc, AuproMode mode, ClassMetrics* out) {
  MetricsOptions o;
  o.aupro = mode;
  auto t0 = Clock::now();
  *out = acc.compute(o);
  return seconds_since(t0);
}

static std::string show(const Metric& m) {
  if (!m) return "null";
  char b[32];
  std::snprintf(b, sizeof b, "%.6f", *m);
  return b;
}

int main(int argc, char** argv) {
  int maps = 400, size = 518, threads = 2, rss_maps = 0, py_maps = 0;
  std::string ref = "/tmp/ref";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--maps")
      maps = std::atoi(argv[i + 1]);
    else if (a == "--size")
      size = std::atoi(argv[i + 1]);
    else if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--rss-maps")
      rss_maps = std::atoi(argv[i + 1]);
    else if (a == "--python-maps")
      py_maps = std::atoi(argv[i + 1]);
    else if (a == "--ref")
      ref = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  std::printf("bench_metrics: %d maps of %dx%d in one class, %d threads\n", maps, size, size, threads);
  ClassAccumulator acc("synthetic");
  auto t0 = Clock::now();
  fill(acc, maps, size, 1234);
  std::printf("  synthetic data: %.2f s, accumulator holds %.1f MB\n", seconds_since(t0), acc.memory_bytes() / 1e6);
  ClassMetrics m;
  const double te = time_metrics(acc, AuproMode::kExact, &m);
  std::printf(
      "  all metrics, AUPRO exact:     %.3f s  (pixel AUROC %s, AUPRO %s, AP %s, F1 %s @ %s, IoU %s; "
      "image AUROC %s)\n",
      te, show(m.pixel.auroc).c_str(), show(m.pixel.aupro).c_str(), show(m.pixel.ap).c_str(),
      show(m.pixel.f1_max).c_str(), show(m.pixel.f1_threshold).c_str(), show(m.pixel.iou).c_str(),
      show(m.image.auroc).c_str());
  const double tr = time_metrics(acc, AuproMode::kReference, &m);
  std::printf("  all metrics, AUPRO reference: %.3f s  (AUPRO %s)\n", tr, show(m.pixel.aupro).c_str());
  std::printf("  peak RSS: %.0f MB\n", peak_rss_mb());

  if (py_maps > 0) {
    py_maps = std::min(py_maps, maps);
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("vcpclip_bench_metrics_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    ClassAccumulator sub("subset");
    {
      std::ofstream fm(dir / "maps.f32", std::ios::binary), fg(dir / "masks.u8", std::ios::binary);
      for (int i = 0; i < py_maps; ++i) {
        fm.write(reinterpret_cast<const char*>(acc.map(i)), std::streamsize(sizeof(float) * size * size));
        fg.write(reinterpret_cast<const char*>(acc.mask(i)), std::streamsize(size * size));
        sub.add(acc.id(i), acc.map(i), acc.mask(i), size, size, acc.score(i), acc.label(i));
      }
    }
    ClassMetrics ms;
    const double ce = time_metrics(sub, AuproMode::kExact, &ms);
    const double cr = time_metrics(sub, AuproMode::kReference, &ms);
    std::string why;
    const std::string python = vcpclip::app::find_python_with_torch(&why).value_or("python3");
    const std::string cmd = python + " " + std::string(VCPCLIP_SOURCE_DIR) +
                            "/bench/reference/bench_metrics_reference.py --maps " + (dir / "maps.f32").string() +
                            " --masks " + (dir / "masks.u8").string() + " --shape " + std::to_string(py_maps) + "," +
                            std::to_string(size) + "," + std::to_string(size) + " --ref " + ref + " > " +
                            (dir / "py.txt").string();
    std::printf("  python (sklearn + reference cal_pro_score) on the first %d maps ...\n", py_maps);
    std::fflush(stdout);
    const int rc = std::system(cmd.c_str());
    double py_total = -1;
    if (rc == 0) {
      std::ifstream f(dir / "py.txt");
      std::string line;
      while (std::getline(f, line)) {
        std::printf("    %s\n", line.c_str());
        if (line.rfind("total_seconds ", 0) == 0) py_total = std::atof(line.c_str() + 14);
      }
    } else {
      std::printf("    python run failed (exit %d); no comparison\n", rc);
    }
    std::printf("  this code on the same %d maps: %.3f s (exact AUPRO), %.3f s (reference AUPRO)\n", py_maps, ce, cr);
    std::printf("    values auroc %s ap %s f1 %s iou %s aupro_reference %s\n", show(ms.pixel.auroc).c_str(),
                show(ms.pixel.ap).c_str(), show(ms.pixel.f1_max).c_str(), show(ms.pixel.iou).c_str(),
                show(ms.pixel.aupro).c_str());
    if (py_total > 0)
      std::printf("  speed-up vs python: %.0fx (exact), %.0fx (reference)\n", py_total / ce, py_total / cr);
    fs::remove_all(dir);
  }

  if (rss_maps > 0) {
    acc = ClassAccumulator("released");  // free the first class so the peak below is this one's
    ClassAccumulator big("rss");
    t0 = Clock::now();
    fill(big, rss_maps, size, 99);
    const double tf = seconds_since(t0);
    const double tb = time_metrics(big, AuproMode::kExact, &m);
    std::printf("  %d maps: accumulate %.1f s (%.0f MB held), all metrics %.2f s, peak RSS %.0f MB\n", rss_maps, tf,
                big.memory_bytes() / 1e6, tb, peak_rss_mb());
  }
  return 0;
}
