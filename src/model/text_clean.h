#pragma once
// Text cleaning and pre-tokenisation of the CLIP tokenizer (internal; see model/tokenizer.h for
// the behaviour). Works on UTF-32 strings; Unicode data from unicode_tables.cpp.
#include <string>
#include <vector>

namespace vcpclip::model::text {

/// Strict UTF-8 -> UTF-32; invalid input: Error naming the byte offset.
std::u32string utf8_decode(const std::string& s);
/// UTF-8 bytes -> UTF-8 with each maximal invalid subsequence replaced by U+FFFD (Python's
/// bytes.decode("utf-8", errors="replace")).
std::string utf8_decode_replace(const std::string& bytes);
std::string utf8_encode(const std::u32string& s);

/// ftfy stand-in: Latin ligatures split, curly quotes straightened, NFC.
std::u32string fix_text(const std::u32string& s);
/// Unicode NFC (unicodedata.normalize("NFC", s)).
std::u32string nfc(const std::u32string& s);
/// Python's html.unescape.
std::u32string html_unescape(const std::u32string& s);
/// Python's str.strip() (str.isspace characters).
std::u32string py_strip(const std::u32string& s);
/// regex.sub(r"\s+", " ", s).
std::u32string collapse_whitespace(const std::u32string& s);
/// Python's str.lower() (full mappings, final sigma).
std::u32string py_lower(const std::u32string& s);

/// The complete cleaning of the reference: fix_text, unescape twice, strip, collapse, strip, lower.
std::u32string clean(const std::u32string& s);

/// Pieces of the cleaned text as the reference's findall with the CLIP pattern, UTF-8 encoded.
std::vector<std::string> split(const std::u32string& cleaned);

}  // namespace vcpclip::model::text
