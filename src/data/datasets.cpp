// Dataset readers: MVTec AD, VisA (split csv), reference meta json, MVTec-like folders.
#include "vcpclip/data/datasets.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "vcpclip/common/error.h"

namespace fs = std::filesystem;

namespace vcpclip::data {
namespace {

const std::set<std::string> kImageExts{".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string join_list(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + v[i];
  return out.empty() ? "(none)" : out;
}

void require_dir(const std::string& dir, const std::string& what) {
  std::error_code ec;
  VCP_CHECK(!dir.empty(), what, ": no directory given");
  VCP_CHECK(fs::is_directory(dir, ec), what, " not found (expected a directory): ", dir);
}

void require_file(const std::string& file, const std::string& what) {
  std::error_code ec;
  VCP_CHECK(fs::is_regular_file(file, ec), what, " not found: ", file);
}

void check_split(const std::string& split) {
  VCP_CHECK(split == "train" || split == "test", "split must be 'train' or 'test', found '", split, "'");
}

std::vector<fs::path> sorted_entries(const fs::path& dir, bool dirs) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (dirs ? e.is_directory() : e.is_regular_file()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Keeps the classes of `filter` (all if empty) and drops samples of other classes.
void apply_filter(DatasetIndex& idx, const std::vector<std::string>& filter) {
  if (filter.empty()) return;
  for (const auto& c : filter) {
    VCP_CHECK(std::find(idx.classes.begin(), idx.classes.end(), c) != idx.classes.end(), "unknown class '", c,
              "' in the class filter for ", idx.source, "; available: ", join_list(idx.classes));
  }
  // Dataset order, not filter order (the reference keeps the meta file's order).
  std::vector<std::string> kept;
  for (const auto& c : idx.classes)
    if (std::find(filter.begin(), filter.end(), c) != filter.end()) kept.push_back(c);
  idx.classes = kept;
  const std::set<std::string> keep(filter.begin(), filter.end());
  std::vector<SampleInfo> samples;
  for (auto& s : idx.samples)
    if (keep.count(s.cls_name)) samples.push_back(std::move(s));
  idx.samples = std::move(samples);
}

std::string find_mask(const fs::path& gt_dir, const fs::path& image, bool strict) {
  const std::string stem = image.stem().string();
  const fs::path canonical = gt_dir / (stem + "_mask.png");
  std::error_code ec;
  if (strict || fs::is_regular_file(canonical, ec)) return canonical.string();
  // Folder layout: <stem>_mask.<ext> preferred, then <stem>.<ext>, any image extension.
  std::string plain;
  for (const auto& p : sorted_entries(gt_dir, false)) {
    if (!kImageExts.count(lower(p.extension().string()))) continue;
    const std::string s = p.stem().string();
    if (s == stem + "_mask") return p.string();
    if (s == stem && plain.empty()) plain = p.string();
  }
  return plain.empty() ? canonical.string() : plain;  // missing: data check reports it
}

DatasetIndex read_mvtec_like(const std::string& root, const std::string& split, const std::vector<std::string>& classes,
                             bool strict) {
  check_split(split);
  DatasetIndex idx;
  idx.source = msg(strict ? "MVTec AD layout at " : "MVTec-like folder at ", root);
  require_dir(root, strict ? "MVTec AD root" : "dataset folder");
  for (const auto& cls_dir : sorted_entries(root, true)) {
    std::error_code ec;
    if (!fs::is_directory(cls_dir / "test", ec) && !fs::is_directory(cls_dir / "train", ec)) continue;
    const std::string cls = cls_dir.filename().string();
    idx.classes.push_back(cls);
    for (const auto& defect_dir : sorted_entries(cls_dir / split, true)) {
      const std::string defect = defect_dir.filename().string();
      const bool good = defect == "good";
      for (const auto& img : sorted_entries(defect_dir, false)) {
        const std::string ext = lower(img.extension().string());
        if (strict ? ext != ".png" : !kImageExts.count(ext)) continue;
        SampleInfo s;
        s.image_path = img.string();
        s.cls_name = cls;
        s.specie_name = defect;
        s.anomaly = good ? 0 : 1;
        if (!good) s.mask_path = find_mask(cls_dir / "ground_truth" / defect, img, strict);
        idx.samples.push_back(std::move(s));
      }
    }
  }
  VCP_CHECK(!idx.classes.empty(), "no class folders (with train/ or test/ inside) found in ", root);
  apply_filter(idx, classes);
  return idx;
}

/// Splits one CSV line (no quoted commas in VisA's files; quotes are still honoured).
std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : line) {
    if (c == '"')
      quoted = !quoted;
    else if (c == ',' && !quoted) {
      out.push_back(cur);
      cur.clear();
    } else
      cur += c;
  }
  out.push_back(cur);
  return out;
}

}  // namespace

DataOptions parse_data_options(io::ConfigNode& node, bool training) {
  DataOptions o;
  o.layout = node.require<std::string>("layout");
  VCP_CHECK(o.layout == "mvtec" || o.layout == "visa" || o.layout == "meta" || o.layout == "folder",
            "expected mvtec, visa, meta or folder for ", node.where("layout"), ", found '", o.layout, "'");
  VCP_CHECK(node.has("root"), "missing key ", node.where("root"), " (the dataset directory)");
  o.root = node.get_path("root", "");
  o.meta = node.get_path("meta", "");
  o.csv = node.get_path("csv", "");
  o.split = node.get<std::string>("split", "test");
  VCP_CHECK(o.split == "train" || o.split == "test", "expected train or test for ", node.where("split"), ", found '",
            o.split, "'");
  o.classes = node.get<std::vector<std::string>>("classes", {});
  o.workers = node.get<int>("workers", 2);
  VCP_CHECK(o.workers >= 0, "expected workers >= 0 for ", node.where("workers"), ", found ", o.workers);
  o.prefetch = node.get<int>("prefetch", 2);
  VCP_CHECK(o.prefetch >= 1, "expected prefetch >= 1 for ", node.where("prefetch"), ", found ", o.prefetch);
  o.skip_bad = node.get<bool>("skip_bad", false);
  o.augment = node.get<bool>("augment", training);
  o.mosaic_p = node.get<double>("mosaic_p", training && is_mvtec_style(o) ? 0.2 : 0.0);
  VCP_CHECK(o.mosaic_p >= 0.0 && o.mosaic_p <= 1.0, "expected a probability in [0,1] for ", node.where("mosaic_p"),
            ", found ", o.mosaic_p);
  node.finish();
  return o;
}

bool is_mvtec_style(const DataOptions& o) {
  if (o.layout == "mvtec" || o.layout == "folder") return true;
  if (o.layout == "meta") return lower(fs::path(o.meta).filename().string()).find("mvtec") != std::string::npos;
  return false;
}

DatasetIndex read_mvtec(const std::string& root, const std::string& split, const std::vector<std::string>& classes) {
  return read_mvtec_like(root, split, classes, true);
}

DatasetIndex read_folder(const std::string& root, const std::string& split, const std::vector<std::string>& classes) {
  return read_mvtec_like(root, split, classes, false);
}

DatasetIndex read_visa(const std::string& root, const std::string& csv_in, const std::string& split,
                       const std::vector<std::string>& classes) {
  check_split(split);
  require_dir(root, "VisA root");
  const std::string csv = csv_in.empty() ? (fs::path(root) / "split_csv" / "1cls.csv").string() : csv_in;
  require_file(csv, "VisA split file");
  DatasetIndex idx;
  idx.source = msg("VisA layout at ", root, " (", csv, ")");
  std::ifstream in(csv);
  VCP_CHECK(in.good(), "cannot open VisA split file ", csv);
  std::string line;
  int64_t lineno = 0;
  auto strip = [](std::string& s) {
    while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.pop_back();
  };
  VCP_CHECK(std::getline(in, line), "empty VisA split file ", csv);
  ++lineno;
  strip(line);
  if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line = line.substr(3);
  VCP_CHECK(line == "object,split,label,image,mask", "unexpected header in VisA split file ", csv,
            ": expected 'object,split,label,image,mask', found '", line, "'");
  std::set<std::string> seen;
  while (std::getline(in, line)) {
    ++lineno;
    strip(line);
    if (line.empty()) continue;
    auto f = split_csv_line(line);
    VCP_CHECK(f.size() == 5, csv, ":", lineno, ": expected 5 columns (object,split,label,image,mask), found ",
              f.size());
    const std::string& cls = f[0];
    VCP_CHECK(!cls.empty(), csv, ":", lineno, ": empty object name");
    VCP_CHECK(f[1] == "train" || f[1] == "test", csv, ":", lineno, ": split must be train or test, found '", f[1], "'");
    VCP_CHECK(f[2] == "normal" || f[2] == "anomaly", csv, ":", lineno, ": label must be normal or anomaly, found '",
              f[2], "'");
    VCP_CHECK(!f[3].empty(), csv, ":", lineno, ": empty image path");
    if (seen.insert(cls).second) idx.classes.push_back(cls);
    if (f[1] != split) continue;
    SampleInfo s;
    s.image_path = (fs::path(root) / f[3]).string();
    s.cls_name = cls;
    s.anomaly = f[2] == "anomaly" ? 1 : 0;
    s.specie_name = s.anomaly ? "anomaly" : "good";
    if (s.anomaly) s.mask_path = f[4].empty() ? std::string() : (fs::path(root) / f[4]).string();
    idx.samples.push_back(std::move(s));
  }
  apply_filter(idx, classes);
  return idx;
}

DatasetIndex read_meta(const std::string& root, const std::string& meta_in, const std::string& split,
                       const std::vector<std::string>& classes) {
  check_split(split);
  require_dir(root, "dataset root");
  std::string meta = meta_in;
  if (meta.empty()) {
    std::vector<std::string> found;
    for (const auto& p : sorted_entries(root, false)) {
      const std::string n = p.filename().string();
      if (n.rfind("meta_", 0) == 0 && p.extension() == ".json") found.push_back(p.string());
    }
    VCP_CHECK(found.size() == 1, "meta layout: expected exactly one meta_<name>.json in ", root,
              " (or give `meta:`), found ", found.size(), found.empty() ? "" : ": ",
              found.empty() ? "" : join_list(found));
    meta = found[0];
  }
  require_file(meta, "meta file");
  DatasetIndex idx;
  idx.source = msg("meta file ", meta);
  nlohmann::ordered_json j;
  try {
    std::ifstream in(meta);
    j = nlohmann::ordered_json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("cannot parse meta file ", meta, ": ", e.what());
  }
  VCP_CHECK(j.is_object(), "meta file ", meta, ": expected an object {\"train\"|\"test\": {...}}");
  VCP_CHECK(j.contains(split), "meta file ", meta, " has no '", split, "' split");
  const auto& sp = j[split];
  VCP_CHECK(sp.is_object(), "meta file ", meta, ": '", split, "' must map class names to lists");
  for (const auto& [cls, items] : sp.items()) {
    idx.classes.push_back(cls);
    VCP_CHECK(items.is_array(), "meta file ", meta, ": ", split, ".", cls, " must be a list");
    size_t i = 0;
    for (const auto& it : items) {
      const std::string where = msg("meta file ", meta, ": ", split, ".", cls, "[", i++, "]");
      VCP_CHECK(it.is_object() && it.contains("img_path") && it["img_path"].is_string(), where,
                ": expected an object with a string img_path");
      SampleInfo s;
      s.image_path = (fs::path(root) / it["img_path"].get<std::string>()).string();
      const std::string mask = it.value("mask_path", std::string());
      s.cls_name = it.value("cls_name", cls);
      s.specie_name = it.value("specie_name", std::string());
      VCP_CHECK(it.contains("anomaly") && it["anomaly"].is_number_integer(), where, ": expected anomaly 0 or 1");
      s.anomaly = it["anomaly"].get<int>();
      VCP_CHECK(s.anomaly == 0 || s.anomaly == 1, where, ": expected anomaly 0 or 1, found ", s.anomaly);
      if (s.specie_name.empty()) s.specie_name = s.anomaly ? "anomaly" : "good";
      s.mask_path = mask.empty() ? std::string() : (fs::path(root) / mask).string();
      idx.samples.push_back(std::move(s));
    }
  }
  apply_filter(idx, classes);
  return idx;
}

DatasetIndex read_index(const DataOptions& o) {
  if (o.layout == "mvtec") return read_mvtec(o.root, o.split, o.classes);
  if (o.layout == "folder") return read_folder(o.root, o.split, o.classes);
  if (o.layout == "visa") return read_visa(o.root, o.csv, o.split, o.classes);
  if (o.layout == "meta") return read_meta(o.root, o.meta, o.split, o.classes);
  fail("unknown dataset layout '", o.layout, "' (expected mvtec, visa, meta or folder)");
}

std::vector<SampleInfo> read_samples(const DataOptions& o) { return read_index(o).samples; }

std::vector<std::string> class_names(const std::vector<SampleInfo>& samples) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& s : samples)
    if (seen.insert(s.cls_name).second) out.push_back(s.cls_name);
  return out;
}

}  // namespace vcpclip::data
