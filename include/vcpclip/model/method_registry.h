#pragma once
// The methods vcpclip knows (model.method), and building / checkpoint I/O for any of them.
//
// Adding a method: one file pair, include/vcpclip/model/methods/<name>.h and
// src/model/methods/<name>.cpp, whose .cpp defines
//
//   void vcpclip::model::register_method_<name>(MethodRegistry& registry) {
//     MethodEntry e;
//     e.name = "<name>"; e.info = ...; e.keys = {...}; e.parse = ...; e.build = ...; e.recognises = ...;
//     registry.add(std::move(e));
//   }
//
// CMake lists src/model/methods/*.cpp at configure time and generates the call of every
// register_method_<stem>() (cmake/method_list.cpp.in), so nothing else is edited. A name in
// known_method_names() with no file pair built is refused with "not built in this version".
#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vcpclip/io/checkpoint.h"
#include "vcpclip/io/config_node.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/model/method.h"
#include "vcpclip/model/model_options.h"
#include "vcpclip/model/tokenizer.h"

namespace vcpclip::model {

/// How a method is parsed, built and recognised.
struct MethodEntry {
  std::string name;               ///< the model.method value
  MethodInfo info;                ///< the same as the built method's info() (defaults, class names)
  std::vector<std::string> keys;  ///< its own keys of the `model:` section (besides the shared ones)
  /// Reads exactly `keys` from the `model:` node into opts (typed fields of ModelOptions, or
  /// opts.method_options); nullptr when the method has no keys. Must not call node.finish().
  std::function<void(io::ConfigNode& node, ModelOptions& opts)> parse;
  /// Builds the method on a constructed backbone (weights are loaded afterwards by build_method).
  std::function<Method(ClipModel clip, const ModelOptions& opts, const Tokenizer& tokenizer)> build;
  /// True when a checkpoint's keys have this method's layout (used to name the method of a
  /// checkpoint that does not fit the selected one).
  std::function<bool(const io::ReferenceCheckpoint& ckpt)> recognises;
};

class MethodRegistry {
 public:
  /// Adds a method; a second entry with the same name is a vcpclip::Error.
  void add(MethodEntry entry);
  const MethodEntry* find(const std::string& name) const;
  const std::vector<MethodEntry>& entries() const { return entries_; }

 private:
  std::vector<MethodEntry> entries_;
};

/// The registry with every built-in method (filled once, on first use).
const MethodRegistry& method_registry();

/// Every name model.method accepts in the design: vcp_clip, april_gan, anomaly_clip.
const std::vector<std::string>& known_method_names();

/// The entry of `name`; vcpclip::Error when the name is unknown (listing the known ones) or known
/// but not built in this version. `where` names the config key in messages.
const MethodEntry& require_method(const std::string& name, const std::string& where = "model.method");
/// The same against another registry (a build with fewer file pairs; tests).
const MethodEntry& require_method(const MethodRegistry& registry, const std::string& name,
                                  const std::string& where = "model.method");

/// The MethodInfo of a registered method (require_method's errors otherwise).
const MethodInfo& method_info(const std::string& name);

/// Reads the `model:` keys of methods: model.method (default vcp_clip), then the selected
/// method's own keys; a key of another method is an error naming both methods. Called by
/// parse_model_options before node.finish().
void parse_method_keys(io::ConfigNode& node, ModelOptions& opts);

/// Builds the backbone from opts.backbone (+ activation override), loads opts.weights (empty:
/// random init, with a warning), loads the tokenizer (opts.vocab), builds the method of
/// opts.method, moves it to `device`, and returns it in eval mode.
Method build_method(const ModelOptions& opts, c10::Device device);

/// Reads a checkpoint in the method's layout into the model's head (strict). A file in another
/// method's layout is refused naming both methods.
void load_method_checkpoint(MethodImpl& model, const std::string& path);
/// Writes the head in the method's official layout (atomic; loadable by its torch.load).
void save_method_checkpoint(const MethodImpl& model, const std::string& path);

/// The method whose layout `ckpt` has ("" when none recognises it).
std::string recognise_checkpoint(const io::ReferenceCheckpoint& ckpt);

}  // namespace vcpclip::model
