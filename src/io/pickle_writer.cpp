// Protocol-2 pickler that emits what Python's pickle.Pickler + torch.save's persistent_id emit for
// the same objects (same opcodes, same memo numbering), and the torch.save zip around it.
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "vcpclip/common/error.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/pickle.h"

namespace vcpclip::io::pickle {
namespace {

using Kind = Value::Kind;

const char* storage_class(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "FloatStorage";
    case at::kHalf:
      return "HalfStorage";
    case at::kBFloat16:
      return "BFloat16Storage";
    case at::kDouble:
      return "DoubleStorage";
    case at::kLong:
      return "LongStorage";
    case at::kInt:
      return "IntStorage";
    case at::kShort:
      return "ShortStorage";
    case at::kChar:
      return "CharStorage";
    case at::kByte:
      return "ByteStorage";
    case at::kBool:
      return "BoolStorage";
    default:
      fail("cannot save a tensor of dtype ", c10::toString(t), " (no torch storage class for it)");
  }
}

class Pickler {
 public:
  explicit Pickler(std::vector<StorageRecord>* storages) : storages_(storages) {
    storage_str_ = Value::string("storage");
    cpu_str_ = Value::string("cpu");
  }

  std::string dump(const ValuePtr& root) {
    out_.push_back('\x80');
    out_.push_back('\x02');
    save(root);
    out_.push_back('.');
    return std::move(out_);
  }

 private:
  void op(char c) { out_.push_back(c); }
  void op(uint8_t c) { out_.push_back(static_cast<char>(c)); }
  void le(uint64_t v, int n) {
    for (int k = 0; k < n; ++k) out_.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
  }

  void put_fresh() {
    uint32_t idx = next_memo_++;
    if (idx < 256) {
      op('q');
      op(static_cast<uint8_t>(idx));
    } else {
      op('r');
      le(idx, 4);
    }
  }
  void memoize(const Value* v) {
    memo_[v] = next_memo_;
    put_fresh();
  }
  void get(uint32_t idx) {
    if (idx < 256) {
      op('h');
      op(static_cast<uint8_t>(idx));
    } else {
      op('j');
      le(idx, 4);
    }
  }

  void save_int(int64_t v) {
    if (v >= 0 && v <= 0xff) {
      op('K');
      op(static_cast<uint8_t>(v));
    } else if (v >= 0 && v <= 0xffff) {
      op('M');
      le(static_cast<uint64_t>(v), 2);
    } else if (v >= -0x80000000LL && v <= 0x7fffffffLL) {
      op('J');
      le(static_cast<uint64_t>(v), 4);
    } else {  // LONG1, Python's encode_long: minimal little-endian two's complement
      uint64_t u = static_cast<uint64_t>(v);
      int n = 8;
      while (n > 1) {
        uint8_t top = (u >> (8 * (n - 1))) & 0xff;
        uint8_t next = (u >> (8 * (n - 2))) & 0xff;
        if ((top == 0x00 && !(next & 0x80)) || (top == 0xff && (next & 0x80)))
          --n;
        else
          break;
      }
      op('\x8a');
      op(static_cast<uint8_t>(n));
      le(u, n);
    }
  }

  void save_float(double d) {
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    op('G');
    for (int k = 7; k >= 0; --k) out_.push_back(static_cast<char>((bits >> (8 * k)) & 0xff));
  }

  void save_global(const std::string& module, const std::string& name) {
    std::string key = module + "\n" + name + "\n";
    auto it = global_memo_.find(key);
    if (it != global_memo_.end()) return get(it->second);
    op('c');
    out_ += key;
    global_memo_[key] = next_memo_;
    put_fresh();
  }

  /// A fresh tuple of ints (a tensor's size or stride): memoized like any new tuple.
  void save_int_tuple(at::IntArrayRef xs) {
    if (xs.empty()) return op(')');
    if (xs.size() > 3) op('(');
    for (int64_t x : xs) save_int(x);
    if (xs.size() <= 3)
      op(static_cast<uint8_t>(0x84 + xs.size()));
    else
      op('t');
    put_fresh();
  }

  void save_empty_ordered_dict() {
    save_global("collections", "OrderedDict");
    op(')');
    op('R');
    put_fresh();
  }

  /// Batches of 1000 as Python's _batch_setitems / _batch_appends.
  void save_dict_items(const Value& d) {
    const auto& e = d.entries;
    for (size_t start = 0; start < e.size(); start += 1000) {
      size_t n = std::min<size_t>(1000, e.size() - start);
      if (n > 1) op('(');
      for (size_t k = start; k < start + n; ++k) {
        save(e[k].first);
        save(e[k].second);
      }
      op(n > 1 ? 'u' : 's');
    }
  }
  void save_list_items(const Value& l) {
    const auto& e = l.items;
    for (size_t start = 0; start < e.size(); start += 1000) {
      size_t n = std::min<size_t>(1000, e.size() - start);
      if (n > 1) op('(');
      for (size_t k = start; k < start + n; ++k) save(e[k]);
      op(n > 1 ? 'e' : 'a');
    }
  }

  /// torch.save's persistent_id for the storage of `t`: ('storage', torch.<T>Storage, key, 'cpu', numel).
  void save_storage(const at::Tensor& t) {
    const c10::StorageImpl* impl = t.storage().unsafeGetStorageImpl();
    auto it = storage_keys_.find(impl);
    size_t itemsize = t.element_size();
    if (it == storage_keys_.end()) {
      int64_t numel = static_cast<int64_t>(t.storage().nbytes() / itemsize);
      at::Tensor whole = at::empty({0}, t.options()).set_(t.storage(), 0, {numel}, {1}).to(at::kCPU);
      ValuePtr key = Value::string(std::to_string(storages_->size()));
      storages_->push_back({key->s, whole});
      it = storage_keys_.emplace(impl, key).first;
      key_values_.push_back(key);
    }
    op('(');
    save(storage_str_);
    save_global("torch", storage_class(t.scalar_type()));
    save(it->second);
    save(cpu_str_);
    save_int(static_cast<int64_t>(t.storage().nbytes() / itemsize));
    op('t');
    put_fresh();
    op('Q');
  }

  /// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict())
  void save_tensor_reduce(const at::Tensor& t, bool requires_grad) {
    save_global("torch._utils", "_rebuild_tensor_v2");
    op('(');
    save_storage(t);
    save_int(t.storage_offset());
    save_int_tuple(t.sizes());
    save_int_tuple(t.strides());
    op(requires_grad ? '\x88' : '\x89');
    save_empty_ordered_dict();
    op('t');
    put_fresh();
    op('R');
  }

  void save(const ValuePtr& vp) {
    const Value& v = *vp;
    auto m = memo_.find(&v);
    if (m != memo_.end()) return get(m->second);
    switch (v.kind) {
      case Kind::None:
        return op('N');
      case Kind::Bool:
        return op(v.b ? '\x88' : '\x89');
      case Kind::Int:
        return save_int(v.i);
      case Kind::Float:
        return save_float(v.f);
      case Kind::String:
        op('X');
        le(v.s.size(), 4);
        out_ += v.s;
        return memoize(&v);
      case Kind::Tuple:
        if (v.items.empty()) return op(')');
        if (v.items.size() > 3) op('(');
        for (const auto& e : v.items) save(e);
        if (memo_.count(&v)) fail("cannot pickle a tuple that contains itself");
        if (v.items.size() <= 3)
          op(static_cast<uint8_t>(0x84 + v.items.size()));
        else
          op('t');
        return memoize(&v);
      case Kind::List:
        op(']');
        memoize(&v);
        return save_list_items(v);
      case Kind::Dict:
        if (!v.ordered) {
          VCP_CHECK(!v.state, "cannot pickle attributes of a plain dict");
          op('}');
          memoize(&v);
          return save_dict_items(v);
        }
        save_global("collections", "OrderedDict");
        op(')');
        op('R');
        memoize(&v);
        save_dict_items(v);
        if (v.state) {
          save(v.state);
          op('b');
        }
        return;
      case Kind::Tensor: {
        VCP_CHECK(v.tensor.defined(), "cannot pickle an undefined tensor");
        at::Tensor t = v.tensor.detach();
        VCP_CHECK(t.layout() == at::kStrided && !t.is_quantized(), "cannot pickle a non-dense tensor");
        if (!v.is_parameter) {
          save_tensor_reduce(t, v.requires_grad);
          return memoize(&v);
        }
        save_global("torch._utils", "_rebuild_parameter");
        save_tensor_reduce(t, false);
        put_fresh();  // the parameter's .data, a new tensor object
        op(v.requires_grad ? '\x88' : '\x89');
        save_empty_ordered_dict();
        op('\x87');
        put_fresh();
        op('R');
        return memoize(&v);
      }
      case Kind::Global:
      case Kind::Storage:
        fail("cannot pickle a bare ", v.type_name());
    }
  }

  std::string out_;
  std::vector<StorageRecord>* storages_;
  std::unordered_map<const Value*, uint32_t> memo_;
  std::unordered_map<std::string, uint32_t> global_memo_;
  std::unordered_map<const c10::StorageImpl*, ValuePtr> storage_keys_;
  std::vector<ValuePtr> key_values_;
  ValuePtr storage_str_, cpu_str_;
  uint32_t next_memo_ = 0;
};

}  // namespace

std::string pickle_value(const ValuePtr& root, std::vector<StorageRecord>* storages) {
  VCP_CHECK(root != nullptr, "cannot pickle a null value");
  storages->clear();
  Pickler p(storages);
  return p.dump(root);
}

void save_torch_file(const std::string& path, const ValuePtr& root) {
  std::vector<StorageRecord> storages;
  std::string pkl = pickle_value(root, &storages);
  // torch.save writes the storages in the order of their sorted (string) keys.
  std::sort(storages.begin(), storages.end(),
            [](const StorageRecord& a, const StorageRecord& b) { return a.key < b.key; });
  AtomicFileWriter file(path);
  // A write error is remembered and reported after the zip writer is done: letting it fail inside
  // miniz would make PyTorchStreamWriter's destructor throw again.
  std::string write_error;
  try {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* buf, size_t n) -> size_t {
      if (write_error.empty()) {
        try {
          file.write(buf, n);
        } catch (const std::exception& e) {
          write_error = e.what();
        }
      }
      return n;
    });
    writer.writeRecord("data.pkl", pkl.data(), pkl.size());
    for (const auto& s : storages) {
      at::Tensor data = s.data.contiguous();
      writer.writeRecord("data/" + s.key, data.data_ptr(), data.nbytes());
    }
    writer.writeEndOfFile();
  } catch (const c10::Error& e) {
    fail("cannot write ", path, ": ", e.what_without_backtrace());
  }
  if (!write_error.empty()) throw Error(write_error);
  file.commit();
}

}  // namespace vcpclip::io::pickle
