// pickle::Value: constructors and small helpers shared by the pickle reader and writer.
#include "vcpclip/common/error.h"
#include "vcpclip/io/pickle.h"

namespace vcpclip::io::pickle {

Value::~Value() {
  if (items.empty() && entries.empty() && !state) return;
  std::vector<ValuePtr> work;
  auto take_children = [&work](Value& v) {
    for (auto& c : v.items) work.push_back(std::move(c));
    v.items.clear();
    for (auto& e : v.entries) {
      work.push_back(std::move(e.first));
      work.push_back(std::move(e.second));
    }
    v.entries.clear();
    if (v.state) work.push_back(std::move(v.state));
  };
  take_children(*this);
  while (!work.empty()) {
    ValuePtr p = std::move(work.back());
    work.pop_back();
    if (p && p.use_count() == 1) take_children(*p);
  }  // p is destroyed here with no children left
}

ValuePtr Value::none() { return std::make_shared<Value>(); }

ValuePtr Value::boolean(bool v) {
  auto p = std::make_shared<Value>();
  p->kind = Kind::Bool;
  p->b = v;
  return p;
}

ValuePtr Value::integer(int64_t v) {
  auto p = std::make_shared<Value>();
  p->kind = Kind::Int;
  p->i = v;
  return p;
}

ValuePtr Value::real(double v) {
  auto p = std::make_shared<Value>();
  p->kind = Kind::Float;
  p->f = v;
  return p;
}

ValuePtr Value::string(std::string v) {
  auto p = std::make_shared<Value>();
  p->kind = Kind::String;
  p->s = std::move(v);
  return p;
}

ValuePtr Value::tuple(std::vector<ValuePtr> items) {
  auto p = std::make_shared<Value>();
  p->kind = Kind::Tuple;
  p->items = std::move(items);
  return p;
}

ValuePtr Value::list(std::vector<ValuePtr> items) {
  auto p = std::make_shared<Value>();
  p->kind = Kind::List;
  p->items = std::move(items);
  return p;
}

ValuePtr Value::dict(bool ordered) {
  auto p = std::make_shared<Value>();
  p->kind = Kind::Dict;
  p->ordered = ordered;
  return p;
}

ValuePtr Value::make_tensor(at::Tensor t, bool is_parameter, bool requires_grad) {
  auto p = std::make_shared<Value>();
  p->kind = Kind::Tensor;
  p->tensor = std::move(t);
  p->is_parameter = is_parameter;
  p->requires_grad = requires_grad;
  return p;
}

std::string Value::type_name() const {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::Tuple:
      return "tuple";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return ordered ? "OrderedDict" : "dict";
    case Kind::Tensor:
      return is_parameter ? "Parameter" : "Tensor";
    case Kind::Global:
      return "global " + s;
    case Kind::Storage:
      return "storage";
    case Kind::Object:
      return "object " + s;
  }
  return "?";
}

static bool same_key(const Value& a, const Value& b) {
  if (a.kind != b.kind) return false;
  if (a.kind == Value::Kind::String) return a.s == b.s;
  if (a.kind == Value::Kind::Int) return a.i == b.i;
  return &a == &b;
}

void Value::set_item(ValuePtr key, ValuePtr value) {
  VCP_CHECK(kind == Kind::Dict, "set_item on a ", type_name(), ", expected a dict");
  for (auto& e : entries) {
    if (same_key(*e.first, *key)) {
      e.second = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

ValuePtr Value::find(const std::string& key) const {
  if (kind != Kind::Dict) return nullptr;
  for (const auto& e : entries) {
    if (e.first->kind == Kind::String && e.first->s == key) return e.second;
  }
  return nullptr;
}

}  // namespace vcpclip::io::pickle
