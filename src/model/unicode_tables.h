#pragma once
// Unicode data of the CLIP tokenizer (internal). The tables live in unicode_tables.cpp, which
// scripts/tools/make_unicode_tables.py generates from Python's unicodedata / str / html.entities and
// the `regex` module, i.e. from the libraries the reference tokenizer runs on.
#include <cstddef>
#include <cstdint>

namespace vcpclip::model::unicode {

struct CodeRange {
  char32_t first, last;  // inclusive
};
struct FoldSet {  // code points other than `ch` that match `ch` under regex IGNORECASE
  char32_t ch;
  int count;
  char32_t alt[3];
};
struct LowerEntry {
  char32_t cp;
  const char32_t* lower;  // str.lower of the code point (1 to 3 code points)
};
struct CccEntry {
  char32_t cp;
  uint8_t ccc;
};
struct DecompEntry {  // one level of canonical decomposition
  char32_t cp;
  char32_t to[2];
  int count;
};
struct ComposeEntry {  // primary composite: first + second -> composite (sorted by first, second)
  char32_t first, second, composite;
};
struct EntityEntry {  // HTML5 named reference (name with or without ';') -> UTF-8 replacement
  const char* name;
  const char* utf8;
};

struct CharrefEntry {  // numeric reference replaced by another code point (html.unescape)
  char32_t from, to;
};

extern const CodeRange kLetterRanges[], kNumberRanges[], kOtherRanges[], kRegexSpaceRanges[], kPySpaceRanges[],
    kCaseIgnorableRanges[], kCasedRanges[];
extern const size_t kLetterRanges_size, kNumberRanges_size, kOtherRanges_size, kRegexSpaceRanges_size,
    kPySpaceRanges_size, kCaseIgnorableRanges_size, kCasedRanges_size;
extern const FoldSet kLiteralFolds[];
extern const size_t kLiteralFolds_size;
extern const LowerEntry kLower[];
extern const size_t kLower_size;
extern const CccEntry kCcc[];
extern const size_t kCcc_size;
extern const DecompEntry kDecomp[];
extern const size_t kDecomp_size;
extern const ComposeEntry kCompose[];
extern const size_t kCompose_size;
extern const EntityEntry kHtml5Entities[];
extern const size_t kHtml5Entities_size;
extern const CharrefEntry kInvalidCharrefs[];
extern const size_t kInvalidCharrefs_size;
extern const CodeRange kInvalidCodepointRanges[];  // numeric references that unescape to nothing
extern const size_t kInvalidCodepointRanges_size;

}  // namespace vcpclip::model::unicode
