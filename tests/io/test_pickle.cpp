// The torch.save pickle VM: Python-written values and tensors read exactly, C++-written pickles
// byte-identical to Python's, round trips, and malformed input as errors with exact messages.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "io/expected_tensors.h"
#include "support/test_util.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/pickle.h"

using vcpclip::testing::error_of;

using vcpclip::Error;
using namespace vcpclip::io::pickle;
using vcpclip::testing::fixture_dir;
using Kind = Value::Kind;

namespace {

std::string data_pkl_of(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  auto [ptr, n] = reader.getRecord("data.pkl");
  return std::string(static_cast<const char*>(ptr.get()), n);
}

ValuePtr unpickle_string(const std::string& bytes, const RecordLoader& loader = nullptr) {
  RecordLoader l = loader ? loader : [](const std::string& key) -> std::pair<std::shared_ptr<const uint8_t>, size_t> {
    vcpclip::fail("no record ", key);
  };
  return unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), l, "mem");
}

std::vector<int64_t> ints_of(const Value& list) {
  std::vector<int64_t> out;
  for (const auto& v : list.items) {
    EXPECT_EQ(v->kind, Kind::Int);
    out.push_back(v->i);
  }
  return out;
}

/// Deep structural equality (kinds, values, order, tensor dtype/shape/values, parameter flags).
void expect_same(const Value& a, const Value& b, const std::string& where) {
  ASSERT_EQ(a.kind, b.kind) << where;
  switch (a.kind) {
    case Kind::Bool:
      EXPECT_EQ(a.b, b.b) << where;
      break;
    case Kind::Int:
      EXPECT_EQ(a.i, b.i) << where;
      break;
    case Kind::Float:
      EXPECT_EQ(std::signbit(a.f), std::signbit(b.f)) << where;
      EXPECT_EQ(a.f, b.f) << where;
      break;
    case Kind::String:
      EXPECT_EQ(a.s, b.s) << where;
      break;
    case Kind::Tuple:
    case Kind::List:
      ASSERT_EQ(a.items.size(), b.items.size()) << where;
      for (size_t k = 0; k < a.items.size(); ++k)
        expect_same(*a.items[k], *b.items[k], where + "[" + std::to_string(k) + "]");
      break;
    case Kind::Dict:
      EXPECT_EQ(a.ordered, b.ordered) << where;
      ASSERT_EQ(a.entries.size(), b.entries.size()) << where;
      for (size_t k = 0; k < a.entries.size(); ++k) {
        expect_same(*a.entries[k].first, *b.entries[k].first, where + ".key");
        expect_same(*a.entries[k].second, *b.entries[k].second, where + "." + a.entries[k].first->s);
      }
      ASSERT_EQ(bool(a.state), bool(b.state)) << where;
      if (a.state) expect_same(*a.state, *b.state, where + ".state");
      break;
    case Kind::Tensor:
      EXPECT_EQ(a.is_parameter, b.is_parameter) << where;
      EXPECT_EQ(a.requires_grad, b.requires_grad) << where;
      EXPECT_EQ(a.tensor.scalar_type(), b.tensor.scalar_type()) << where;
      EXPECT_EQ(a.tensor.sizes(), b.tensor.sizes()) << where;
      EXPECT_TRUE(a.tensor.equal(b.tensor)) << where;
      break;
    default:
      break;
  }
}

}  // namespace

TEST(Pickle, ReadsPythonValuesExactly) {
  ValuePtr root = load_torch_file(fixture_dir() + "generic.pth");
  ASSERT_TRUE(root->is_dict());
  EXPECT_FALSE(root->ordered);
  std::vector<std::string> keys;
  for (const auto& e : root->entries) keys.push_back(e.first->s);
  EXPECT_EQ(keys, (std::vector<std::string>{"ints", "floats", "flags", "text", "tuples", "shared", "many", "od",
                                            "single", "tensor", "param"}));

  EXPECT_EQ(ints_of(*root->find("ints")),
            (std::vector<int64_t>{0, 255, 256, 65535, 65536, -1, -2147483648LL, 2147483647LL, 2147483648LL, 1LL << 40,
                                  -(1LL << 40), INT64_MAX, INT64_MIN}));
  const auto& floats = root->find("floats")->items;
  ASSERT_EQ(floats.size(), 4u);
  EXPECT_EQ(floats[0]->f, 1.5);
  EXPECT_EQ(floats[1]->f, 0.0);
  EXPECT_TRUE(std::signbit(floats[1]->f));
  EXPECT_EQ(floats[2]->f, 1e300);
  EXPECT_TRUE(std::isinf(floats[3]->f));

  const auto& flags = *root->find("flags");
  ASSERT_EQ(flags.kind, Kind::Tuple);
  ASSERT_EQ(flags.items.size(), 3u);
  EXPECT_TRUE(flags.items[0]->kind == Kind::Bool && flags.items[0]->b);
  EXPECT_TRUE(flags.items[1]->kind == Kind::Bool && !flags.items[1]->b);
  EXPECT_EQ(flags.items[2]->kind, Kind::None);
  EXPECT_EQ(root->find("text")->s, "h\xc3\xa9llo \xe2\x9c\x93");

  const auto& tuples = root->find("tuples")->items;
  ASSERT_EQ(tuples.size(), 5u);
  for (size_t n = 0; n < 5; ++n) {
    ASSERT_EQ(tuples[n]->kind, Kind::Tuple);
    std::vector<int64_t> want;
    for (size_t k = 1; k <= n; ++k) want.push_back(static_cast<int64_t>(k));
    EXPECT_EQ(ints_of(*tuples[n]), want);
  }

  // Memo: one Python object referenced twice is one Value.
  const auto& shared = root->find("shared")->items;
  ASSERT_EQ(shared.size(), 2u);
  EXPECT_EQ(shared[0].get(), shared[1].get());
  EXPECT_EQ(shared[0]->items.at(0)->s, "shared");
  const auto& many = root->find("many")->items;  // > 256 memo entries: LONG_BINPUT / LONG_BINGET
  ASSERT_EQ(many.size(), 302u);
  EXPECT_EQ(many[299]->s, "s299");
  EXPECT_EQ(many[300].get(), many[0].get());
  EXPECT_EQ(many[301].get(), many[299].get());

  const auto& od = *root->find("od");
  EXPECT_TRUE(od.ordered);
  ASSERT_EQ(od.entries.size(), 2u);
  EXPECT_EQ(od.entries[0].first->s, "z");
  EXPECT_EQ(od.entries[1].first->s, "a");
  EXPECT_EQ(od.entries[1].second->i, 2);
  EXPECT_EQ(root->find("single")->find("k")->s, "v");

  const auto& t = *root->find("tensor");
  ASSERT_TRUE(t.is_tensor());
  EXPECT_FALSE(t.is_parameter);
  EXPECT_FALSE(t.requires_grad);
  EXPECT_TRUE(t.tensor.equal(at::tensor({1.0f, 2.0f})));
  const auto& p = *root->find("param");
  EXPECT_TRUE(p.is_parameter);
  EXPECT_TRUE(p.requires_grad);
  EXPECT_TRUE(p.tensor.equal(at::tensor({3.0f})));
}

TEST(Pickle, ReadsEveryStorageTypeOffsetAndStride) {
  ValuePtr root = load_torch_file(fixture_dir() + "tensors.pth");
  auto expected = vcpclip::testing::read_expected(fixture_dir() + "tensors.expected.txt");
  ASSERT_TRUE(root->is_dict());
  EXPECT_TRUE(root->ordered);
  ASSERT_EQ(root->entries.size(), expected.size());
  for (size_t k = 0; k < expected.size(); ++k) {
    const auto& e = expected[k];
    const auto& [key, v] = root->entries[k];
    EXPECT_EQ(key->s, e.name);
    ASSERT_TRUE(v->is_tensor()) << e.name;
    EXPECT_EQ(vcpclip::testing::torch_dtype_name(v->tensor.scalar_type()), e.dtype) << e.name;
    EXPECT_EQ(v->tensor.sizes().vec(), e.shape) << e.name;
    EXPECT_EQ(vcpclip::testing::values_of(v->tensor), e.values) << e.name;
  }
  // Views keep Python's layout over one shared storage.
  const at::Tensor& tr = root->find("transposed")->tensor;
  const at::Tensor& base = root->find("base")->tensor;
  EXPECT_EQ(tr.strides().vec(), (std::vector<int64_t>{1, 6}));
  EXPECT_EQ(root->find("row_slice")->tensor.storage_offset(), 6);
  EXPECT_EQ(root->find("strided")->tensor.strides().vec(), (std::vector<int64_t>{6, 2}));
  EXPECT_TRUE(tr.is_alias_of(base));
}

TEST(Pickle, RepicklingPythonValuesGivesPythonsBytes) {
  for (const char* name : {"generic.pth", "tensors.pth", "reference_tiny.pth"}) {
    std::string path = fixture_dir() + name;
    ValuePtr root = load_torch_file(path);
    std::vector<StorageRecord> storages;
    std::string mine = pickle_value(root, &storages);
    EXPECT_EQ(mine, data_pkl_of(path)) << name;
    caffe2::serialize::PyTorchStreamReader reader(path);
    for (const auto& s : storages) {
      auto [ptr, n] = reader.getRecord("data/" + s.key);
      ASSERT_EQ(n, s.data.nbytes()) << name << " data/" << s.key;
      if (n > 0) EXPECT_EQ(std::memcmp(ptr.get(), s.data.data_ptr(), n), 0) << name << " data/" << s.key;
    }
  }
}

TEST(Pickle, WriteThenReadRoundTrip) {
  ValuePtr root = Value::dict(false);
  ValuePtr shared = Value::list({Value::integer(-7), Value::real(0.25), Value::none()});
  root->set_item(Value::string("a"), shared);
  root->set_item(Value::string("b"), shared);
  root->set_item(Value::string("t"), Value::tuple({Value::boolean(true), Value::string("x"), Value::tuple(),
                                                   Value::integer(INT64_MIN), Value::integer(1LL << 50)}));
  ValuePtr od = Value::dict(true);
  od->set_item(Value::string("w"), Value::make_tensor(at::arange(6, at::kFloat).reshape({2, 3}).t()));
  od->set_item(Value::string("h"), Value::make_tensor(at::ones({2}, at::kHalf)));
  od->set_item(Value::string("l"), Value::make_tensor(at::tensor({int64_t(-3), int64_t(4)})));
  od->set_item(Value::string("u"), Value::make_tensor(at::tensor({uint8_t(250)})));
  od->set_item(Value::string("p"), Value::make_tensor(at::full({}, 2.5f), true, true));
  od->state = Value::dict(false);
  od->state->set_item(Value::string("_metadata"), Value::dict(true));
  root->set_item(Value::string("od"), od);
  std::vector<ValuePtr> many;
  for (int k = 0; k < 1500; ++k) many.push_back(Value::string("n" + std::to_string(k)));  // > 1 batch, > 256 memo
  many.push_back(many[3]);
  root->set_item(Value::string("many"), Value::list(many));

  auto path = (std::filesystem::temp_directory_path() / "vcpclip_test_pickle_roundtrip.pth").string();
  save_torch_file(path, root);
  ValuePtr back = load_torch_file(path);
  expect_same(*root, *back, "root");
  EXPECT_EQ(back->find("a").get(), back->find("b").get());
  EXPECT_EQ(back->find("many")->items[1500].get(), back->find("many")->items[3].get());
  EXPECT_EQ(back->find("od")->find("w")->tensor.strides().vec(), (std::vector<int64_t>{1, 3}));
  std::filesystem::remove(path);
}

TEST(Pickle, UnsupportedGlobalsAndOpcodesNameThemAndTheFile) {
  std::string set_file = fixture_dir() + "unsupported_global_set.pth";
  EXPECT_EQ(error_of([&] { load_torch_file(set_file); }),
            "unsupported pickle global '__builtin__.set' (supported: collections.OrderedDict, "
            "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, "
            "torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage) at byte 13 of data.pkl in " +
                set_file);
  std::string dt_file = fixture_dir() + "unsupported_global_datetime.pth";
  EXPECT_EQ(error_of([&] { load_torch_file(dt_file); }),
            "unsupported pickle global 'datetime.datetime' (supported: collections.OrderedDict, "
            "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, "
            "torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage) at byte 16 of data.pkl in " +
                dt_file);
  std::string p4 = fixture_dir() + "protocol4.pth";
  EXPECT_EQ(error_of([&] { load_torch_file(p4); }),
            "unsupported pickle opcode FRAME (0x95) at byte 2 of data.pkl in " + p4);
}

TEST(Pickle, MalformedPicklesAreErrors) {
  EXPECT_EQ(error_of([] { unpickle_string("\x80\x02"); }),
            "truncated pickle: data.pkl ended at byte 2 before STOP in mem");
  EXPECT_EQ(error_of([] {
              unpickle_string(
                  std::string("\x80\x02X\xff\x00\x00\x00"
                              "ab",
                              9));
            }),
            "truncated pickle: data.pkl ended at byte 9 while reading BINUNICODE at byte 2 in mem");
  EXPECT_EQ(error_of([] { unpickle_string("\x80\x02s."); }),
            "malformed pickle: empty stack at SETITEM at byte 2 of data.pkl in mem");
  EXPECT_EQ(error_of([] { unpickle_string("\x80\x02h\x05."); }),
            "malformed pickle: memo entry 5 read before it was written at byte 2 of data.pkl in mem");
  EXPECT_EQ(error_of([] { unpickle_string("\x80\x02NN."); }),
            "malformed pickle: 2 values on the stack at STOP at byte 4 of data.pkl in mem");
  EXPECT_EQ(error_of([] { unpickle_string("\x80\x02t."); }),
            "malformed pickle: TUPLE without MARK at byte 2 of data.pkl in mem");
  EXPECT_EQ(error_of([] { unpickle_string("\x80\x02]Na."); }), "(no error)");
  EXPECT_EQ(error_of([] { unpickle_string("\x80\x02NNa."); }),
            "unsupported APPEND on a None (expected a list) at byte 4 of data.pkl in mem");
  EXPECT_EQ(error_of([] {
              unpickle_string(
                  std::string("\x80\x02\x8a\x09"
                              "123456789.",
                              14));
            }),
            "integer of 9 bytes does not fit in 64 bits at byte 2 of data.pkl in mem");
}

namespace {
// _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', numel), offset, (size,), (1,), False, OrderedDict())
std::string binunicode(const std::string& text) {
  std::string s = "X";
  s += static_cast<char>(text.size());
  s += std::string(3, '\0');
  return s + text;
}
std::string tensor_pickle(int numel, int offset, int size) {
  std::string s =
      "\x80\x02"
      "ctorch._utils\n_rebuild_tensor_v2\n((" +
      binunicode("storage");
  s += "ctorch\nFloatStorage\n" + binunicode("0") + binunicode("cpu") + "K";
  s += static_cast<char>(numel);
  s += "tQK";
  s += static_cast<char>(offset);
  s += "K";
  s += static_cast<char>(size);
  s += "\x85K\x01\x85\x89"
       "ccollections\nOrderedDict\n)RtR.";
  return s;
}
RecordLoader bytes_loader(size_t n) {
  auto buf = std::shared_ptr<uint8_t>(new uint8_t[n + 1](), std::default_delete<uint8_t[]>());
  return [buf, n](const std::string&) -> std::pair<std::shared_ptr<const uint8_t>, size_t> { return {buf, n}; };
}
}  // namespace

TEST(Pickle, TensorBoundsAndStorageSizesAreChecked) {
  auto ok = unpickle_string(tensor_pickle(4, 1, 3), bytes_loader(16));
  ASSERT_TRUE(ok->is_tensor());
  EXPECT_EQ(ok->tensor.sizes().vec(), std::vector<int64_t>{3});
  EXPECT_EQ(ok->tensor.storage_offset(), 1);

  std::string past = tensor_pickle(4, 2, 3);
  EXPECT_EQ(error_of([&] { unpickle_string(past, bytes_loader(16)); }),
            "tensor of size [3], stride [1], offset 2 reaches past its storage of 4 elements at byte " +
                std::to_string(past.size() - 2) + " of data.pkl in mem");
  EXPECT_EQ(error_of([&] { unpickle_string(tensor_pickle(4, 0, 3), bytes_loader(12)); }),
            "storage data/0 of mem has 12 bytes, expected 4 Float values (16 bytes)");
  EXPECT_EQ(error_of([&] { unpickle_string(tensor_pickle(4, 0, 3)); }), "no record 0");
}

TEST(Pickle, DeeplyNestedValuesDoNotOverflowTheStack) {
  // d = {}; x = []; then a million times: c = [x]; x = c; d[1] = c  (memo keeps the stack small)
  const char head[] = "\x80\x02}K\x01]q\x00s";
  const char step[] =
      "K\x01]h\x00"
      "aq\x00s";
  std::string p(head, sizeof(head) - 1);
  const int depth = 1000000;
  p.reserve(p.size() + depth * (sizeof(step) - 1) + 1);
  for (int k = 0; k < depth; ++k) p.append(step, sizeof(step) - 1);
  p += ".";
  ValuePtr root = unpickle_string(p);
  ASSERT_TRUE(root->is_dict());
  ASSERT_EQ(root->entries.size(), 1u);
  const Value* v = root->entries[0].second.get();
  int levels = 0;
  while (!v->items.empty()) {
    v = v->items[0].get();
    ++levels;
  }
  EXPECT_EQ(levels, depth);
  root.reset();  // recursive destruction would overflow the stack here
}

TEST(Pickle, DictKeysReplaceAndHugeDictsAreLinear) {
  ValuePtr d =
      unpickle_string(std::string("\x80\x02}(K\x01K\x02K\x01K\x03X\x01\x00\x00\x00"
                                  "aK\x04u.",
                                  22));
  ASSERT_EQ(d->entries.size(), 2u);
  EXPECT_EQ(d->entries[0].first->i, 1);
  EXPECT_EQ(d->entries[0].second->i, 3);  // the later value replaces the earlier, in place (as Python)
  EXPECT_EQ(d->find("a")->i, 4);

  // 200000 distinct keys: quadratic insertion would take minutes.
  std::string p = "\x80\x02}(";
  const int n = 200000;
  for (int k = 0; k < n; ++k) {
    p += 'J';
    for (int b = 0; b < 4; ++b) p += static_cast<char>((k >> (8 * b)) & 0xff);
    p += "N";
  }
  p += "u.";
  ValuePtr big = unpickle_string(p);
  EXPECT_EQ(big->entries.size(), static_cast<size_t>(n));
  EXPECT_EQ(big->entries.back().first->i, n - 1);
}

namespace {
/// A string literal with its embedded NUL bytes.
template <size_t N>
std::string raw(const char (&s)[N]) {
  return std::string(s, N - 1);
}
}  // namespace

TEST(Pickle, CyclesAreRefusedAndFreed) {
  // Found by fuzz_pickle (fuzz/regressions/pickle/list_contains_itself_leak.pkl): x = []; x.append(x)
  // through the memo made a shared-pointer cycle that was never freed. torch.save never writes one.
  const std::string cyclic =
      "unsupported cyclic pickle (a list or dict that contains itself; torch.save never writes one)";
  EXPECT_EQ(error_of([] {
              unpickle_string(
                  raw("\x80\x02]q\x00h\x00"
                      "a."));
            }),
            cyclic + " at byte 8 of data.pkl in mem");
  // d = {}; x = [d]; d[1] = x; d[2] = x
  EXPECT_EQ(error_of([] {
              unpickle_string(
                  raw("\x80\x02}q\x00K\x01]q\x01h\x00"
                      "asK\x02h\x01s."));
            }),
            cyclic + " at byte 19 of data.pkl in mem");
  // The same list twice in another is no cycle.
  ValuePtr shared =
      unpickle_string(raw("\x80\x02]q\x00]q\x01"
                          "ah\x01"
                          "a."));
  ASSERT_EQ(shared->items.size(), 2u);
  EXPECT_EQ(shared->items[0].get(), shared->items[1].get());
}
