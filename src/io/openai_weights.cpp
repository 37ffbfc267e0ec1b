// OpenAI CLIP TorchScript archives read record by record, without the TorchScript interpreter
// (see openai_weights.h).
#include "vcpclip/io/openai_weights.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <optional>
#include <set>
#include <sstream>

#include "vcpclip/common/error.h"
#include "vcpclip/io/pickle.h"
#include "vcpclip/io/zip_reader.h"

namespace vcpclip::io {

namespace {

using pickle::Value;
using pickle::ValuePtr;

/// Archive entries that are not weights (OpenAI's build_model deletes them too).
bool ignored_key(const std::string& k) { return k == "input_resolution" || k == "context_length" || k == "vocab_size"; }

[[noreturn]] void unreadable(const std::string& path, const std::string& why) {
  fail("cannot read '", path, "' as an OpenAI CLIP TorchScript archive: ", why,
       " (a truncated download, or not OpenAI's released .pt?)");
}

/// The names inside `[...]` of a line `key = ["a", "b", ]` of TorchScript class code.
std::set<std::string> quoted_list(const std::string& line) {
  std::set<std::string> out;
  for (size_t p = line.find('"'); p != std::string::npos; p = line.find('"', p + 1)) {
    const size_t q = line.find('"', p + 1);
    if (q == std::string::npos) break;
    out.insert(line.substr(p + 1, q - p - 1));
    p = q;
  }
  return out;
}

/// A tensor of the archive: where its data lives and how it is viewed.
struct StoredTensor {
  std::string key;  ///< record "data/<key>"
  at::Tensor view;  ///< meta tensor: dtype, size, stride, storage offset
  int64_t storage_bytes = 0;
};

class TorchScriptReader final : public WeightsReader {
 public:
  explicit TorchScriptReader(const std::string& path) : WeightsReader(path) {
    try {
      zip_ = std::make_unique<ZipReader>(path);
      VCP_CHECK(zip_->has("data.pkl"), "cannot read '", path,
                "' as an OpenAI CLIP TorchScript archive: ", "the zip has no data.pkl record");
      const auto pkl = zip_->read("data.pkl");
      pickle::UnpickleOptions opts;
      opts.torchscript_objects = true;
      opts.lazy_storages = true;
      ValuePtr root = pickle::unpickle(pkl->data(), pkl->size(), nullptr, path, opts);
      if (root->kind == Value::Kind::Object) {
        collect_object(*root, "");
      } else if (root->is_dict()) {
        for (const auto& [k, v] : root->entries)
          if (k->is_string() && v->is_tensor()) add(k->s, *v);
      } else {
        unreadable(path, "data.pkl holds a " + root->type_name() + ", not a module or a state dict");
      }
    } catch (const ZipError& e) {
      unreadable(path, e.reason());
    } catch (const Error&) {
      throw;
    } catch (const c10::Error& e) {
      unreadable(path, first_line(e.what_without_backtrace()));
    } catch (const std::exception& e) {
      unreadable(path, first_line(e.what()));
    }
    VCP_CHECK(!entries_.empty(), "'", path, "' is a TorchScript archive without any tensors");
  }

  void read_into(const std::string& name, at::Tensor dst) override {
    auto it = stored_.find(name);
    VCP_CHECK(it != stored_.end(), "weights file '", path_, "' has no tensor '", name, "'");
    const StoredTensor& st = it->second;
    VCP_CHECK(dst.sizes() == st.view.sizes(), "weights file '", path_, "', tensor '", name, "': stored shape ",
              shape_text(st.view.sizes()), " cannot be read into a tensor of shape ", shape_text(dst.sizes()));
    const std::string record = "data/" + st.key;
    VCP_CHECK(zip_->has(record), "cannot read tensor '", name, "' of '", path_, "': record ", record,
              " is missing from the zip");
    std::shared_ptr<const std::vector<uint8_t>> data;
    try {
      data = zip_->read(record);
    } catch (const ZipError& e) {
      fail("cannot read tensor '", name, "' of '", path_, "': ", e.reason());
    }
    const size_t bytes = data->size();
    VCP_CHECK(static_cast<int64_t>(bytes) == st.storage_bytes, "cannot read tensor '", name, "' of '", path_,
              "': record data/", st.key, " has ", bytes, " bytes, expected ", st.storage_bytes);
    const int64_t numel = st.storage_bytes / static_cast<int64_t>(c10::elementSize(st.view.scalar_type()));
    auto storage =
        at::from_blob(const_cast<uint8_t*>(data->data()), {numel}, at::TensorOptions().dtype(st.view.scalar_type()));
    dst.copy_(storage.as_strided(st.view.sizes(), st.view.strides(), st.view.storage_offset()));
  }

 private:
  /// Parameter and buffer names of a TorchScript class (__parameters__ and __buffers__ of its
  /// definition in code/<module path>.py); nullptr when the archive has no readable definition
  /// (then every tensor attribute counts).
  const std::set<std::string>* weight_names(const std::string& cls) {
    auto it = classes_.find(cls);
    if (it == classes_.end()) it = classes_.emplace(cls, parse_class(cls)).first;
    return it->second ? &*it->second : nullptr;
  }

  std::optional<std::set<std::string>> parse_class(const std::string& cls) {
    const auto dot = cls.rfind('.');
    if (dot == std::string::npos) return std::nullopt;
    std::string file = cls.substr(0, dot), short_name = cls.substr(dot + 1);
    std::replace(file.begin(), file.end(), '.', '/');
    file = "code/" + file + ".py";
    if (!zip_->has(file)) return std::nullopt;
    const auto code = zip_->read(file);
    std::istringstream in(std::string(code->begin(), code->end()));
    std::optional<std::set<std::string>> names;
    bool inside = false;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("class ", 0) == 0) inside = line.rfind("class " + short_name + "(", 0) == 0;
      const auto start = line.find_first_not_of(' ');
      if (!inside || start == std::string::npos) continue;
      const auto trimmed = line.substr(start);
      if (trimmed.rfind("__parameters__ = ", 0) == 0 || trimmed.rfind("__buffers__ = ", 0) == 0) {
        if (!names) names.emplace();
        auto l = quoted_list(trimmed);
        names->insert(l.begin(), l.end());
      }
    }
    return names;
  }

  void collect_object(const Value& obj, const std::string& prefix) {
    if (!obj.state || !obj.state->is_dict()) return;
    const auto* weights = weight_names(obj.s);
    for (const auto& [k, v] : obj.state->entries) {
      if (!k->is_string()) continue;
      if (v->kind == Value::Kind::Object) collect_object(*v, prefix + k->s + ".");
      if (v->is_tensor() && (!weights || weights->count(k->s))) add(prefix + k->s, *v);
    }
  }

  void add(const std::string& name, const Value& v) {
    if (ignored_key(name)) return;
    const at::Tensor& t = v.tensor;
    VCP_CHECK(at::isFloatingType(t.scalar_type()), "'", path_, "': tensor '", name, "' has non-float dtype ",
              t.scalar_type());
    VCP_CHECK(!v.storage_key.empty(), "'", path_, "': tensor '", name, "' has no storage record");
    stored_[name] = StoredTensor{v.storage_key, t, static_cast<int64_t>(t.storage().nbytes())};
    entries_.push_back(WeightEntry{name, t.scalar_type(), t.sizes().vec()});
  }

  std::unique_ptr<ZipReader> zip_;
  std::map<std::string, StoredTensor> stored_;
  std::map<std::string, std::optional<std::set<std::string>>> classes_;
};

}  // namespace

std::unique_ptr<WeightsReader> open_torchscript_weights(const std::string& path) {
  return std::make_unique<TorchScriptReader>(path);
}

}  // namespace vcpclip::io
