// Image / mask preprocessing (docs/design.md §7): PIL-exact antialiased resizes, CLIP normalisation.
#include "vcpclip/data/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "vcpclip/common/error.h"

namespace vcpclip::data {
namespace {

// ---- PIL Resample.c semantics ---------------------------------------------------------------
// Coefficients are computed in double, normalised to sum 1, converted to fixed point with
// 22 fractional bits (rounded half away from zero); every output sample is the fixed-point sum
// plus 1/2, shifted right and clamped to [0,255]. Horizontal pass first, then vertical.
constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double triangle_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

struct Coeffs {
  int ksize = 0;
  std::vector<int> xmin, xcount;  // per output sample: first input index, number of taps
  std::vector<int32_t> k;         // outSize × ksize fixed-point weights
};

Coeffs precompute(int in_size, int out_size, double (*filter)(double), double filter_support) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = filter_support * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.xmin.resize(out_size);
  c.xcount.resize(out_size);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  const double ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = filter((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      c.k[static_cast<size_t>(xx) * c.ksize + x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                                                         : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.xmin[xx] = xmin;
    c.xcount[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;  // arithmetic shift = floor, as PIL's lookup table index
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

cv::Mat resample_horizontal(const cv::Mat& in, int out_w, const Coeffs& c) {
  const int ch = in.channels();
  cv::Mat out(in.rows, out_w, in.type());
  for (int y = 0; y < in.rows; ++y) {
    const uint8_t* src = in.ptr<uint8_t>(y);
    uint8_t* dst = out.ptr<uint8_t>(y);
    for (int xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &c.k[static_cast<size_t>(xx) * c.ksize];
      const int xmin = c.xmin[xx], n = c.xcount[xx];
      for (int b = 0; b < ch; ++b) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < n; ++x) ss += src[(x + xmin) * ch + b] * k[x];
        dst[xx * ch + b] = clip8(ss);
      }
    }
  }
  return out;
}

cv::Mat resample_vertical(const cv::Mat& in, int out_h, const Coeffs& c) {
  const int ch = in.channels();
  const int row = in.cols * ch;
  cv::Mat out(out_h, in.cols, in.type());
  std::vector<int32_t> acc(row);
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &c.k[static_cast<size_t>(yy) * c.ksize];
    const int ymin = c.xmin[yy], n = c.xcount[yy];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < n; ++y) {
      const uint8_t* src = in.ptr<uint8_t>(y + ymin);
      const int32_t w = k[y];
      for (int i = 0; i < row; ++i) acc[i] += src[i] * w;
    }
    uint8_t* dst = out.ptr<uint8_t>(yy);
    for (int i = 0; i < row; ++i) dst[i] = clip8(acc[i]);
  }
  return out;
}

cv::Mat resize_pil(const cv::Mat& src, int width, int height, double (*filter)(double), double support,
                   const char* what) {
  VCP_CHECK(!src.empty(), what, ": empty input image");
  VCP_CHECK(src.depth() == CV_8U && (src.channels() == 1 || src.channels() == 3 || src.channels() == 4), what,
            ": expected an 8-bit image with 1, 3 or 4 channels, found type ", src.type());
  VCP_CHECK(width > 0 && height > 0, what, ": output size must be positive, found ", width, "x", height);
  cv::Mat cur = src.isContinuous() ? src : src.clone();
  if (cur.cols != width) cur = resample_horizontal(cur, width, precompute(cur.cols, width, filter, support));
  if (cur.rows != height) cur = resample_vertical(cur, height, precompute(cur.rows, height, filter, support));
  if (cur.data == src.data) cur = src.clone();
  return cur;
}

// PIL's "L" conversion of RGB: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16.
cv::Mat rgb_to_l(const cv::Mat& rgb) {
  cv::Mat out(rgb.rows, rgb.cols, CV_8UC1);
  for (int y = 0; y < rgb.rows; ++y) {
    const uint8_t* s = rgb.ptr<uint8_t>(y);
    uint8_t* d = out.ptr<uint8_t>(y);
    const int ch = rgb.channels();
    for (int x = 0; x < rgb.cols; ++x, s += ch)
      d[x] = static_cast<uint8_t>((s[0] * 19595 + s[1] * 38470 + s[2] * 7471 + 0x8000) >> 16);
  }
  return out;
}

void check_readable(const std::string& path, const char* what) {
  std::error_code ec;
  VCP_CHECK(std::filesystem::exists(path, ec), what, " file not found: ", path);
  VCP_CHECK(std::filesystem::is_regular_file(path, ec), what, " path is not a file: ", path);
  VCP_CHECK(std::filesystem::file_size(path, ec) > 0, what, " file is empty: ", path);
}

/// cv::imread without EXIF rotation (PIL does not apply it either). OpenCV refuses some headers by
/// throwing (e.g. a PPM announcing 700 million rows fails its image-size validation) instead of
/// returning an empty image: both end in one vcpclip::Error naming the file.
cv::Mat decode_file(const std::string& path, const char* what) {
  cv::Mat raw;
  try {
    raw = cv::imread(path, cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    fail("cannot decode ", what, " file (OpenCV refused it: ", e.err, "): ", path);
  }
  VCP_CHECK(!raw.empty(), "cannot decode ", what, " file (not an image or corrupt): ", path);
  return raw;
}

cv::Mat to_8bit(const cv::Mat& m) {
  if (m.depth() == CV_8U) return m;
  cv::Mat out;
  if (m.depth() == CV_16U)
    m.convertTo(out, CV_8U, 1.0 / 257.0);
  else
    m.convertTo(out, CV_8U);
  return out;
}

}  // namespace

cv::Mat resize_bicubic_pil(const cv::Mat& src, int width, int height) {
  return resize_pil(src, width, height, bicubic_filter, 2.0, "bicubic resize");
}

cv::Mat resize_bilinear_pil(const cv::Mat& src, int width, int height) {
  return resize_pil(src, width, height, triangle_filter, 1.0, "bilinear resize");
}

cv::Mat to_rgb(const cv::Mat& image, ChannelOrder order, const std::string& what) {
  VCP_CHECK(!image.empty(), "empty image: ", what);
  const cv::Mat raw = to_8bit(image);
  const bool bgr = order == ChannelOrder::kBGR;
  cv::Mat rgb;
  switch (raw.channels()) {
    case 1:
      cv::cvtColor(raw, rgb, cv::COLOR_GRAY2RGB);
      break;
    case 3:
      if (bgr)
        cv::cvtColor(raw, rgb, cv::COLOR_BGR2RGB);
      else
        rgb = raw.clone();
      break;
    case 4:
      cv::cvtColor(raw, rgb, bgr ? cv::COLOR_BGRA2RGB : cv::COLOR_RGBA2RGB);
      break;  // PIL convert("RGB") drops alpha
    default:
      fail("unsupported channel count ", raw.channels(), " in ", what);
  }
  return rgb;
}

cv::Mat read_rgb(const std::string& path) {
  check_readable(path, "image");
  const cv::Mat raw = decode_file(path, "image");
  return to_rgb(raw, ChannelOrder::kBGR, "image file: " + path);
}

cv::Mat read_mask(const std::string& path) {
  check_readable(path, "mask");
  const cv::Mat raw = decode_file(path, "mask");
  if (raw.depth() != CV_8U) {
    // Any non-zero value is defect: keep that property through the 8-bit conversion.
    cv::Mat nz = raw != 0;
    if (nz.channels() > 1) {
      std::vector<cv::Mat> parts;
      cv::split(nz, parts);
      cv::Mat any = parts[0];
      for (size_t i = 1; i < parts.size() && i < 3; ++i) any |= parts[i];
      return any;
    }
    return nz;
  }
  if (raw.channels() == 1) return raw;
  cv::Mat rgb;
  if (raw.channels() == 3)
    cv::cvtColor(raw, rgb, cv::COLOR_BGR2RGB);
  else
    cv::cvtColor(raw, rgb, cv::COLOR_BGRA2RGB);
  return rgb_to_l(rgb);
}

at::Tensor preprocess_image(const cv::Mat& rgb, int64_t size) {
  VCP_CHECK(!rgb.empty() && rgb.type() == CV_8UC3, "preprocess_image: expected an 8-bit RGB image (CV_8UC3), found ",
            rgb.empty() ? std::string("an empty image") : msg("type ", rgb.type()));
  VCP_CHECK(size > 0, "preprocess_image: size must be positive, found ", size);
  const int s = static_cast<int>(size);
  cv::Mat r = resize_bicubic_pil(rgb, s, s);
  at::Tensor out = at::empty({3, size, size}, at::kFloat);
  float* o = out.data_ptr<float>();
  const int64_t plane = size * size;
  float mean[3], stdev[3];
  for (int c = 0; c < 3; ++c) {
    mean[c] = static_cast<float>(kClipMean[c]);
    stdev[c] = static_cast<float>(kClipStd[c]);
  }
  for (int y = 0; y < s; ++y) {
    const uint8_t* p = r.ptr<uint8_t>(y);
    for (int x = 0; x < s; ++x)
      for (int c = 0; c < 3; ++c) {
        // Same operation order as ToTensor + Normalize: (v/255 - mean) / std.
        const float v = static_cast<float>(p[x * 3 + c]) / 255.0f;
        o[c * plane + y * s + x] = (v - mean[c]) / stdev[c];
      }
  }
  return out;
}

at::Tensor preprocess_mask(const cv::Mat& mask, int64_t size) {
  VCP_CHECK(size > 0, "preprocess_mask: size must be positive, found ", size);
  if (mask.empty()) return at::zeros({size, size}, at::kFloat);
  VCP_CHECK(mask.type() == CV_8UC1, "preprocess_mask: expected an 8-bit single-channel mask, found type ", mask.type());
  const int s = static_cast<int>(size);
  cv::Mat bin = (mask > 0);  // 0 / 255, as the reference's (>0)*255 "L" image
  cv::Mat r = resize_bilinear_pil(bin, s, s);
  at::Tensor out = at::empty({size, size}, at::kFloat);
  float* o = out.data_ptr<float>();
  // ToTensor gives v/255; the reference binarises at 0.5, i.e. v >= 128 (v/255 is never 0.5).
  for (int y = 0; y < s; ++y) {
    const uint8_t* p = r.ptr<uint8_t>(y);
    for (int x = 0; x < s; ++x) o[y * s + x] = p[x] >= 128 ? 1.0f : 0.0f;
  }
  return out;
}

at::Tensor load_image(const std::string& path, int64_t size) { return preprocess_image(read_rgb(path), size); }

at::Tensor load_mask(const std::string& path, int64_t size) {
  if (path.empty()) return at::zeros({size, size}, at::kFloat);
  return preprocess_mask(read_mask(path), size);
}

cv::Mat denormalise_to_rgb(const at::Tensor& image) {
  at::Tensor t = image.detach().to(at::kCPU, at::kFloat);
  if (t.dim() == 4) t = t[0];
  VCP_CHECK(t.dim() == 3 && t.size(0) == 3, "denormalise_to_rgb: expected [3,H,W] or [B,3,H,W], found ", t.sizes());
  auto mean = at::tensor({kClipMean[0], kClipMean[1], kClipMean[2]}, at::kFloat).view({3, 1, 1});
  auto std = at::tensor({kClipStd[0], kClipStd[1], kClipStd[2]}, at::kFloat).view({3, 1, 1});
  at::Tensor u8 = ((t * std + mean) * 255.0).round().clamp(0, 255).to(at::kByte).permute({1, 2, 0}).contiguous();
  cv::Mat out(static_cast<int>(u8.size(0)), static_cast<int>(u8.size(1)), CV_8UC3);
  std::memcpy(out.data, u8.data_ptr<uint8_t>(), u8.numel());
  return out;
}

}  // namespace vcpclip::data
