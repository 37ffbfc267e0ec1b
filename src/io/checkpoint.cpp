// The reference checkpoint layout (docs/design.md §7) on top of the torch.save pickle reader/writer.
#include "vcpclip/io/checkpoint.h"

#include <set>

#include "vcpclip/common/error.h"
#include "vcpclip/io/pickle.h"

namespace vcpclip::io {
namespace {

using pickle::Value;
using pickle::ValuePtr;

/// A float32 CPU copy of a floating-point tensor; an integer tensor is kept as stored when
/// `keep_integer`; anything else is an error naming the entry.
at::Tensor to_float32(const at::Tensor& t, const std::string& name, const std::string& path, bool keep_integer) {
  if (keep_integer && at::isIntegralType(t.scalar_type(), /*includeBool=*/false)) return t.clone();
  if (!at::isFloatingType(t.scalar_type())) {
    fail("expected a floating-point tensor for '", name, "' in ", path, ", found dtype ",
         c10::toString(t.scalar_type()));
  }
  at::Tensor out = at::empty(t.sizes(), at::TensorOptions().dtype(at::kFloat));
  out.copy_(t);
  return out;
}

/// The module prefixes state_dict()._metadata lists: "", then every parent path of a tensor name
/// in first-seen order ("fc.0.weight" → "fc", "fc.0"). Matches torch for modules that own tensors.
std::vector<std::string> metadata_prefixes(const NamedTensors& tensors) {
  std::vector<std::string> out{""};
  std::set<std::string> seen{""};
  for (const auto& [name, t] : tensors) {
    for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
      std::string prefix = name.substr(0, dot);
      if (seen.insert(prefix).second) out.push_back(prefix);
    }
  }
  return out;
}

}  // namespace

std::map<std::string, at::Tensor> ReferenceCheckpoint::flatten() const {
  std::map<std::string, at::Tensor> out;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    VCP_CHECK(out.emplace(name, t).second, "checkpoint name '", name, "' occurs twice");
  };
  for (const auto& [module, tensors] : modules) {
    for (const auto& [name, t] : tensors) add(module + "." + name, t);
  }
  for (const auto& [name, t] : parameters) add(name, t);
  return out;
}

ReferenceCheckpoint ReferenceCheckpoint::unflatten(const NamedTensors& flat,
                                                   const std::vector<std::string>& module_names) {
  ReferenceCheckpoint ck;
  for (const auto& m : module_names) ck.modules.emplace_back(m, NamedTensors{});
  for (const auto& [name, t] : flat) {
    bool placed = false;
    for (size_t k = 0; k < module_names.size() && !placed; ++k) {
      const std::string prefix = module_names[k] + ".";
      if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0) {
        ck.modules[k].second.emplace_back(name.substr(prefix.size()), t);
        placed = true;
      }
    }
    if (!placed) ck.parameters.emplace_back(name, t);
  }
  return ck;
}

ReferenceCheckpoint read_reference_checkpoint(const std::string& path, bool keep_integer) {
  ValuePtr root = pickle::load_torch_file(path);
  if (!root->is_dict()) {
    fail("expected a dict at the top of checkpoint ", path, ", found a ", root->type_name());
  }
  ReferenceCheckpoint ck;
  for (const auto& [key, value] : root->entries) {
    if (!key->is_string()) fail("expected str keys at the top of checkpoint ", path, ", found a ", key->type_name());
    const std::string& name = key->s;
    if (value->is_tensor()) {
      ck.parameters.emplace_back(name, to_float32(value->tensor, name, path, keep_integer));
    } else if (value->is_dict()) {
      NamedTensors tensors;
      for (const auto& [k2, v2] : value->entries) {
        if (!k2->is_string())
          fail("expected str keys in '", name, "' of checkpoint ", path, ", found a ", k2->type_name());
        const std::string full = name + "." + k2->s;
        if (!v2->is_tensor())
          fail("expected a tensor for '", full, "' in checkpoint ", path, ", found a ", v2->type_name());
        tensors.emplace_back(k2->s, to_float32(v2->tensor, full, path, keep_integer));
      }
      ck.modules.emplace_back(name, std::move(tensors));
    } else {
      fail("expected a tensor or a state_dict for '", name, "' in checkpoint ", path, ", found a ", value->type_name());
    }
  }
  return ck;
}

void write_reference_checkpoint(const std::string& path, const ReferenceCheckpoint& ckpt) {
  // Python interns these strings, so its pickler writes them once and refers back (BINGET).
  ValuePtr empty_str = Value::string("");
  ValuePtr version_str = Value::string("version");
  ValuePtr metadata_str = Value::string("_metadata");

  ValuePtr root = Value::dict(false);
  std::set<std::string> top_names;
  auto check_top = [&](const std::string& name) {
    VCP_CHECK(top_names.insert(name).second, "cannot write checkpoint ", path, ": top-level name '", name,
              "' occurs twice");
  };
  for (const auto& [module, tensors] : ckpt.modules) {
    check_top(module);
    ValuePtr sd = Value::dict(true);
    std::set<std::string> names;
    for (const auto& [name, t] : tensors) {
      VCP_CHECK(names.insert(name).second, "cannot write checkpoint ", path, ": '", module, ".", name,
                "' occurs twice");
      VCP_CHECK(t.defined(), "cannot write checkpoint ", path, ": '", module, ".", name, "' is undefined");
      sd->entries.emplace_back(Value::string(name), Value::make_tensor(t.detach(), false, false));
    }
    ValuePtr meta = Value::dict(true);
    for (const auto& prefix : metadata_prefixes(tensors)) {
      ValuePtr entry = Value::dict(false);
      entry->entries.emplace_back(version_str, Value::integer(1));
      meta->entries.emplace_back(prefix.empty() ? empty_str : Value::string(prefix), entry);
    }
    sd->state = Value::dict(false);
    sd->state->entries.emplace_back(metadata_str, meta);
    root->entries.emplace_back(Value::string(module), sd);
  }
  for (const auto& [name, t] : ckpt.parameters) {
    check_top(name);
    VCP_CHECK(t.defined(), "cannot write checkpoint ", path, ": '", name, "' is undefined");
    root->entries.emplace_back(Value::string(name), Value::make_tensor(t.detach(), true, true));
  }
  pickle::save_torch_file(path, root);
}

}  // namespace vcpclip::io
