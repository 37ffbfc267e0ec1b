#pragma once
// Image and mask preprocessing of docs/design.md §7 (shared by training and evaluation).
//
//   image: RGB uint8 → antialiased bicubic resize to S×S exactly as PIL's
//          Image.resize((S,S), Image.BICUBIC) (two separable 8-bit passes, a = -0.5) → /255 →
//          (x - CLIP mean) / CLIP std → [3,S,S] float32
//   mask:  (>0) → bilinear resize to S×S → ≥ 0.5 → [S,S] float32 0/1
#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>

namespace vcpclip::data {

/// CLIP normalisation constants.
inline constexpr std::array<double, 3> kClipMean{0.48145466, 0.4578275, 0.40821073};
inline constexpr std::array<double, 3> kClipStd{0.26862954, 0.26130258, 0.27577711};

/// Reads an image as 8-bit RGB (CV_8UC3; grey and RGBA inputs are converted, 16-bit scaled).
/// Throws vcpclip::Error naming the file if it is missing, empty or not a decodable image.
cv::Mat read_rgb(const std::string& path);

/// Channel order of an in-memory colour image (OpenCV decodes to BGR).
enum class ChannelOrder { kBGR, kRGB };

/// An in-memory image → CV_8UC3 RGB, converted as read_rgb converts decoded files: grey
/// replicated, alpha dropped, 16-bit scaled by 1/257. `what` names the image in errors
/// ("unsupported channel count 2 in <what>").
cv::Mat to_rgb(const cv::Mat& image, ChannelOrder order, const std::string& what);

/// Reads a mask as 8-bit single channel (colour masks: any non-zero channel counts as defect).
/// Throws vcpclip::Error naming the file if unreadable.
cv::Mat read_mask(const std::string& path);

/// PIL-exact antialiased bicubic resize of an 8-bit image (1 or 3 channels, CV_8UC1/CV_8UC3)
/// to width×height: horizontal pass then vertical pass, each rounded and clamped to uint8.
cv::Mat resize_bicubic_pil(const cv::Mat& src, int width, int height);

/// PIL-exact antialiased bilinear (triangle filter) resize of an 8-bit image (1 or 3 channels).
cv::Mat resize_bilinear_pil(const cv::Mat& src, int width, int height);

/// RGB uint8 image → [3,S,S] float32 CLIP-normalised tensor (CPU).
at::Tensor preprocess_image(const cv::Mat& rgb, int64_t size);

/// Mask (any 8-bit single-channel, > 0 = defect) → [S,S] float32 0/1 tensor (CPU).
/// An empty cv::Mat gives an all-zero mask.
at::Tensor preprocess_mask(const cv::Mat& mask, int64_t size);

/// read_rgb + preprocess_image.
at::Tensor load_image(const std::string& path, int64_t size);

/// read_mask + preprocess_mask; "" gives an all-zero [S,S] mask.
at::Tensor load_mask(const std::string& path, int64_t size);

/// Inverse of the CLIP normalisation: [3,S,S] (or [B,3,S,S]) float → uint8 RGB HWC cv::Mat of
/// the first image (for visualisation and tests).
cv::Mat denormalise_to_rgb(const at::Tensor& image);

}  // namespace vcpclip::data
