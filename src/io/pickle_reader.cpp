// A pickle VM for torch.save's data.pkl (the opcodes and globals listed in pickle.h), and the zip
// reading around it. Every read is bounds-checked; bad input is a vcpclip::Error naming the file.
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "vcpclip/common/error.h"
#include "vcpclip/io/pickle.h"

namespace vcpclip::io::pickle {
namespace {

using Kind = Value::Kind;

const char* opcode_name(uint8_t op) {
  switch (op) {
    case '(':
      return "MARK";
    case '.':
      return "STOP";
    case '0':
      return "POP";
    case '1':
      return "POP_MARK";
    case '2':
      return "DUP";
    case 'F':
      return "FLOAT";
    case 'I':
      return "INT";
    case 'J':
      return "BININT";
    case 'K':
      return "BININT1";
    case 'L':
      return "LONG";
    case 'M':
      return "BININT2";
    case 'N':
      return "NONE";
    case 'P':
      return "PERSID";
    case 'Q':
      return "BINPERSID";
    case 'R':
      return "REDUCE";
    case 'S':
      return "STRING";
    case 'T':
      return "BINSTRING";
    case 'U':
      return "SHORT_BINSTRING";
    case 'V':
      return "UNICODE";
    case 'X':
      return "BINUNICODE";
    case 'a':
      return "APPEND";
    case 'b':
      return "BUILD";
    case 'c':
      return "GLOBAL";
    case 'd':
      return "DICT";
    case '}':
      return "EMPTY_DICT";
    case 'e':
      return "APPENDS";
    case 'g':
      return "GET";
    case 'h':
      return "BINGET";
    case 'i':
      return "INST";
    case 'j':
      return "LONG_BINGET";
    case 'l':
      return "LIST";
    case ']':
      return "EMPTY_LIST";
    case 'o':
      return "OBJ";
    case 'p':
      return "PUT";
    case 'q':
      return "BINPUT";
    case 'r':
      return "LONG_BINPUT";
    case 's':
      return "SETITEM";
    case 't':
      return "TUPLE";
    case ')':
      return "EMPTY_TUPLE";
    case 'u':
      return "SETITEMS";
    case 'G':
      return "BINFLOAT";
    case 0x80:
      return "PROTO";
    case 0x81:
      return "NEWOBJ";
    case 0x82:
      return "EXT1";
    case 0x83:
      return "EXT2";
    case 0x84:
      return "EXT4";
    case 0x85:
      return "TUPLE1";
    case 0x86:
      return "TUPLE2";
    case 0x87:
      return "TUPLE3";
    case 0x88:
      return "NEWTRUE";
    case 0x89:
      return "NEWFALSE";
    case 0x8a:
      return "LONG1";
    case 0x8b:
      return "LONG4";
    case 'B':
      return "BINBYTES";
    case 'C':
      return "SHORT_BINBYTES";
    case 0x8c:
      return "SHORT_BINUNICODE";
    case 0x8d:
      return "BINUNICODE8";
    case 0x8e:
      return "BINBYTES8";
    case 0x8f:
      return "EMPTY_SET";
    case 0x90:
      return "ADDITEMS";
    case 0x91:
      return "FROZENSET";
    case 0x92:
      return "NEWOBJ_EX";
    case 0x93:
      return "STACK_GLOBAL";
    case 0x94:
      return "MEMOIZE";
    case 0x95:
      return "FRAME";
    case 0x96:
      return "BYTEARRAY8";
    case 0x97:
      return "NEXT_BUFFER";
    case 0x98:
      return "READONLY_BUFFER";
    default:
      return "unknown";
  }
}

std::string hex_byte(uint8_t b) {
  static const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

/// torch.<Name>Storage → dtype; false when the name is not a storage class we read.
bool storage_dtype(const std::string& name, at::ScalarType* out) {
  static const std::unordered_map<std::string, at::ScalarType> table = {
      {"FloatStorage", at::kFloat},   {"HalfStorage", at::kHalf}, {"BFloat16Storage", at::kBFloat16},
      {"DoubleStorage", at::kDouble}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},   {"CharStorage", at::kChar}, {"ByteStorage", at::kByte},
      {"BoolStorage", at::kBool}};
  auto it = table.find(name);
  if (it == table.end()) return false;
  *out = it->second;
  return true;
}

const char* kSupportedGlobals =
    "collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, "
    "torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage";

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const RecordLoader& load, const std::string& source,
            const UnpickleOptions& options)
      : data_(data), size_(size), load_(load), source_(source), opts_(options) {}

  ValuePtr run() {
    while (true) {
      op_pos_ = pos_;
      op_ = read_u8();
      switch (op_) {
        case 0x80: {  // PROTO
          uint8_t proto = read_u8();
          if (proto > 5) bad("unsupported pickle protocol ", int(proto));
          break;
        }
        case '.': {  // STOP
          if (stack_.size() != 1 || !marks_.empty())
            bad("malformed pickle: ", stack_.size(), " values on the stack at STOP");
          return stack_.back();
        }
        case '(':
          marks_.push_back(stack_.size());
          break;
        case '}':
          push(Value::dict(false));
          break;
        case ']':
          push(Value::list());
          break;
        case ')':
          push(Value::tuple());
          break;
        case 'N':
          push(Value::none());
          break;
        case 0x88:
          push(Value::boolean(true));
          break;
        case 0x89:
          push(Value::boolean(false));
          break;
        case 'K':
          push(Value::integer(read_u8()));
          break;
        case 'M':
          push(Value::integer(read_le(2)));
          break;
        case 'J':
          push(Value::integer(static_cast<int32_t>(static_cast<uint32_t>(read_le(4)))));
          break;
        case 0x8a:
          push(Value::integer(read_long1()));
          break;
        case 'G': {  // BINFLOAT: big-endian IEEE double
          const uint8_t* p = take(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];
          double d;
          std::memcpy(&d, &bits, 8);
          push(Value::real(d));
          break;
        }
        case 'X': {  // BINUNICODE
          size_t n = static_cast<size_t>(read_le(4));
          const uint8_t* p = take(n);
          push(Value::string(std::string(reinterpret_cast<const char*>(p), n)));
          break;
        }
        case 0x8c: {  // SHORT_BINUNICODE
          size_t n = read_u8();
          const uint8_t* p = take(n);
          push(Value::string(std::string(reinterpret_cast<const char*>(p), n)));
          break;
        }
        case 'q':
          memo_[read_u8()] = top();
          break;
        case 'r':
          memo_[static_cast<uint32_t>(read_le(4))] = top();
          break;
        case 'h':
          push(memo_get(read_u8()));
          break;
        case 'j':
          push(memo_get(static_cast<uint32_t>(read_le(4))));
          break;
        case 0x85:
          push(Value::tuple(pop_n(1)));
          break;
        case 0x86:
          push(Value::tuple(pop_n(2)));
          break;
        case 0x87:
          push(Value::tuple(pop_n(3)));
          break;
        case 't':
          push(Value::tuple(pop_mark()));
          break;
        case 'a': {  // APPEND
          ValuePtr v = pop();
          ValuePtr l = top();
          expect_list(*l);
          l->items.push_back(std::move(v));
          break;
        }
        case 'e': {  // APPENDS
          auto vs = pop_mark();
          ValuePtr l = top();
          expect_list(*l);
          for (auto& v : vs) l->items.push_back(std::move(v));
          break;
        }
        case 's': {  // SETITEM
          ValuePtr v = pop();
          ValuePtr k = pop();
          ValuePtr d = top();
          expect_dict(*d);
          set_item(d, std::move(k), std::move(v));
          break;
        }
        case 'u': {  // SETITEMS
          auto kvs = pop_mark();
          if (kvs.size() % 2 != 0) bad("malformed pickle: odd number of values for SETITEMS");
          ValuePtr d = top();
          expect_dict(*d);
          for (size_t k = 0; k < kvs.size(); k += 2) set_item(d, kvs[k], kvs[k + 1]);
          break;
        }
        case 'c':
          push(read_global());
          break;
        case 'Q':
          push(persistent_load(pop()));
          break;
        case 'R': {  // REDUCE
          ValuePtr args = pop();
          ValuePtr fn = pop();
          push(reduce(*fn, *args));
          break;
        }
        case 0x81: {  // NEWOBJ: TorchScript module objects only
          ValuePtr args = pop();
          ValuePtr cls = pop();
          push(new_object(*cls, *args));
          break;
        }
        case 'b': {  // BUILD
          ValuePtr state = pop();
          ValuePtr obj = top();
          if (obj->kind == Kind::Object && state->kind == Kind::Dict) {
            obj->state = std::move(state);
            break;
          }
          if (obj->kind != Kind::Dict || !obj->ordered) {
            bad("unsupported BUILD on a ", obj->type_name(), " (only an OrderedDict's attributes are read)");
          }
          obj->state = std::move(state);
          break;
        }
        default:
          bad("unsupported pickle opcode ", opcode_name(op_), " (", hex_byte(op_), ")");
      }
    }
  }

 private:
  template <typename... Parts>
  [[noreturn]] void bad(const Parts&... parts) {
    fail(msg(parts...), " at byte ", op_pos_, " of data.pkl in ", source_);
  }

  const uint8_t* take(size_t n) {
    if (n > size_ - pos_) {
      fail("truncated pickle: data.pkl ended at byte ", size_, " while reading ", opcode_name(op_), " at byte ",
           op_pos_, " in ", source_);
    }
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint8_t read_u8() {
    if (pos_ >= size_) {
      fail("truncated pickle: data.pkl ended at byte ", size_, " before STOP in ", source_);
    }
    return data_[pos_++];
  }
  uint64_t read_le(int n) {
    const uint8_t* p = take(static_cast<size_t>(n));
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | p[k];
    return v;
  }
  int64_t read_long1() {
    size_t n = read_u8();
    const uint8_t* p = take(n);
    if (n == 0) return 0;
    if (n > 8) bad("integer of ", n, " bytes does not fit in 64 bits");
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = (v << 8) | p[k];
    if (n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }
  std::string read_line() {
    std::string out;
    while (true) {
      uint8_t c = read_u8();
      if (c == '\n') return out;
      if (out.size() > 256) bad("GLOBAL name longer than 256 bytes");
      out.push_back(static_cast<char>(c));
    }
  }

  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  ValuePtr top() {
    if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size())) {
      bad("malformed pickle: empty stack at ", opcode_name(op_));
    }
    return stack_.back();
  }
  ValuePtr pop() {
    ValuePtr v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<ValuePtr> pop_n(size_t n) {
    size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + n) bad("malformed pickle: too few values on the stack for ", opcode_name(op_));
    std::vector<ValuePtr> out(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    return out;
  }
  std::vector<ValuePtr> pop_mark() {
    if (marks_.empty()) bad("malformed pickle: ", opcode_name(op_), " without MARK");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> out(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return out;
  }
  ValuePtr memo_get(uint32_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad("malformed pickle: memo entry ", idx, " read before it was written");
    return it->second;
  }
  void expect_list(const Value& v) {
    if (v.kind != Kind::List) bad("unsupported ", opcode_name(op_), " on a ", v.type_name(), " (expected a list)");
  }
  void expect_dict(const Value& v) {
    if (v.kind != Kind::Dict) bad("unsupported ", opcode_name(op_), " on a ", v.type_name(), " (expected a dict)");
  }

  /// Value::set_item with a hash index per dict, so that a huge (hostile) dict is not quadratic.
  void set_item(const ValuePtr& d, ValuePtr key, ValuePtr value) {
    std::string id;
    if (key->kind == Kind::String)
      id = "s" + key->s;
    else if (key->kind == Kind::Int)
      id = "i" + std::to_string(key->i);
    else
      id = "p" + std::to_string(reinterpret_cast<uintptr_t>(key.get()));
    auto& slot = dict_index_[d.get()];
    if (!slot.first) slot.first = d;  // keeps the dict alive, so its address is never reused meanwhile
    auto& index = slot.second;
    auto it = index.find(id);
    if (it != index.end()) {
      d->entries[it->second].second = std::move(value);
      return;
    }
    index.emplace(std::move(id), d->entries.size());
    d->entries.emplace_back(std::move(key), std::move(value));
  }

  ValuePtr read_global() {
    std::string module = read_line();
    std::string name = read_line();
    std::string full = module + "." + name;
    bool ok = full == "collections.OrderedDict" || full == "torch._utils._rebuild_tensor_v2" ||
              full == "torch._utils._rebuild_parameter";
    at::ScalarType dt;
    if (module == "torch" && storage_dtype(name, &dt)) ok = true;
    if (opts_.torchscript_objects && (module == "__torch__" || module.rfind("__torch__.", 0) == 0)) ok = true;
    if (!ok) bad("unsupported pickle global '", full, "' (supported: ", kSupportedGlobals, ")");
    auto v = std::make_shared<Value>();
    v->kind = Kind::Global;
    v->s = full;
    return v;
  }

  int64_t as_int(const Value& v, const char* what) {
    if (v.kind != Kind::Int) bad("expected an int for ", what, ", found ", v.type_name());
    return v.i;
  }
  std::vector<int64_t> as_int_tuple(const Value& v, const char* what) {
    if (v.kind != Kind::Tuple) bad("expected a tuple of ints for ", what, ", found ", v.type_name());
    std::vector<int64_t> out;
    for (const auto& e : v.items) out.push_back(as_int(*e, what));
    return out;
  }

  ValuePtr new_object(const Value& cls, const Value& args) {
    if (!opts_.torchscript_objects || cls.kind != Kind::Global || cls.s.rfind("__torch__", 0) != 0)
      bad("unsupported NEWOBJ of a ", cls.type_name(), " (only TorchScript module objects are read)");
    if (args.kind != Kind::Tuple || !args.items.empty())
      bad("NEWOBJ of ", cls.s, " with arguments (expected an empty tuple)");
    auto v = std::make_shared<Value>();
    v->kind = Kind::Object;
    v->s = cls.s;
    return v;
  }

  ValuePtr persistent_load(const ValuePtr& pid) {
    const auto& it = pid->items;
    if (pid->kind != Kind::Tuple || it.size() != 5 || it[0]->kind != Kind::String || it[0]->s != "storage") {
      bad("unsupported persistent id (expected ('storage', type, key, location, numel), found a ", pid->type_name(),
          ")");
    }
    if (it[1]->kind != Kind::Global || it[1]->s.rfind("torch.", 0) != 0) {
      bad("expected a torch storage class in a persistent id, found ", it[1]->type_name());
    }
    at::ScalarType dtype;
    if (!storage_dtype(it[1]->s.substr(6), &dtype)) bad("unsupported storage class ", it[1]->s);
    if (it[2]->kind != Kind::String) bad("expected a str storage key, found ", it[2]->type_name());
    const std::string& key = it[2]->s;
    int64_t numel = as_int(*it[4], "a storage size");
    if (numel < 0) bad("negative storage size ", numel);

    auto cached = storages_.find(key);
    if (cached != storages_.end()) {
      if (cached->second->tensor.scalar_type() != dtype || cached->second->tensor.numel() != numel) {
        bad("storage data/", key, " is used with two different types or sizes");
      }
      return cached->second;
    }
    if (opts_.lazy_storages) {
      auto v = std::make_shared<Value>();
      v->kind = Kind::Storage;
      v->tensor = at::empty({numel}, at::TensorOptions().dtype(dtype).device(at::kMeta));
      v->storage_key = key;
      storages_[key] = v;
      return v;
    }
    auto record = load_(key);
    size_t itemsize = c10::elementSize(dtype);
    if (static_cast<uint64_t>(numel) > (uint64_t(1) << 48) / itemsize ||
        record.second != static_cast<size_t>(numel) * itemsize) {
      fail("storage data/", key, " of ", source_, " has ", record.second, " bytes, expected ", numel, " ",
           c10::toString(dtype), " values (", static_cast<uint64_t>(numel) * itemsize, " bytes)");
    }
    auto v = std::make_shared<Value>();
    v->kind = Kind::Storage;
    v->tensor = at::empty({numel}, at::TensorOptions().dtype(dtype));
    if (record.second > 0) std::memcpy(v->tensor.data_ptr(), record.first.get(), record.second);
    storages_[key] = v;
    return v;
  }

  ValuePtr reduce(const Value& fn, const Value& args) {
    if (fn.kind != Kind::Global) bad("REDUCE of a ", fn.type_name(), " (expected a supported global)");
    if (args.kind != Kind::Tuple) bad("REDUCE with ", args.type_name(), " arguments (expected a tuple)");
    const auto& a = args.items;
    if (fn.s == "collections.OrderedDict") {
      if (!a.empty()) bad("collections.OrderedDict called with ", a.size(), " arguments (expected none)");
      return Value::dict(true);
    }
    if (fn.s == "torch._utils._rebuild_tensor_v2") {
      if (a.size() != 6 && a.size() != 7)
        bad("_rebuild_tensor_v2 called with ", a.size(), " arguments (expected 6 or 7)");
      if (a[0]->kind != Kind::Storage) bad("_rebuild_tensor_v2 expects a storage, found ", a[0]->type_name());
      const at::Tensor& storage = a[0]->tensor;
      int64_t offset = as_int(*a[1], "a storage offset");
      auto size = as_int_tuple(*a[2], "a tensor size");
      auto stride = as_int_tuple(*a[3], "a tensor stride");
      if (a[4]->kind != Kind::Bool) bad("expected a bool requires_grad, found ", a[4]->type_name());
      if (size.size() != stride.size()) bad("tensor size has ", size.size(), " dims but stride ", stride.size());
      if (offset < 0) bad("negative storage offset ", offset);
      bool empty = false;
      int64_t last = offset;
      for (size_t d = 0; d < size.size(); ++d) {
        if (size[d] < 0 || stride[d] < 0) bad("negative tensor size or stride");
        if (size[d] == 0) empty = true;
        if (size[d] > (int64_t(1) << 40) || stride[d] > (int64_t(1) << 40)) bad("tensor size or stride too large");
        last += (size[d] - 1) * stride[d];
      }
      if (!empty && last >= storage.numel()) {
        bad("tensor of size ", at::IntArrayRef(size), ", stride ", at::IntArrayRef(stride), ", offset ", offset,
            " reaches past its storage of ", storage.numel(), " elements");
      }
      at::Tensor t = empty ? at::empty(size, storage.options()) : storage.as_strided(size, stride, offset);
      auto v = Value::make_tensor(t, false, a[4]->b);
      v->storage_key = a[0]->storage_key;
      return v;
    }
    if (fn.s == "torch._utils._rebuild_parameter") {
      if (a.size() != 3) bad("_rebuild_parameter called with ", a.size(), " arguments (expected 3)");
      if (a[0]->kind != Kind::Tensor) bad("_rebuild_parameter expects a tensor, found ", a[0]->type_name());
      if (a[1]->kind != Kind::Bool) bad("expected a bool requires_grad, found ", a[1]->type_name());
      auto v = Value::make_tensor(a[0]->tensor, true, a[1]->b);
      v->storage_key = a[0]->storage_key;
      return v;
    }
    bad("unsupported call of ", fn.s);
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  uint8_t op_ = 0;
  const RecordLoader& load_;
  const std::string& source_;
  const UnpickleOptions& opts_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, ValuePtr> memo_;
  std::unordered_map<std::string, ValuePtr> storages_;
  std::unordered_map<const Value*, std::pair<ValuePtr, std::unordered_map<std::string, size_t>>> dict_index_;
};

}  // namespace

ValuePtr unpickle(const uint8_t* data, size_t size, const RecordLoader& load_record, const std::string& source,
                  const UnpickleOptions& options) {
  Unpickler u(data, size, load_record, source, options);
  return u.run();
}

ValuePtr load_torch_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail("cannot read ", path, ": no such file");
  if (std::filesystem::is_directory(path, ec)) fail("cannot read ", path, ": it is a directory");
  auto file_size = std::filesystem::file_size(path, ec);
  if (ec) fail("cannot read ", path, ": ", ec.message());
  if (file_size == 0) fail("cannot read ", path, ": the file is empty (expected a torch.save zip)");
  {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {0, 0, 0, 0};
    in.read(magic, 4);
    if (!in || std::memcmp(magic, "PK\x03\x04", 4) != 0) {
      fail("cannot read ", path,
           ": not a zip file (torch.save writes a zip; legacy non-zip .pth files are not "
           "supported)");
    }
  }
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord("data.pkl")) fail("cannot read ", path, ": the zip has no <folder>/data.pkl record");
    auto [pkl_ptr, pkl_size] = reader.getRecord("data.pkl");
    RecordLoader loader = [&](const std::string& key) -> std::pair<std::shared_ptr<const uint8_t>, size_t> {
      std::string name = "data/" + key;
      if (!reader.hasRecord(name)) fail("cannot read ", path, ": storage record ", name, " is missing from the zip");
      auto [ptr, n] = reader.getRecord(name);
      auto holder = std::make_shared<at::DataPtr>(std::move(ptr));
      return {std::shared_ptr<const uint8_t>(holder, static_cast<const uint8_t*>(holder->get())), n};
    };
    return unpickle(static_cast<const uint8_t*>(pkl_ptr.get()), pkl_size, loader, path);
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    fail("cannot read ", path, ": not a readable torch.save zip (", first_line(e.what_without_backtrace()), ")");
  } catch (const std::exception& e) {
    fail("cannot read ", path, ": ", e.what());
  }
}

}  // namespace vcpclip::io::pickle
