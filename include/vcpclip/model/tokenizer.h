#pragma once
// OpenAI CLIP's byte-level BPE tokenizer (docs/design.md §2 "Tokenizer"), id-for-id identical to the
// reference `SimpleTokenizer` + `tokenize` (including the extra special token <|class|> = 49408).
//
// Text cleaning, in the reference's order:
//  1. ftfy.fix_text stand-in (ftfy is not a dependency): Latin ligatures split (U+FB00..FB06,
//     U+0132/0133, U+0149, U+01C4..01CC, U+01F1..01F3, as ftfy does), curly quotes straightened
//     (U+02BC, U+2018..U+201B -> ', U+201C..U+201F -> "), Unicode NFC. ftfy's other fixes
//     (mojibake repair, character width, control characters, ...) are not done; for ordinary
//     prompts they change nothing.
//  2. HTML unescape twice, exactly as Python's html.unescape (all HTML5 named references,
//     numeric references with the HTML5 replacement rules), then str.strip().
//  3. Whitespace runs (Unicode White_Space) -> one space, strip, then lowercase as Python's
//     str.lower (full mappings, final sigma).
// Then the text is split with
//   <\|startoftext\|>|<\|endoftext\|>|<\|class\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// (case-insensitive, as the reference compiles it), each piece is UTF-8 encoded, mapped through the
// byte-to-unicode table and merged by BPE rank. Unicode properties come from generated tables
// (scripts/tools/make_unicode_tables.py). Input must be valid UTF-8.
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace vcpclip::model {

class Tokenizer {
 public:
  /// Reads the gzip'd merges file (bpe_simple_vocab_16e6.txt.gz). Missing or corrupt: Error naming
  /// the path, where to download it and its SHA-256.
  static Tokenizer load(const std::string& vocab_path);

  /// BPE ids of the cleaned text, without SOT/EOT.
  std::vector<int64_t> encode(const std::string& text) const;

  /// [N, context_length] int64 on CPU: SOT, ids, EOT, zero-padded. A text whose SOT+ids+EOT exceed
  /// context_length is an Error naming the text and its token count, unless truncate is true: then
  /// the first context_length tokens are kept and the last one is replaced by EOT (as the reference).
  at::Tensor tokenize(const std::vector<std::string>& texts, int64_t context_length = 77, bool truncate = false) const;

  /// Text of the ids ("</w>" -> " ", invalid UTF-8 -> U+FFFD), as the reference's decode.
  std::string decode(const std::vector<int64_t>& ids) const;

  /// The cleaning steps 1-3 above (what BPE sees before splitting), for tests and debugging.
  static std::string clean(const std::string& text);

  /// Number of ids (49409 for the CLIP vocabulary).
  int64_t vocab_size() const { return static_cast<int64_t>(decoder_.size()); }
  const std::string& vocab_path() const { return path_; }

  static constexpr int64_t kSot = 49406, kEot = 49407, kClass = 49408;

 private:
  Tokenizer() = default;
  void bpe(const std::string& piece, std::vector<int64_t>& out) const;

  std::string path_;
  std::vector<std::string> decoder_;                                 // id -> token bytes (after the byte decoder)
  std::unordered_map<std::string, int64_t> encoder_;                 // byte-encoded token string -> id
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> ranks_;  // (left,right) -> (rank, merged id)
  int32_t byte_id_[256] = {};                                        // byte -> id of its symbol
  struct Cache {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int64_t>> map;
  };
  std::shared_ptr<Cache> cache_ = std::make_shared<Cache>();
};

/// Resolves the vocab path: `configured` (config key `model.vocab`) if non-empty, else $VCPCLIP_VOCAB,
/// else the first existing <cwd>/assets/, <exe dir>/../assets/, VCPCLIP_SOURCE_DIR/assets/,
/// <cwd>/../shared/assets/, VCPCLIP_SOURCE_DIR/../shared/assets/ bpe_simple_vocab_16e6.txt.gz. Nothing found (or a
/// configured/env path that does not exist): Error saying where to get it and its SHA-256.
std::string find_vocab(const std::string& configured = "");

/// Where to download the vocabulary and its SHA-256 (for messages).
inline constexpr const char* kVocabUrl = "https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz";
inline constexpr const char* kVocabSha256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a";
inline constexpr const char* kVocabFile = "bpe_simple_vocab_16e6.txt.gz";

}  // namespace vcpclip::model
