#pragma once
// Pictures for people (OpenCV, BGR cv::Mat): heatmap overlays, the reference's 4-panel strip,
// ROC / PRO curve plots, and PNG writing.
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "vcpclip/eval/metrics.h"

namespace vcpclip::eval {

/// Reference apply_ad_scoremap: JET colour map of uint8(map·255) blended as
/// alpha·image + (1 − alpha)·heatmap, truncated to uint8. `bgr` CV_8UC3, `map01` CV_32F in [0,1]
/// of the same size (values outside are clamped). The heatmap of `eval --export-png` and of
/// `predict` (the reference's truncating arithmetic).
cv::Mat jet_overlay(const cv::Mat& bgr, const cv::Mat& map01, double alpha = 0.5);

/// (map − min) / (max − min) over the whole map (CV_32F); all zeros when the map is constant.
cv::Mat min_max_normalise(const cv::Mat& map);

/// The reference visualisation strip, four panels of panel×panel with 10-pixel white gaps, each
/// titled above:
///   image | anomaly map (overlay of the map min-max normalised over this image) |
///   map > threshold vs truth (the same overlay where map > threshold, else 0, with the
///   ground-truth contours in green) | ground truth (overlay of the mask)
/// and below panels 2–3 a JET colour bar labelled with the map values of its ends (this image's
/// minimum and maximum) and a tick at the threshold.
/// `map`: CV_32F (the class-normalised pixel map, compared with `threshold`); `gt`: CV_8U, > 0
/// = defect (may be empty = all normal). Sizes must match (vcpclip::Error otherwise).
/// Size: (4·panel + 30) × (panel + strip_title_height(panel) + strip_bar_height(panel)).
cv::Mat strip_image(const cv::Mat& bgr, const cv::Mat& map, const cv::Mat& gt, double threshold, int panel = 256);
int strip_title_height(int panel);
int strip_bar_height(int panel);

struct PlotSeries {
  std::string label;  ///< legend text, e.g. "bottle (AUROC 97.3)"
  Curve curve;
};

/// Line plot of curves on labelled axes [0, x_max] × [0, 1] with ticks, grid, title, legend and
/// distinct colours (a dashed diagonal for ROC plots with `diagonal`).
cv::Mat plot_curves(const std::vector<PlotSeries>& series, const std::string& title, const std::string& xlabel,
                    const std::string& ylabel, double x_max = 1.0, bool diagonal = false, int width = 640,
                    int height = 480);

/// Writes a PNG (parent folders created). Errors name the file.
void write_png(const std::string& path, const cv::Mat& image);

}  // namespace vcpclip::eval
