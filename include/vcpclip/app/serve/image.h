#pragma once
// Request bodies and pictures of `vcpclip serve` (README "Serving"): image bytes decoded under
// the pixel limit, base64, and the PNGs of an answer (overlay, mask, grey levels).
//
// decode_request_image never decodes an image whose header announces more than `max_pixels`
// pixels (PNG, JPEG, BMP, GIF, WebP headers are read first; other formats are bounded by OpenCV's
// OPENCV_IO_MAX_IMAGE_PIXELS, which run_serve sets to the same limit, and checked after decoding).
#include <cstdint>
#include <opencv2/core.hpp>
#include <optional>
#include <stdexcept>
#include <string>

namespace vcpclip::app {

/// An error answered as {"error": message} with an HTTP status.
class ServeError : public std::runtime_error {
 public:
  ServeError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

/// Width and height announced by an image header (PNG, JPEG, BMP, GIF, WebP); nothing when the
/// format is another one or the header is too short to tell.
std::optional<cv::Size> announced_size(const std::string& bytes);

/// The image of a request body as OpenCV decodes it (IMREAD_UNCHANGED, EXIF orientation
/// ignored, as `vcpclip predict` reads files). ServeError 400 (empty, corrupt, unsupported
/// depth or channels) or 413 (over `max_pixels`).
cv::Mat decode_request_image(const std::string& bytes, int64_t max_pixels);

std::string base64_encode(const std::string& bytes);
/// Strict RFC 4648 base64 (padding optional, no whitespace); ServeError 400 naming `what` otherwise.
std::string base64_decode(const std::string& text, const std::string& what);

/// The pixel map scaled to [0, 1]: by the calibration's map range when given (lo < hi), else
/// by the map's own minimum and maximum. CV_32F, the map's size.
cv::Mat unit_map(const cv::Mat& map, std::optional<std::pair<float, float>> range);

/// PNG bytes of an 8-bit image (ServeError 500 when OpenCV cannot encode it).
std::string png_bytes(const cv::Mat& image);

/// The JET overlay of `map01` over the decoded image (eval::jet_overlay, alpha 0.5), as PNG.
std::string overlay_png(const cv::Mat& decoded, const cv::Mat& map01);

/// `map01` as an 8-bit grey PNG (0..255 = 0..1, rounded): the page's threshold slider.
std::string levels_png(const cv::Mat& map01);

}  // namespace vcpclip::app
