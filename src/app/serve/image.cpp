// Request images and answer pictures of `vcpclip serve` (see include/vcpclip/app/serve/image.h).
#include "vcpclip/app/serve/image.h"

#include <array>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "vcpclip/data/transforms.h"
#include "vcpclip/eval/visualize.h"

namespace vcpclip::app {
namespace {

uint32_t be16(const std::string& b, size_t i) { return (uint8_t(b[i]) << 8) | uint8_t(b[i + 1]); }
uint32_t be32(const std::string& b, size_t i) { return (be16(b, i) << 16) | be16(b, i + 2); }
uint32_t le16(const std::string& b, size_t i) { return uint8_t(b[i]) | (uint8_t(b[i + 1]) << 8); }
uint32_t le32(const std::string& b, size_t i) { return le16(b, i) | (le16(b, i + 2) << 16); }
bool starts(const std::string& b, const char* magic, size_t n) {
  return b.size() >= n && b.compare(0, n, magic, n) == 0;
}

/// The frame header (SOFn) of a JPEG: walks the marker segments.
std::optional<cv::Size> jpeg_size(const std::string& b) {
  size_t i = 2;
  while (i + 9 < b.size()) {
    if (uint8_t(b[i]) != 0xFF) return std::nullopt;
    const uint8_t marker = uint8_t(b[i + 1]);
    if (marker == 0xFF) {
      ++i;
      continue;
    }
    const uint32_t len = be16(b, i + 2);
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) return cv::Size(static_cast<int>(be16(b, i + 7)), static_cast<int>(be16(b, i + 5)));
    if (len < 2) return std::nullopt;
    i += 2 + len;
  }
  return std::nullopt;
}

}  // namespace

std::optional<cv::Size> announced_size(const std::string& b) {
  auto size = [](uint64_t w, uint64_t h) {
    const uint64_t cap = 1u << 30;  // cv::Size is int: keep the product meaningful
    return cv::Size(static_cast<int>(std::min(w, cap)), static_cast<int>(std::min(h, cap)));
  };
  if (starts(b, "\x89PNG\r\n\x1a\n", 8) && b.size() >= 24) return size(be32(b, 16), be32(b, 20));
  if (starts(b, "\xFF\xD8", 2)) return jpeg_size(b);
  if (starts(b, "BM", 2) && b.size() >= 26) {
    const int32_t h = static_cast<int32_t>(le32(b, 22));
    return size(le32(b, 18), h < 0 ? -static_cast<int64_t>(h) : h);
  }
  if ((starts(b, "GIF87a", 6) || starts(b, "GIF89a", 6)) && b.size() >= 10) return size(le16(b, 6), le16(b, 8));
  if (starts(b, "RIFF", 4) && b.size() >= 30 && b.compare(8, 4, "WEBP") == 0) {
    if (b.compare(12, 4, "VP8X") == 0) return size(1 + (le32(b, 24) & 0xFFFFFF), 1 + (le32(b, 27) & 0xFFFFFF));
    if (b.compare(12, 4, "VP8 ") == 0) return size(le16(b, 26) & 0x3FFF, le16(b, 28) & 0x3FFF);
  }
  return std::nullopt;
}

cv::Mat decode_request_image(const std::string& bytes, int64_t max_pixels) {
  if (bytes.empty()) throw ServeError(400, "empty body: expected the bytes of an image file");
  auto over = [&](int64_t w, int64_t h) {
    return ServeError(413, "the image has " + std::to_string(w) + "x" + std::to_string(h) +
                               " pixels, over the limit of " + std::to_string(max_pixels) + " (serve.max_pixels)");
  };
  if (const auto s = announced_size(bytes); s && int64_t(s->width) * int64_t(s->height) > max_pixels)
    throw over(s->width, s->height);
  cv::Mat image;
  try {
    const cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
    image = cv::imdecode(buf, cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw ServeError(400, "cannot decode the image (OpenCV refused it: " + std::string(e.err) + ")");
  }
  if (image.empty()) throw ServeError(400, "cannot decode the image (not an image, or corrupt or truncated)");
  if (int64_t(image.cols) * image.rows > max_pixels) throw over(image.cols, image.rows);
  if (image.depth() != CV_8U && image.depth() != CV_16U)
    throw ServeError(400, "unsupported image: expected 8 or 16 bits per channel, found OpenCV depth " +
                              std::to_string(image.depth()));
  if (image.channels() != 1 && image.channels() != 3 && image.channels() != 4)
    throw ServeError(400, "unsupported image: expected 1, 3 or 4 channels, found " + std::to_string(image.channels()));
  return image;
}

namespace {
const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (size_t i = 0; i < in.size(); i += 3) {
    const uint32_t n = (uint8_t(in[i]) << 16) | (i + 1 < in.size() ? uint8_t(in[i + 1]) << 8 : 0) |
                       (i + 2 < in.size() ? uint8_t(in[i + 2]) : 0);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

std::string base64_decode(const std::string& text, const std::string& what) {
  std::array<int, 256> value;
  value.fill(-1);
  for (int i = 0; i < 64; ++i) value[uint8_t(kAlphabet[i])] = i;
  size_t end = text.size();
  while (end > 0 && text.size() - end < 2 && text[end - 1] == '=') --end;
  std::string out;
  out.reserve(end / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < end; ++i) {
    const int v = value[uint8_t(text[i])];
    if (v < 0) throw ServeError(400, what + " is not base64 (character " + std::to_string(i) + ")");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // checked after the characters: a stray character is the likelier mistake, and says where
  if (end % 4 == 1) throw ServeError(400, what + " is not base64 (its length is impossible)");
  return out;
}

cv::Mat unit_map(const cv::Mat& map, std::optional<std::pair<float, float>> range) {
  if (!range || !(range->first < range->second)) return eval::min_max_normalise(map);
  cv::Mat out;
  map.convertTo(out, CV_32F, 1.0 / (range->second - range->first), -range->first / (range->second - range->first));
  return out;
}

std::string png_bytes(const cv::Mat& image) {
  std::vector<uchar> buf;
  if (!cv::imencode(".png", image, buf)) throw ServeError(500, "cannot encode a PNG of the answer");
  return std::string(buf.begin(), buf.end());
}

std::string overlay_png(const cv::Mat& decoded, const cv::Mat& map01) {
  const cv::Mat rgb = data::to_rgb(decoded, data::ChannelOrder::kBGR, "the request image");
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return png_bytes(eval::jet_overlay(bgr, map01, 0.5));
}

std::string levels_png(const cv::Mat& map01) {
  cv::Mat u8;
  map01.convertTo(u8, CV_8U, 255.0);  // saturating, rounded
  return png_bytes(u8);
}

}  // namespace vcpclip::app
