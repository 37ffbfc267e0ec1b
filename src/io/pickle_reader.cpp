// A pickle VM for torch.save's data.pkl (the opcodes and globals listed in pickle.h), and the zip
// reading around it. Every read is bounds-checked; bad input is a vcpclip::Error naming the file.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "vcpclip/common/error.h"
#include "vcpclip/io/pickle.h"
#include "vcpclip/io/zip_reader.h"

namespace vcpclip::io::pickle {
namespace {

using Kind = Value::Kind;

const char* opcode_name(uint8_t op) {
  struct Name {
    uint8_t op;
    const char* name;
  };
  // clang-format off
  static const Name names[] = {
      {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"}, {'F', "FLOAT"}, {'I', "INT"},
      {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"}, {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"},
      {'Q', "BINPERSID"}, {'R', "REDUCE"}, {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"},
      {'V', "UNICODE"}, {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
      {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"}, {'j', "LONG_BINGET"},
      {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"},
      {'s', "SETITEM"}, {'t', "TUPLE"}, {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"}, {0x80, "PROTO"},
      {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"},
      {0x87, "TUPLE3"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"}, {'B', "BINBYTES"},
      {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"},
      {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"}, {0x93, "STACK_GLOBAL"},
      {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
  };
  // clang-format on
  for (const auto& n : names)
    if (n.op == op) return n.name;
  return "unknown";
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
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;

  /// Without a result (an error, or a cycle), the lists and dicts made so far are emptied: a
  /// pickle can make one contain itself (through the memo), and shared pointers in a cycle would
  /// never be freed.
  ~Unpickler() {
    if (done_) return;
    for (auto& c : containers_) {
      c->items.clear();
      c->entries.clear();
      c->state.reset();
    }
  }

  ValuePtr run() {
    while (true) {
      op_pos_ = pos_;
      op_ = read_u8();
      if (op_ == '.') {  // STOP
        if (stack_.size() != 1 || !marks_.empty())
          bad("malformed pickle: ", stack_.size(), " values on the stack at STOP");
        if (has_cycle(stack_.back()))
          bad("unsupported cyclic pickle (a list or dict that contains itself; torch.save never writes one)");
        done_ = true;
        return stack_.back();
      }
      if (!scalar_op() && !memo_op() && !container_op() && !object_op())
        bad("unsupported pickle opcode ", opcode_name(op_), " (", hex_byte(op_), ")");
    }
  }

 private:
  /// Remembers a list or dict (see the destructor).
  ValuePtr container(ValuePtr v) {
    containers_.push_back(v);
    return v;
  }

  /// Whether a list, dict or tuple reachable from `root` contains itself (iterative depth-first
  /// search: hostile pickles nest hundreds of thousands deep).
  static bool has_cycle(const ValuePtr& root) {
    enum : uint8_t { kOpen = 1, kDone = 2 };
    std::unordered_map<const Value*, uint8_t> mark;
    std::vector<std::pair<const Value*, size_t>> path{{root.get(), 0}};  // node, next child
    mark[root.get()] = kOpen;
    while (!path.empty()) {
      auto& [v, next] = path.back();
      const size_t n = v->items.size() + 2 * v->entries.size() + (v->state ? 1 : 0);
      if (next == n) {
        mark[v] = kDone;
        path.pop_back();
        continue;
      }
      const size_t k = next++;
      const Value* c = k < v->items.size() ? v->items[k].get()
                       : k - v->items.size() < 2 * v->entries.size()
                           ? ((k - v->items.size()) % 2 ? v->entries[(k - v->items.size()) / 2].second.get()
                                                        : v->entries[(k - v->items.size()) / 2].first.get())
                           : v->state.get();
      if (!c || (c->items.empty() && c->entries.empty() && !c->state)) continue;
      uint8_t& m = mark[c];
      if (m == kOpen) return true;
      if (m == kDone) continue;
      m = kOpen;
      path.emplace_back(c, 0);
    }
    return false;
  }

  /// PROTO and the opcodes that push one constant; false when op_ is none of them.
  bool scalar_op() {
    switch (op_) {
      case 0x80: {  // PROTO
        const uint8_t proto = read_u8();
        if (proto > 5) bad("unsupported pickle protocol ", int(proto));
        return true;
      }
      case 'N':
        push(Value::none());
        return true;
      case 0x88:
        push(Value::boolean(true));
        return true;
      case 0x89:
        push(Value::boolean(false));
        return true;
      case 'K':
        push(Value::integer(read_u8()));
        return true;
      case 'M':
        push(Value::integer(read_le(2)));
        return true;
      case 'J':
        push(Value::integer(static_cast<int32_t>(static_cast<uint32_t>(read_le(4)))));
        return true;
      case 0x8a:
        push(Value::integer(read_long1()));
        return true;
      case 'G':
        push(Value::real(read_binfloat()));
        return true;
      case 'X':  // BINUNICODE
        push(read_string(static_cast<size_t>(read_le(4))));
        return true;
      case 0x8c:  // SHORT_BINUNICODE
        push(read_string(read_u8()));
        return true;
      default:
        return false;
    }
  }

  /// The memo: BINPUT LONG_BINPUT BINGET LONG_BINGET.
  bool memo_op() {
    switch (op_) {
      case 'q':
        memo_[read_u8()] = top();
        return true;
      case 'r':
        memo_[static_cast<uint32_t>(read_le(4))] = top();
        return true;
      case 'h':
        push(memo_get(read_u8()));
        return true;
      case 'j':
        push(memo_get(static_cast<uint32_t>(read_le(4))));
        return true;
      default:
        return false;
    }
  }

  /// MARK, empty containers, tuples, appending to lists and setting dict items.
  bool container_op() {
    switch (op_) {
      case '(':
        marks_.push_back(stack_.size());
        return true;
      case '}':
        push(container(Value::dict(false)));
        return true;
      case ']':
        push(container(Value::list()));
        return true;
      case ')':
        push(Value::tuple());
        return true;
      case 0x85:
      case 0x86:
      case 0x87:  // TUPLE1..3
        push(Value::tuple(pop_n(size_t(op_ - 0x84))));
        return true;
      case 't':
        push(Value::tuple(pop_mark()));
        return true;
      case 'a':
      case 'e':
        append(op_ == 'a' ? std::vector<ValuePtr>{pop()} : pop_mark());
        return true;
      case 's': {
        ValuePtr v = pop();
        ValuePtr k = pop();
        set_items({std::move(k), std::move(v)});
        return true;
      }
      case 'u':
        set_items(pop_mark());
        return true;
      default:
        return false;
    }
  }

  /// GLOBAL, BINPERSID (storages), REDUCE (the supported calls) and BUILD (OrderedDict state).
  bool object_op() {
    switch (op_) {
      case 'c':
        push(read_global());
        return true;
      case 'Q':
        push(persistent_load(pop()));
        return true;
      case 'R': {
        ValuePtr args = pop();
        ValuePtr fn = pop();
        push(reduce(*fn, *args));
        return true;
      }
      case 0x81: {  // NEWOBJ: TorchScript module objects only
        ValuePtr args = pop();
        ValuePtr cls = pop();
        push(new_object(*cls, *args));
        return true;
      }
      case 'b': {
        ValuePtr state = pop();
        ValuePtr obj = top();
        if (obj->kind == Kind::Object && state->kind == Kind::Dict) {
          obj->state = std::move(state);
          return true;
        }
        if (obj->kind != Kind::Dict || !obj->ordered)
          bad("unsupported BUILD on a ", obj->type_name(), " (only an OrderedDict's attributes are read)");
        obj->state = std::move(state);
        return true;
      }
      default:
        return false;
    }
  }

  void append(std::vector<ValuePtr> values) {
    ValuePtr l = top();
    expect_list(*l);
    for (auto& v : values) l->items.push_back(std::move(v));
  }

  void set_items(std::vector<ValuePtr> kvs) {
    if (kvs.size() % 2 != 0) bad("malformed pickle: odd number of values for SETITEMS");
    ValuePtr d = top();
    expect_dict(*d);
    for (size_t k = 0; k < kvs.size(); k += 2) set_item(d, kvs[k], kvs[k + 1]);
  }

  double read_binfloat() {  // big-endian IEEE double
    const uint8_t* p = take(8);
    uint64_t bits = 0;
    for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  }

  ValuePtr read_string(size_t n) {
    const uint8_t* p = take(n);
    return Value::string(std::string(reinterpret_cast<const char*>(p), n));
  }

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
    return container(v);
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
      return container(Value::dict(true));
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
  std::vector<ValuePtr> containers_;
  bool done_ = false;
};

}  // namespace

ValuePtr unpickle(const uint8_t* data, size_t size, const RecordLoader& load_record, const std::string& source,
                  const UnpickleOptions& options) {
  Unpickler u(data, size, load_record, source, options);
  return u.run();
}

namespace {

void check_zip_magic(const char* head, size_t size, const std::string& source) {
  if (size == 0) fail("cannot read ", source, ": the file is empty (expected a torch.save zip)");
  if (size < 4 || std::memcmp(head, "PK\x03\x04", 4) != 0)
    fail("cannot read ", source,
         ": not a zip file (torch.save writes a zip; legacy non-zip .pth files are not supported)");
}

}  // namespace

ValuePtr load_torch_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail("cannot read ", path, ": no such file");
  if (std::filesystem::is_directory(path, ec)) fail("cannot read ", path, ": it is a directory");
  auto file_size = std::filesystem::file_size(path, ec);
  if (ec) fail("cannot read ", path, ": ", ec.message());
  char magic[4] = {0, 0, 0, 0};
  std::ifstream(path, std::ios::binary).read(magic, 4);
  check_zip_magic(magic, file_size, path);
  const ZipReader zip(path);
  if (!zip.has("data.pkl")) fail("cannot read ", path, ": the zip has no <folder>/data.pkl record");
  const auto pkl = zip.read("data.pkl");
  RecordLoader loader = [&](const std::string& key) -> std::pair<std::shared_ptr<const uint8_t>, size_t> {
    const std::string name = "data/" + key;
    if (!zip.has(name)) fail("cannot read ", path, ": storage record ", name, " is missing from the zip");
    auto bytes = zip.read(name);
    return {std::shared_ptr<const uint8_t>(bytes, bytes->data()), bytes->size()};
  };
  return unpickle(pkl->data(), pkl->size(), loader, path);
}

}  // namespace vcpclip::io::pickle
