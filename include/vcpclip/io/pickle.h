#pragma once
// A small pickle reader/writer for torch.save zip files (docs/design.md §7). LibTorch 1.13's
// torch::pickle_load cannot read what Python's torch.save writes (OrderedDict, single SETITEM),
// so the zip is read/written with caffe2::serialize::PyTorchStream{Reader,Writer} and data.pkl
// is interpreted here.
//
// Supported when reading (everything else is a vcpclip::Error naming the opcode or global and the
// file): opcodes PROTO(≤5) EMPTY_DICT EMPTY_LIST EMPTY_TUPLE MARK SETITEM SETITEMS APPEND APPENDS
// BINUNICODE SHORT_BINUNICODE BINPUT LONG_BINPUT BINGET LONG_BINGET GLOBAL REDUCE BUILD BINPERSID
// TUPLE TUPLE1 TUPLE2 TUPLE3 BININT BININT1 BININT2 LONG1 BINFLOAT NEWTRUE NEWFALSE NONE STOP;
// globals collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter
// and torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage.
// The writer emits protocol 2 exactly as Python's pickler does for the same objects (memo included).
// With UnpickleOptions the reader also takes what torch.jit.save writes (TorchScript module
// objects: GLOBAL '__torch__.*' + NEWOBJ + BUILD) and can leave storages unread (streaming loads).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vcpclip::io::pickle {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

/// One unpickled object. Containers hold shared pointers: an object referenced twice in the pickle
/// (memo) is the same Value, as in Python; the writer memoizes by pointer identity the same way.
struct Value {
  enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Tensor, Global, Storage, Object };
  Kind kind = Kind::None;

  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;                                       // String; Global: "module.name"; Object: its class
  std::vector<ValuePtr> items;                         // Tuple, List
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // Dict, in insertion order
  bool ordered = false;                                // Dict: a collections.OrderedDict
  ValuePtr state;  // Dict: what BUILD set (an OrderedDict's {"_metadata": ...}), else null;
                   // Object: its attribute dict

  at::Tensor tensor;           // Tensor (CPU, dtype of its storage); Storage: 1-D, whole storage
  bool is_parameter = false;   // Tensor: an nn.Parameter (torch._utils._rebuild_parameter)
  bool requires_grad = false;  // Tensor
  std::string storage_key;     // Tensor, Storage: the record "data/<key>" (set when storages are lazy)

  Value() = default;
  Value(const Value&) = default;
  Value& operator=(const Value&) = default;
  /// Iterative: a deeply nested value (a hostile pickle can nest millions deep) is freed without
  /// recursion, so it cannot overflow the stack.
  ~Value();

  // Constructors.
  static ValuePtr none();
  static ValuePtr boolean(bool v);
  static ValuePtr integer(int64_t v);
  static ValuePtr real(double v);
  static ValuePtr string(std::string v);
  static ValuePtr tuple(std::vector<ValuePtr> items = {});
  static ValuePtr list(std::vector<ValuePtr> items = {});
  static ValuePtr dict(bool ordered = false);
  static ValuePtr make_tensor(at::Tensor t, bool is_parameter = false, bool requires_grad = false);

  /// Kind name for messages: "str", "int", "OrderedDict", "Tensor", ...
  std::string type_name() const;
  bool is_dict() const { return kind == Kind::Dict; }
  bool is_string() const { return kind == Kind::String; }
  bool is_tensor() const { return kind == Kind::Tensor; }

  /// Dict: sets key→value (replacing an equal str/int key in place, as Python does).
  void set_item(ValuePtr key, ValuePtr value);
  /// Dict with str keys: the value for `key`, or null.
  ValuePtr find(const std::string& key) const;
};

/// Bytes of the storage record "data/<key>" of the archive; throws vcpclip::Error when missing.
using RecordLoader = std::function<std::pair<std::shared_ptr<const uint8_t>, size_t>(const std::string& key)>;

/// What the reader accepts beyond torch.save's format.
struct UnpickleOptions {
  /// TorchScript archives (torch.jit.save): GLOBAL '__torch__.<class>' + EMPTY_TUPLE + NEWOBJ makes
  /// a Kind::Object (s = the class), BUILD sets its attribute dict as `state`.
  bool torchscript_objects = false;
  /// Storages are not read (load_record is never called): a tensor is a CPU-free "meta" tensor
  /// with the stored dtype, size, stride and offset, and `storage_key` names its record, for a
  /// caller that reads the records one at a time.
  bool lazy_storages = false;
};

/// Interprets a pickle (torch.save's data.pkl). `source` names the file in error messages.
ValuePtr unpickle(const uint8_t* data, size_t size, const RecordLoader& load_record, const std::string& source,
                  const UnpickleOptions& options = {});

/// Reads a torch.save zip file (any top folder name; "<x>/data.pkl" + "<x>/data/<key>").
/// Tensors come back on CPU in their stored dtype, views of shared storages kept.
ValuePtr load_torch_file(const std::string& path);

/// A storage the pickler referenced: its key ("0", "1", ...) and its bytes (CPU, contiguous).
struct StorageRecord {
  std::string key;
  at::Tensor data;  // 1-D CPU tensor holding the whole storage
};

/// Pickles `root` with protocol 2 as torch.save does: tensors become
/// torch._utils._rebuild_tensor_v2(persistent storage, offset, size, stride, requires_grad,
/// OrderedDict()), parameters are wrapped in torch._utils._rebuild_parameter. CUDA tensors are
/// saved as CPU storages. Returns data.pkl's bytes; the storages to write go to `storages`.
std::string pickle_value(const ValuePtr& root, std::vector<StorageRecord>* storages);

/// Writes `root` as a torch.save zip (data.pkl, data/<key> sorted by key as torch.save does,
/// version "3"), atomically (temp file + fsync + rename). Top folder name: "archive".
void save_torch_file(const std::string& path, const ValuePtr& root);

}  // namespace vcpclip::io::pickle
