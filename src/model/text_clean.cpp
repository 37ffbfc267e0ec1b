// Text cleaning and pre-tokenisation of the CLIP tokenizer: what the reference does with ftfy,
// html.unescape, str.strip/lower and the `regex` module, reproduced on UTF-32 strings.
#include "text_clean.h"

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "unicode_tables.h"
#include "vcpclip/common/error.h"

namespace vcpclip::model::text {
namespace {

using namespace vcpclip::model::unicode;

bool in_ranges(const CodeRange* r, size_t n, char32_t c) {
  const CodeRange* end = r + n;
  const CodeRange* it = std::upper_bound(r, end, c, [](char32_t v, const CodeRange& x) { return v < x.first; });
  return it != r && c <= (it - 1)->last;
}

struct Tables {
  std::unordered_map<char32_t, const char32_t*> lower;
  std::unordered_map<char32_t, uint8_t> ccc;
  std::unordered_map<char32_t, const DecompEntry*> decomp;
  std::unordered_map<uint64_t, char32_t> compose;
  std::unordered_map<std::string_view, std::string_view> entities;
  std::unordered_map<char32_t, char32_t> invalid_charrefs;
  size_t max_entity_len = 0;
};

const Tables& tables() {
  static const Tables t = [] {
    Tables t;
    for (size_t i = 0; i < kLower_size; ++i) t.lower.emplace(kLower[i].cp, kLower[i].lower);
    for (size_t i = 0; i < kCcc_size; ++i) t.ccc.emplace(kCcc[i].cp, kCcc[i].ccc);
    for (size_t i = 0; i < kDecomp_size; ++i) t.decomp.emplace(kDecomp[i].cp, &kDecomp[i]);
    for (size_t i = 0; i < kCompose_size; ++i)
      t.compose.emplace((uint64_t(kCompose[i].first) << 32) | kCompose[i].second, kCompose[i].composite);
    for (size_t i = 0; i < kHtml5Entities_size; ++i) {
      t.entities.emplace(kHtml5Entities[i].name, kHtml5Entities[i].utf8);
      t.max_entity_len = std::max(t.max_entity_len, std::string_view(kHtml5Entities[i].name).size());
    }
    for (size_t i = 0; i < kInvalidCharrefs_size; ++i)
      t.invalid_charrefs.emplace(kInvalidCharrefs[i].from, kInvalidCharrefs[i].to);
    return t;
  }();
  return t;
}

// Hangul syllable constants (Unicode §3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

uint8_t ccc_of(char32_t c) {
  const auto& m = tables().ccc;
  auto it = m.find(c);
  return it == m.end() ? 0 : it->second;
}

void decompose_into(char32_t c, std::u32string& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    char32_t s = c - kSBase;
    out += kLBase + s / kNCount;
    out += kVBase + (s % kNCount) / kTCount;
    if (s % kTCount) out += kTBase + s % kTCount;
    return;
  }
  const auto& m = tables().decomp;
  auto it = m.find(c);
  if (it == m.end()) {
    out += c;
    return;
  }
  for (int i = 0; i < it->second->count; ++i) decompose_into(it->second->to[i], out);
}

char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto& m = tables().compose;
  auto it = m.find((uint64_t(a) << 32) | b);
  return it == m.end() ? 0 : it->second;
}

bool is_py_space(char32_t c) { return in_ranges(kPySpaceRanges, kPySpaceRanges_size, c); }
bool is_regex_space(char32_t c) { return in_ranges(kRegexSpaceRanges, kRegexSpaceRanges_size, c); }

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

// Length of the valid UTF-8 sequence at s[i] (0 if invalid) and, when invalid, how many bytes
// form the maximal invalid subpart (at least 1).
int utf8_seq(const std::string& s, size_t i, char32_t& cp, size_t& bad_len) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  unsigned char b = p[i];
  bad_len = 1;
  if (b < 0x80) {
    cp = b;
    return 1;
  }
  int len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2;
    cp = b & 0x1F;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3;
    cp = b & 0x0F;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4;
    cp = b & 0x07;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (int k = 1; k < len; ++k) {
    if (i + k >= n) {
      bad_len = k;
      return 0;
    }
    unsigned char c = p[i + k];
    if (c < lo || c > hi) {
      bad_len = k;
      return 0;
    }
    lo = 0x80;
    hi = 0xBF;
    cp = (cp << 6) | (c & 0x3F);
  }
  return len;
}

// The pattern's literal alternatives, tried in order at every position.
const char32_t* const kLiterals[] = {
    U"<|startoftext|>", U"<|endoftext|>", U"<|class|>", U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};

bool literal_char_matches(char32_t lit, char32_t c) {
  if (c == lit) return true;
  for (size_t i = 0; i < kLiteralFolds_size; ++i) {
    if (kLiteralFolds[i].ch != lit) continue;
    for (int k = 0; k < kLiteralFolds[i].count; ++k)
      if (kLiteralFolds[i].alt[k] == c) return true;
    return false;
  }
  return false;
}

enum class SplitClass { kNone, kLetter, kNumber, kOther };

SplitClass split_class(char32_t c) {
  if (in_ranges(kLetterRanges, kLetterRanges_size, c)) return SplitClass::kLetter;
  if (in_ranges(kNumberRanges, kNumberRanges_size, c)) return SplitClass::kNumber;
  if (in_ranges(kOtherRanges, kOtherRanges_size, c)) return SplitClass::kOther;
  return SplitClass::kNone;
}

bool is_ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_ascii_hex(char32_t c) { return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// One numeric character reference -> its replacement (html.unescape rules).
void append_numeric_ref(const std::u32string& digits, int base, std::u32string& out) {
  uint64_t num = 0;
  for (char32_t d : digits) {
    uint64_t v = is_ascii_digit(d) ? d - '0' : (d | 0x20) - 'a' + 10;
    num = num * base + v;
    if (num > 0x110000) num = 0x110000;  // anything past U+10FFFF behaves the same
  }
  const auto& inv = tables().invalid_charrefs;
  if (auto it = inv.find(char32_t(num)); num < 0x110000 && it != inv.end()) {
    out += it->second;
  } else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out += char32_t(0xFFFD);
  } else if (in_ranges(kInvalidCodepointRanges, kInvalidCodepointRanges_size, char32_t(num))) {
    // dropped
  } else {
    out += char32_t(num);
  }
}

bool entity_name_char(char32_t c) {
  return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';';
}

}  // namespace

std::u32string utf8_decode(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    size_t bad;
    int len = utf8_seq(s, i, cp, bad);
    if (len == 0)
      fail("text is not valid UTF-8: invalid byte 0x", std::hex, int(static_cast<unsigned char>(s[i + bad - 1])),
           std::dec, " at offset ", i + bad - 1, " in \"", s, "\"");
    out += cp;
    i += len;
  }
  return out;
}

std::string utf8_decode_replace(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    char32_t cp;
    size_t bad;
    int len = utf8_seq(bytes, i, cp, bad);
    if (len == 0) {
      append_utf8(out, 0xFFFD);
      i += bad;
    } else {
      append_utf8(out, cp);
      i += len;
    }
  }
  return out;
}

std::string utf8_encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

std::u32string nfc(const std::u32string& s) {
  std::u32string d;
  d.reserve(s.size());
  for (char32_t c : s) decompose_into(c, d);
  // Canonical ordering: stable sort of every run of non-starters by combining class.
  for (size_t i = 0; i < d.size();) {
    if (ccc_of(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && ccc_of(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j, [](char32_t a, char32_t b) { return ccc_of(a) < ccc_of(b); });
    i = j;
  }
  if (d.empty()) return d;
  // Canonical composition.
  size_t starter = 0, out = 1;
  bool have_starter = ccc_of(d[0]) == 0;  // only a starter (class 0) composes with what follows
  int last_class = ccc_of(d[0]);
  for (size_t i = 1; i < d.size(); ++i) {
    char32_t c = d[i];
    int cls = ccc_of(c);
    char32_t comp = have_starter ? compose_pair(d[starter], c) : 0;
    if (comp && (last_class < cls || last_class == 0)) {
      d[starter] = comp;
      continue;
    }
    if (cls == 0) {
      starter = out;
      have_starter = true;
    }
    last_class = cls;
    d[out++] = c;
  }
  d.resize(out);
  return d;
}

namespace {

/// What ftfy's fix_text changes in prompt-like text: Latin ligatures split (U+0132..U+01F3,
/// U+FB00..U+FB06); nullptr for every other character.
const char32_t* ligature(char32_t c) {
  static const std::pair<char32_t, const char32_t*> table[] = {
      {0x0132, U"IJ"},      {0x0133, U"ij"},      {0x0149, U"'n"},  // U+02BC n, apostrophe straightened
      {0x01C4, U"D\u017D"}, {0x01C5, U"D\u017E"}, {0x01C6, U"d\u017E"}, {0x01C7, U"LJ"}, {0x01C8, U"Lj"},
      {0x01C9, U"lj"},      {0x01CA, U"NJ"},      {0x01CB, U"Nj"},      {0x01CC, U"nj"}, {0x01F1, U"DZ"},
      {0x01F2, U"Dz"},      {0x01F3, U"dz"},      {0xFB00, U"ff"},      {0xFB01, U"fi"}, {0xFB02, U"fl"},
      {0xFB03, U"ffi"},     {0xFB04, U"ffl"},     {0xFB05, U"st"},      {0xFB06, U"st"}};
  for (const auto& [code, text] : table)
    if (code == c) return text;
  return nullptr;
}

}  // namespace

std::u32string fix_text(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (const char32_t* l = ligature(c))
      out += l;
    else if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B))
      out += U'\'';
    else if (c >= 0x201C && c <= 0x201F)
      out += U'"';
    else
      out += c;
  }
  return nfc(out);
}

std::u32string html_unescape(const std::u32string& s) {
  if (s.find(U'&') == std::u32string::npos) return s;
  const Tables& t = tables();
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0, n = s.size();
  while (i < n) {
    if (s[i] != U'&') {
      out += s[i++];
      continue;
    }
    size_t j = i + 1;
    if (j < n && s[j] == U'#') {
      size_t k = j + 1;
      int base = 10;
      if (k < n && (s[k] == U'x' || s[k] == U'X') && k + 1 < n && is_ascii_hex(s[k + 1])) {
        base = 16;
        ++k;
      }
      size_t start = k;
      while (k < n && (base == 16 ? is_ascii_hex(s[k]) : is_ascii_digit(s[k]))) ++k;
      if (k == start) {  // "&#" without digits: not a reference
        out += s[i++];
        continue;
      }
      append_numeric_ref(s.substr(start, k - start), base, out);
      if (k < n && s[k] == U';') ++k;
      i = k;
      continue;
    }
    size_t k = j;
    while (k < n && k - j < 32 && entity_name_char(s[k])) ++k;
    if (k == j) {
      out += s[i++];
      continue;
    }
    if (k < n && s[k] == U';') ++k;
    std::u32string name32 = s.substr(j, k - j);
    std::string name = utf8_encode(name32);
    i = k;
    if (auto it = t.entities.find(name); it != t.entities.end()) {
      out += utf8_decode(std::string(it->second));
      continue;
    }
    bool found = false;
    // Longest prefix that is a reference name (prefix of at least 2 characters).
    for (size_t x = name32.size() - 1; x > 1; --x) {
      if (x > t.max_entity_len) continue;
      auto it = t.entities.find(utf8_encode(name32.substr(0, x)));
      if (it != t.entities.end()) {
        out += utf8_decode(std::string(it->second));
        out += name32.substr(x);
        found = true;
        break;
      }
    }
    if (!found) {
      out += U'&';
      out += name32;
    }
  }
  return out;
}

std::u32string py_strip(const std::u32string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_py_space(s[b])) ++b;
  while (e > b && is_py_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::u32string collapse_whitespace(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (is_regex_space(s[i])) {
      out += U' ';
      while (i < s.size() && is_regex_space(s[i])) ++i;
    } else {
      out += s[i++];
    }
  }
  return out;
}

std::u32string py_lower(const std::u32string& s) {
  const auto& lower = tables().lower;
  auto ignorable = [](char32_t c) { return in_ranges(kCaseIgnorableRanges, kCaseIgnorableRanges_size, c); };
  auto cased = [](char32_t c) { return in_ranges(kCasedRanges, kCasedRanges_size, c); };
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c == 0x3A3) {  // capital sigma: final form after a cased letter, not before one
      size_t j = i;
      while (j > 0 && ignorable(s[j - 1])) --j;
      bool final_sigma = j > 0 && cased(s[j - 1]);
      if (final_sigma) {
        size_t k = i + 1;
        while (k < s.size() && ignorable(s[k])) ++k;
        final_sigma = k == s.size() || !cased(s[k]);
      }
      out += final_sigma ? char32_t(0x3C2) : char32_t(0x3C3);
      continue;
    }
    auto it = lower.find(c);
    if (it == lower.end())
      out += c;
    else
      out += it->second;
  }
  return out;
}

std::u32string clean(const std::u32string& s) {
  std::u32string t = fix_text(s);
  t = html_unescape(html_unescape(t));
  t = py_strip(t);
  t = py_strip(collapse_whitespace(t));
  return py_lower(t);
}

std::vector<std::string> split(const std::u32string& s) {
  std::vector<std::string> pieces;
  size_t i = 0, n = s.size();
  while (i < n) {
    bool matched = false;
    for (const char32_t* lit : kLiterals) {
      std::u32string_view l(lit);
      if (i + l.size() > n) continue;
      bool ok = true;
      for (size_t k = 0; k < l.size() && ok; ++k) ok = literal_char_matches(l[k], s[i + k]);
      if (ok) {
        pieces.push_back(utf8_encode(s.substr(i, l.size())));
        i += l.size();
        matched = true;
        break;
      }
    }
    if (matched) continue;
    SplitClass cls = split_class(s[i]);
    if (cls == SplitClass::kNone) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    if (cls != SplitClass::kNumber)
      while (j < n && split_class(s[j]) == cls) ++j;
    pieces.push_back(utf8_encode(s.substr(i, j - i)));
    i = j;
  }
  return pieces;
}

}  // namespace vcpclip::model::text
