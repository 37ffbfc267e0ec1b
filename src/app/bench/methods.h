#pragma once
// `vcpclip bench --only methods` (methods.cpp; not part of the public API): every method's
// build_method(...)->predict_maps per image against its official test.py forward in Python, on the
// same random weight files, each side in its own process (its peak RSS), repetitions alternating
// the two sides. The C++ side is this binary again with the hidden option --method-child SPEC:
// SPEC is a JSON file {"model": {model keys, as a run config's model: section}, "checkpoint": path
// or "", "class_name": name for methods that need one, "images": N}; the child builds the method,
// loads the checkpoint, times predict_maps on N random images one at a time and returns
// {"seconds_per_image", "t1", "tN", "load_seconds", "peak_rss_mb", ...}.
#include <nlohmann/json.hpp>

#include "sections.h"
#include "vcpclip/app/bench/bench.h"

namespace vcpclip::app::bench_detail {

/// The section: one row per (size, method) of ctx.opts.method_sizes × {vcp_clip, april_gan, anomaly_clip}.
nlohmann::json methods_section(BenchContext& ctx);

/// The child process's measurement (opts.method_child names the spec file; `threads` as set up).
/// s/image = (t(N) - t(1)) / (N - 1) after one warm-up image.
nlohmann::json method_child_run(const BenchOptions& opts, int threads);

}  // namespace vcpclip::app::bench_detail
