#pragma once
// Template parts of config_node.h (do not include directly).
#include <limits>
#include <type_traits>

namespace vcpclip::io {

template <typename T>
struct ConfigTypeName;
template <>
struct ConfigTypeName<int> {
  static std::string get() { return "an integer"; }
};
template <>
struct ConfigTypeName<int64_t> {
  static std::string get() { return "an integer"; }
};
template <>
struct ConfigTypeName<double> {
  static std::string get() { return "a number"; }
};
template <>
struct ConfigTypeName<float> {
  static std::string get() { return "a number"; }
};
template <>
struct ConfigTypeName<bool> {
  static std::string get() { return "true or false"; }
};
template <>
struct ConfigTypeName<std::string> {
  static std::string get() { return "a string"; }
};
template <typename E>
struct ConfigTypeName<std::vector<E>> {
  static std::string get() { return "a list of values each " + ConfigTypeName<E>::get(); }
};

template <typename T>
std::string type_name() {
  return ConfigTypeName<T>::get();
}

namespace detail {
std::string scalar_text(const YAML::Node& n);
bool is_integer_text(const std::string& s);
bool is_number_text(const std::string& s);
bool is_bool_text(const std::string& s);
}  // namespace detail

template <typename T>
T ConfigNode::convert(const YAML::Node& n, const std::string& key) const {
  auto bad = [&]() -> T {
    fail("config key ", where(key), ": expected ", type_name<T>(), ", found ",
         n.IsScalar() ? "'" + n.Scalar() + "'"
                      : (n.IsSequence() ? std::string("a list")
                         : n.IsMap()    ? std::string("a mapping")
                                        : std::string("nothing")));
  };
  // A number of the right form that does not fit T (fuzz_config found 1666...662 for an int).
  auto number = [&](auto* type) {  // generic: instantiated for the numeric T only
    using U = std::remove_pointer_t<decltype(type)>;
    try {
      return n.as<U>();
    } catch (const YAML::Exception&) {
      fail("config key ", where(key), ": expected ", type_name<U>(), " between ", std::numeric_limits<U>::lowest(),
           " and ", std::numeric_limits<U>::max(), ", found '", n.Scalar(), "'");
    }
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!n.IsScalar() || !detail::is_bool_text(n.Scalar())) return bad();
    return n.as<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!n.IsScalar() || !detail::is_integer_text(n.Scalar())) return bad();
    return number(static_cast<T*>(nullptr));
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!n.IsScalar() || !detail::is_number_text(n.Scalar())) return bad();
    return number(static_cast<T*>(nullptr));
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (n.IsNull()) return std::string();
    if (!n.IsScalar()) return bad();
    return n.Scalar();
  } else {
    // std::vector<E>
    using E = typename T::value_type;
    if (!n.IsSequence()) return bad();
    T out;
    for (std::size_t i = 0; i < n.size(); ++i) out.push_back(convert<E>(n[i], key + "[" + std::to_string(i) + "]"));
    return out;
  }
}

template <typename T>
T ConfigNode::get(const std::string& key, const T& fallback) {
  mark(key);
  YAML::Node n;
  if (node_ && node_.IsMap()) n = node_[key];
  const T value = (!n || n.IsNull()) ? fallback : convert<T>(n, key);
  record(key, effective_value(value));
  return value;
}

template <typename T>
T ConfigNode::require(const std::string& key) {
  mark(key);
  if (!node_ || !node_.IsMap() || !node_[key] || node_[key].IsNull())
    fail("missing config key ", where(key), " (", type_name<T>(), " is required)");
  const T value = convert<T>(node_[key], key);
  record(key, effective_value(value));
  return value;
}

}  // namespace vcpclip::io
