#pragma once
// `vcpclip eval --export-png` (eval.export_png): the pictures of an evaluation, written under
// <out_dir>/imgs/ by app::run_eval after the metrics:
//   <class>/<defect>/<stem>.png          4-panel strip (eval/visualize.h strip_image) at the
//                                        class's pixel F1 threshold
//   <class>/<defect>/<stem>_heatmap.png  the map over the image
//   <class>/roc.png, <class>/pro.png     pixel ROC and per-region-overlap curves
//   index.json                           where to look: per class the best and the worst
//                                        anomalous strip (by the image's own pixel AUROC), the
//                                        curve plots; {"classes": [{"name", "roc", "pro",
//                                        "best": {"strip", "pixel_auroc"}, "worst": {...},
//                                        "strips": [{"strip", "heatmap", "defect", "anomalous",
//                                        "score" (class-normalised), "pixel_auroc" (null for a
//                                        normal image)}, ...] every strip written, in selection
//                                        order}]}, paths relative to <out_dir>
// Strips per class: at most eval.png_limit (0 = all); the best and the worst anomalous image are
// always among them, then the others in dataset order.
#include <map>
#include <string>
#include <vector>

#include "vcpclip/app/evaluate.h"
#include "vcpclip/data/datasets.h"
#include "vcpclip/eval/accumulator.h"

namespace vcpclip::app {

/// Writes the PNGs and index.json described above. `accs` are the class-normalised accumulators
/// of `result` (same order), `infos` maps an accumulator id to its sample (image path).
void export_eval_pngs(const EvalRequest& req, const std::vector<eval::ClassAccumulator>& accs,
                      const std::map<std::string, data::SampleInfo>& infos, const EvalResult& result);

/// The image's own pixel AUROC (its map against its mask, on at most ~4096 evenly strided
/// pixels); nullopt for an image without defect pixels or without normal pixels.
eval::Metric image_pixel_auroc(const eval::ClassAccumulator& acc, size_t i);

}  // namespace vcpclip::app
