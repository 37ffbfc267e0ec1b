// safetensors reading (F32/F16/BF16 → float32) and writing (F32), with a parser of our own.
#include "vcpclip/io/safetensors.h"

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vcpclip/common/error.h"

namespace vcpclip::io {

namespace {

uint64_t read_u64_le(const unsigned char* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

}  // namespace

bool is_safetensors_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  unsigned char head[9];
  in.read(reinterpret_cast<char*>(head), 9);
  if (in.gcount() != 9) return false;
  const uint64_t n = read_u64_le(head);
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  // A truncated file still counts as safetensors (so that the reader names the truncation).
  return !ec && n >= 2 && n < (uint64_t{1} << 32) && head[8] == '{' && size >= 9;
}

namespace {

struct Slot {
  uint64_t begin = 0, bytes = 0;
};

/// One tensor entry of the header → its WeightEntry and data slot (checked against the file).
std::pair<WeightEntry, Slot> parse_entry(const std::string& path, const std::string& name, const nlohmann::json& e,
                                         uint64_t data_size) {
  auto bad = [&](const std::string& why) { fail("safetensors file '", path, "', tensor '", name, "': ", why); };
  if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
    bad("entry needs dtype, shape and data_offsets");
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint64_t> offsets;
  try {
    dtype = e.at("dtype").get<std::string>();
    shape = e.at("shape").get<std::vector<int64_t>>();
    offsets = e.at("data_offsets").get<std::vector<uint64_t>>();
  } catch (const nlohmann::json::exception& ex) {
    bad(std::string("malformed entry: ") + ex.what());
  }
  static const std::map<std::string, at::ScalarType> dtypes{
      {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}};
  auto dt = dtypes.find(dtype);
  if (dt == dtypes.end()) bad("unsupported dtype '" + dtype + "' (supported: F32, F16, BF16)");
  if (offsets.size() != 2 || offsets[0] > offsets[1]) bad("data_offsets must be [begin, end] with begin <= end");
  uint64_t numel = 1;
  for (auto d : shape) {
    if (d < 0) bad("negative dimension in shape " + shape_text(shape));
    numel *= static_cast<uint64_t>(d);
  }
  const uint64_t bytes = numel * c10::elementSize(dt->second);
  if (offsets[1] - offsets[0] != bytes)
    bad(msg("shape ", shape_text(shape), " of ", dtype, " needs ", bytes, " bytes but data_offsets span ",
            offsets[1] - offsets[0]));
  if (offsets[1] > data_size)
    bad(msg("data ends at byte ", offsets[1], " of the data section but the file holds only ", data_size,
            " bytes there (truncated file?)"));
  return {WeightEntry{name, dt->second, shape}, Slot{offsets[0], bytes}};
}

class SafetensorsReader final : public WeightsReader {
 public:
  explicit SafetensorsReader(const std::string& path) : WeightsReader(path), in_(path, std::ios::binary) {
    VCP_CHECK(in_, "cannot open safetensors file '", path, "'");
    std::error_code ec;
    const uint64_t file_size = std::filesystem::file_size(path, ec);
    VCP_CHECK(!ec, "cannot read the size of '", path, "': ", ec.message());
    unsigned char lenbuf[8];
    in_.read(reinterpret_cast<char*>(lenbuf), 8);
    VCP_CHECK(in_.gcount() == 8, "safetensors file '", path, "' is truncated: no 8-byte header length");
    const uint64_t header_len = read_u64_le(lenbuf);
    VCP_CHECK(header_len <= file_size - 8, "safetensors file '", path, "' is truncated: the header claims ", header_len,
              " bytes but the file has ", file_size, " bytes");
    std::string header(header_len, '\0');
    in_.read(header.data(), static_cast<std::streamsize>(header_len));
    VCP_CHECK(static_cast<uint64_t>(in_.gcount()) == header_len, "safetensors file '", path,
              "' is truncated in its header");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(header);
    } catch (const nlohmann::json::exception& e) {
      fail("safetensors file '", path, "' has an unreadable JSON header: ", e.what());
    }
    VCP_CHECK(j.is_object(), "safetensors file '", path, "': the header is not a JSON object");
    data_start_ = 8 + header_len;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "__metadata__") {
        VCP_CHECK(it.value().is_object(), "safetensors file '", path, "': __metadata__ is not a JSON object");
        for (auto m = it.value().begin(); m != it.value().end(); ++m) {
          VCP_CHECK(m.value().is_string(), "safetensors file '", path, "': __metadata__ value '", m.key(),
                    "' is not a string");
          metadata_[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      auto [entry, slot] = parse_entry(path, it.key(), it.value(), file_size - data_start_);
      slots_[entry.name] = slot;
      entries_.push_back(std::move(entry));
    }
  }

  void read_into(const std::string& name, at::Tensor dst) override {
    const WeightEntry* e = find(name);
    VCP_CHECK(e, "weights file '", path_, "' has no tensor '", name, "'");
    VCP_CHECK(dst.sizes() == at::IntArrayRef(e->shape), "weights file '", path_, "', tensor '", name,
              "': stored shape ", shape_text(e->shape), " cannot be read into a tensor of shape ",
              shape_text(dst.sizes()));
    const Slot& s = slots_.at(name);
    auto raw = at::empty(e->shape, at::TensorOptions().dtype(e->dtype));
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(data_start_ + s.begin));
    in_.read(static_cast<char*>(raw.data_ptr()), static_cast<std::streamsize>(s.bytes));
    VCP_CHECK(in_ && static_cast<uint64_t>(in_.gcount()) == s.bytes, "safetensors file '", path_, "', tensor '", name,
              "': could not read its data (truncated file?)");
    dst.copy_(raw);
  }

  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::map<std::string, std::string> metadata_;
  std::ifstream in_;
  uint64_t data_start_ = 0;
  std::map<std::string, Slot> slots_;
};

}  // namespace

std::unique_ptr<WeightsReader> open_safetensors(const std::string& path) {
  return std::make_unique<SafetensorsReader>(path);
}

std::map<std::string, at::Tensor> read_safetensors(const std::string& path) {
  auto file = open_safetensors(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& e : file->entries()) out[e.name] = file->read(e.name, at::kFloat);
  return out;
}

SafetensorsContents read_safetensors_with_metadata(const std::string& path) {
  SafetensorsReader file(path);
  SafetensorsContents out;
  for (const auto& e : file.entries()) out.tensors[e.name] = file.read(e.name, at::kFloat);
  out.metadata = file.metadata();
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  for (const auto& [k, v] : metadata) header["__metadata__"][k] = v;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    VCP_CHECK(t.defined(), "write_safetensors: tensor '", name, "' is undefined");
    auto c = t.detach().to(at::kCPU, at::kFloat).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(c.numel()) * 4;
    header[name] = {{"dtype", "F32"}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  VCP_CHECK(out, "cannot create safetensors file '", path, "'");
  unsigned char len[8];
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& c : data)
    out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * 4));
  out.flush();
  VCP_CHECK(out, "error while writing safetensors file '", path, "' (disk full?)");
}

}  // namespace vcpclip::io
