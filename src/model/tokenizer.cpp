// CLIP byte-level BPE: vocabulary loading, BPE merging, encode/tokenize/decode, vocab lookup.
#include "vcpclip/model/tokenizer.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "text_clean.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"

namespace vcpclip::model {
namespace {

namespace fs = std::filesystem;

// Merges used: lines [1, 49152 - 256 - 2 + 1) of the file.
constexpr size_t kNumMerges = 49152 - 256 - 2;
constexpr size_t kMaxCache = 200000;

std::string where_to_get() {
  return msg("Download it from ", kVocabUrl, " (SHA-256 ", kVocabSha256,
             ") and pass its path (config key model.vocab, --vocab or $VCPCLIP_VOCAB), or run scripts/setup.sh, "
             "which puts it in assets/.");
}

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  fail("CLIP BPE vocabulary ", path, " is not a valid gzip'd merges file (", what, "). ", where_to_get());
}

// The byte <-> unicode table of the reference: printable Latin-1 bytes map to themselves, the rest
// to U+0100 onwards in byte order. Returns the code point of each byte; `order` gets the bytes in
// vocabulary order (the symbols of ids 0..255).
std::vector<char32_t> byte_to_unicode(std::vector<int>& order) {
  std::vector<char32_t> table(256, 0);
  order.clear();
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  for (int b = 0; b < 256; ++b)
    if (printable(b)) {
      table[b] = char32_t(b);
      order.push_back(b);
    }
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if (!printable(b)) {
      table[b] = char32_t(256 + n++);
      order.push_back(b);
    }
  return table;
}

std::string read_gzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) corrupt(path, "cannot open it");
  std::string data;
  char buf[1 << 16];
  int got;
  while ((got = gzread(f, buf, sizeof(buf))) > 0) data.append(buf, size_t(got));
  int errnum = 0;
  const char* err = gzerror(f, &errnum);
  std::string err_text = err ? err : "";
  if (err_text.rfind(path + ": ", 0) == 0) err_text = err_text.substr(path.size() + 2);  // zlib prefixes the path
  gzclose(f);
  if (got < 0 || (errnum != Z_OK && errnum != Z_STREAM_END)) corrupt(path, "gzip: " + err_text);
  return data;
}

uint64_t pair_key(int64_t a, int64_t b) { return (uint64_t(a) << 32) | uint64_t(b); }

}  // namespace

Tokenizer Tokenizer::load(const std::string& vocab_path) {
  std::error_code ec;
  if (vocab_path.empty() || !fs::is_regular_file(vocab_path, ec))
    fail("CLIP BPE vocabulary not found: ", vocab_path.empty() ? "(empty path)" : vocab_path, " does not exist. ",
         where_to_get());
  std::string data = read_gzip(vocab_path);
  if (data.rfind("\"bpe_simple_vocab_16e6.txt#version", 0) != 0 && data.rfind("#version", 0) != 0)
    corrupt(vocab_path, "its first line is not a '#version' header");

  std::vector<std::string_view> lines;
  for (size_t start = 0;;) {
    size_t nl = data.find('\n', start);
    lines.emplace_back(data.data() + start, (nl == std::string::npos ? data.size() : nl) - start);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  if (lines.size() < kNumMerges + 1)
    corrupt(vocab_path, msg("it has ", lines.size(), " lines, expected at least ", kNumMerges + 1));

  Tokenizer tok;
  tok.path_ = vocab_path;
  std::vector<int> order;
  std::vector<char32_t> b2u = byte_to_unicode(order);
  std::unordered_map<char32_t, int> u2b;
  for (int b = 0; b < 256; ++b) u2b[b2u[b]] = b;

  // Vocabulary strings exactly as the reference builds them (byte-encoded unicode, UTF-8 here).
  std::vector<std::string> vocab;
  vocab.reserve(2 * 256 + kNumMerges + 3);
  for (int b : order) vocab.push_back(text::utf8_encode(std::u32string(1, b2u[b])));
  for (int i = 0; i < 256; ++i) vocab.push_back(vocab[i] + "</w>");
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(kNumMerges);
  for (size_t i = 1; i <= kNumMerges; ++i) {
    std::string_view l = lines[i];
    size_t sp = l.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp + 1 >= l.size() || l.find(' ', sp + 1) != std::string_view::npos)
      corrupt(vocab_path, msg("line ", i + 1, " is not a merge 'left right'"));
    merges.emplace_back(std::string(l.substr(0, sp)), std::string(l.substr(sp + 1)));
    vocab.push_back(merges.back().first + merges.back().second);
  }
  vocab.push_back("<|startoftext|>");
  vocab.push_back("<|endoftext|>");
  vocab.push_back("<|class|>");
  for (size_t id = 0; id < vocab.size(); ++id) tok.encoder_[vocab[id]] = int64_t(id);  // later ids win

  // Decoder: the raw bytes of each token (each character through the byte decoder).
  tok.decoder_.resize(vocab.size());
  for (size_t id = 0; id < vocab.size(); ++id) {
    std::u32string u;
    try {
      u = text::utf8_decode(vocab[id]);
    } catch (const Error&) {
      corrupt(vocab_path, msg("token ", id, " is not valid UTF-8"));
    }
    std::string bytes;
    for (char32_t c : u) {
      auto it = u2b.find(c);
      if (it == u2b.end()) corrupt(vocab_path, msg("token ", id, " has a character outside the byte alphabet"));
      bytes += char(it->second);
    }
    tok.decoder_[id] = std::move(bytes);
  }
  for (int i = 0; i < 256; ++i) tok.byte_id_[order[i]] = i;
  for (size_t r = 0; r < merges.size(); ++r) {
    auto a = tok.encoder_.find(merges[r].first), b = tok.encoder_.find(merges[r].second);
    if (a == tok.encoder_.end() || b == tok.encoder_.end()) continue;  // can never be formed
    tok.ranks_[pair_key(a->second, b->second)] = {int32_t(r),
                                                  int32_t(tok.encoder_.at(merges[r].first + merges[r].second))};
  }
  VCP_CHECK(tok.encoder_.at("<|class|>") == kClass, "internal: <|class|> id mismatch in ", vocab_path);
  return tok;
}

void Tokenizer::bpe(const std::string& piece, std::vector<int64_t>& out) const {
  if (piece == "<|startoftext|>") return out.push_back(kSot);
  if (piece == "<|endoftext|>") return out.push_back(kEot);
  if (piece == "<|class|>") return out.push_back(kClass);
  {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    auto it = cache_->map.find(piece);
    if (it != cache_->map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  if (piece.empty()) return;
  std::vector<int64_t> word(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) word[i] = byte_id_[static_cast<unsigned char>(piece[i])];
  word.back() += 256;  // last symbol carries the end-of-word marker
  while (word.size() > 1) {
    int32_t best_rank = std::numeric_limits<int32_t>::max(), merged = -1;
    int64_t first = -1, second = -1;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = ranks_.find(pair_key(word[i], word[i + 1]));
      if (it != ranks_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        merged = it->second.second;
        first = word[i];
        second = word[i + 1];
      }
    }
    if (merged < 0) break;
    std::vector<int64_t> next;
    next.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        next.push_back(merged);
        i += 2;
      } else {
        next.push_back(word[i++]);
      }
    }
    word.swap(next);
  }
  out.insert(out.end(), word.begin(), word.end());
  std::lock_guard<std::mutex> lock(cache_->mutex);
  if (cache_->map.size() >= kMaxCache) cache_->map.clear();
  cache_->map.emplace(piece, std::move(word));
}

std::string Tokenizer::clean(const std::string& text) {
  return text::utf8_encode(text::clean(text::utf8_decode(text)));
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const std::string& piece : text::split(text::clean(text::utf8_decode(text)))) bpe(piece, ids);
  return ids;
}

at::Tensor Tokenizer::tokenize(const std::vector<std::string>& texts, int64_t context_length, bool truncate) const {
  VCP_CHECK(context_length >= 1, "tokenize: context_length must be at least 1, got ", context_length);
  at::Tensor result = at::zeros({int64_t(texts.size()), context_length}, at::kLong);
  auto acc = result.accessor<int64_t, 2>();
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t> ids{kSot};
    std::vector<int64_t> body = encode(texts[i]);
    ids.insert(ids.end(), body.begin(), body.end());
    ids.push_back(kEot);
    if (int64_t(ids.size()) > context_length) {
      if (!truncate)
        fail("Input \"", texts[i], "\" is too long for context length ", context_length, ": it has ", ids.size(),
             " tokens including start and end of text (truncate it or enable truncation, e.g. `vcpclip tokenize "
             "--truncate`)");
      ids.resize(size_t(context_length));
      ids.back() = kEot;
    }
    for (size_t k = 0; k < ids.size(); ++k) acc[int64_t(i)][int64_t(k)] = ids[k];
  }
  return result;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string bytes;
  for (int64_t id : ids) {
    VCP_CHECK(id >= 0 && id < int64_t(decoder_.size()), "decode: token id ", id, " is outside the vocabulary [0, ",
              decoder_.size(), ")");
    bytes += decoder_[size_t(id)];
  }
  std::string text = text::utf8_decode_replace(bytes);
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 4, "</w>") == 0) {
      out += ' ';
      i += 4;
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string find_vocab(const std::string& configured) {
  std::error_code ec;
  if (!configured.empty()) {
    if (fs::is_regular_file(configured, ec)) return configured;
    fail("CLIP BPE vocabulary not found: ", configured, " (config key model.vocab / --vocab) does not exist. ",
         where_to_get());
  }
  if (const char* env = std::getenv("VCPCLIP_VOCAB"); env && *env) {
    if (fs::is_regular_file(env, ec)) return env;
    fail("CLIP BPE vocabulary not found: ", env, " ($VCPCLIP_VOCAB) does not exist. ", where_to_get());
  }
  std::vector<fs::path> candidates;
  fs::path cwd = fs::current_path(ec);
  if (!ec) candidates.push_back(cwd / "assets" / kVocabFile);
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) candidates.push_back(fs::path(std::string(exe, size_t(n))).parent_path() / ".." / "assets" / kVocabFile);
  candidates.push_back(fs::path(VCPCLIP_SOURCE_DIR) / "assets" / kVocabFile);
  if (!cwd.empty()) candidates.push_back(cwd / ".." / "shared" / "assets" / kVocabFile);
  candidates.push_back(fs::path(VCPCLIP_SOURCE_DIR) / ".." / "shared" / "assets" / kVocabFile);
  std::string tried;
  std::vector<std::string> seen;
  for (const auto& c : candidates) {
    std::string p = c.lexically_normal().string();
    if (std::find(seen.begin(), seen.end(), p) != seen.end()) continue;
    seen.push_back(p);
    if (fs::is_regular_file(c, ec)) return p;
    tried += (tried.empty() ? "" : ", ") + p;
  }
  fail("CLIP BPE vocabulary ", kVocabFile, " not found (looked for ", tried, "). ", where_to_get());
}

}  // namespace vcpclip::model
