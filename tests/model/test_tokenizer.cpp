// CLIP tokenizer: id-for-id parity with the reference tokenizer (golden fixture from
// scripts/golden/make_golden_tokenizer.py), special tokens, truncation, decode and error messages.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/model/tokenizer.h"

using vcpclip::testing::error_of;

using vcpclip::model::Tokenizer;
namespace fs = std::filesystem;

namespace {

std::string vocab_path() {
  // The shared copy is what scripts/setup.sh copies into assets/; prefer the tree's own.
  for (const std::string& p : {std::string(VCPCLIP_SOURCE_DIR) + "/assets/bpe_simple_vocab_16e6.txt.gz",
                               std::string(VCPCLIP_SOURCE_DIR) + "/../shared/assets/bpe_simple_vocab_16e6.txt.gz"})
    if (fs::exists(p)) return p;
  return vcpclip::model::find_vocab();
}

const Tokenizer& tok() {
  static const Tokenizer t = Tokenizer::load(vocab_path());
  return t;
}

const nlohmann::json& golden() {
  static const nlohmann::json j = [] {
    std::ifstream f(std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/tokenizer/golden.json");
    EXPECT_TRUE(f.good()) << "missing tests/fixtures/tokenizer/golden.json";
    return nlohmann::json::parse(f);
  }();
  return j;
}

std::vector<int64_t> row(const at::Tensor& t, int64_t i) {
  at::Tensor r = t[i].contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

}  // namespace

TEST(Tokenizer, KnownIds) {
  EXPECT_EQ(tok().encode("a"), std::vector<int64_t>{320});
  EXPECT_EQ(tok().encode("photo"), std::vector<int64_t>{1125});
  EXPECT_EQ(tok().encode("of"), std::vector<int64_t>{539});
  EXPECT_EQ(tok().vocab_size(), 49409);
  EXPECT_EQ(tok().encode("<|class|>"), std::vector<int64_t>{Tokenizer::kClass});
  EXPECT_EQ(tok().encode("<|startoftext|><|endoftext|>"), (std::vector<int64_t>{Tokenizer::kSot, Tokenizer::kEot}));
  // Upper case is lowercased first, so the special token still matches.
  EXPECT_EQ(tok().encode("A PHOTO OF <|CLASS|>"), (std::vector<int64_t>{320, 1125, 539, Tokenizer::kClass}));
}

TEST(Tokenizer, GoldenIdsAndCleaning) {
  const auto& cases = golden().at("cases");
  ASSERT_GE(cases.size(), 300u);
  int checked = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text");
    SCOPED_TRACE("text: " + text);
    EXPECT_EQ(Tokenizer::clean(text), c.at("clean").get<std::string>());
    EXPECT_EQ(tok().encode(text), c.at("ids").get<std::vector<int64_t>>());
    ++checked;
  }
  EXPECT_EQ(checked, int(cases.size()));
}

TEST(Tokenizer, GoldenTokenizeRowsAndTruncation) {
  int too_long = 0;
  for (const auto& c : golden().at("cases")) {
    const std::string text = c.at("text");
    SCOPED_TRACE("text: " + text);
    if (c.contains("tokens77")) {
      at::Tensor t = tok().tokenize({text});
      ASSERT_EQ(t.sizes(), (at::IntArrayRef{1, 77}));
      EXPECT_EQ(t.scalar_type(), at::kLong);
      EXPECT_EQ(row(t, 0), c.at("tokens77").get<std::vector<int64_t>>());
    } else {
      ++too_long;
      const int64_t n = c.at("too_long");
      EXPECT_EQ(error_of([&] { tok().tokenize({text}); }),
                "Input \"" + text + "\" is too long for context length 77: it has " + std::to_string(n) +
                    " tokens including start and end of text (truncate it or enable truncation, e.g. "
                    "`vcpclip tokenize --truncate`)");
      at::Tensor t = tok().tokenize({text}, 77, /*truncate=*/true);
      EXPECT_EQ(row(t, 0), c.at("truncated77").get<std::vector<int64_t>>());
      EXPECT_EQ(t[0][76].item<int64_t>(), Tokenizer::kEot);
    }
  }
  EXPECT_GE(too_long, 3);
}

TEST(Tokenizer, BatchAndContextLength) {
  at::Tensor t = tok().tokenize({"a photo of a damaged <|class|>", "a photo of a good <|class|>"});
  ASSERT_EQ(t.sizes(), (at::IntArrayRef{2, 77}));
  std::vector<int64_t> r0 = row(t, 0);
  std::vector<int64_t> expect0{Tokenizer::kSot, 320, 1125, 539, 320};
  EXPECT_EQ(std::vector<int64_t>(r0.begin(), r0.begin() + 5), expect0);
  // EOT right after <|class|>, then zeros.
  auto cls = std::find(r0.begin(), r0.end(), Tokenizer::kClass);
  ASSERT_NE(cls, r0.end());
  EXPECT_EQ(*(cls + 1), Tokenizer::kEot);
  EXPECT_TRUE(std::all_of(cls + 2, r0.end(), [](int64_t v) { return v == 0; }));
  // Exactly filling the context is fine; one more token is not.
  EXPECT_EQ(tok().tokenize({"a b c"}, 5).sizes(), (at::IntArrayRef{1, 5}));
  EXPECT_EQ(error_of([&] { tok().tokenize({"a b c d"}, 5); }),
            "Input \"a b c d\" is too long for context length 5: it has 6 tokens including start and end of text "
            "(truncate it or enable truncation, e.g. `vcpclip tokenize --truncate`)");
  EXPECT_EQ(row(tok().tokenize({"a b c d"}, 5, true), 0),
            (std::vector<int64_t>{Tokenizer::kSot, 320, 321, 322, Tokenizer::kEot}));
  EXPECT_EQ(tok().tokenize({}, 77).sizes(), (at::IntArrayRef{0, 77}));
}

TEST(Tokenizer, GoldenDecode) {
  for (const auto& d : golden().at("decode")) {
    auto ids = d.at("ids").get<std::vector<int64_t>>();
    EXPECT_EQ(tok().decode(ids), d.at("text").get<std::string>()) << d.at("ids").dump();
  }
  EXPECT_EQ(tok().decode(tok().encode("a photo of a damaged <|class|>")), "a photo of a damaged <|class|>");
  EXPECT_EQ(error_of([&] { tok().decode({49409}); }), "decode: token id 49409 is outside the vocabulary [0, 49409)");
}

TEST(Tokenizer, InvalidUtf8IsAnError) {
  EXPECT_EQ(error_of([&] { tok().encode(std::string("ab\xff")); }),
            "text is not valid UTF-8: invalid byte 0xff at offset 2 in \"ab\xff\"");
}

TEST(Tokenizer, MissingVocab) {
  const std::string where =
      "Download it from https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz (SHA-256 "
      "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a) and pass its path (config key model.vocab, "
      "--vocab or $VCPCLIP_VOCAB), or run scripts/setup.sh, which puts it in assets/.";
  EXPECT_EQ(error_of([] { Tokenizer::load("/nonexistent/bpe.txt.gz"); }),
            "CLIP BPE vocabulary not found: /nonexistent/bpe.txt.gz does not exist. " + where);
  EXPECT_EQ(
      error_of([] { vcpclip::model::find_vocab("/nonexistent/v.gz"); }),
      "CLIP BPE vocabulary not found: /nonexistent/v.gz (config key model.vocab / --vocab) does not exist. " + where);
  ::setenv("VCPCLIP_VOCAB", "/nonexistent/env.gz", 1);
  EXPECT_EQ(error_of([] { vcpclip::model::find_vocab(); }),
            "CLIP BPE vocabulary not found: /nonexistent/env.gz ($VCPCLIP_VOCAB) does not exist. " + where);
  ::setenv("VCPCLIP_VOCAB", vocab_path().c_str(), 1);
  EXPECT_EQ(vcpclip::model::find_vocab(), vocab_path());
  ::unsetenv("VCPCLIP_VOCAB");
  EXPECT_EQ(vcpclip::model::find_vocab(vocab_path()), vocab_path());
}

TEST(Tokenizer, CorruptVocab) {
  fs::path dir = fs::temp_directory_path() / ("vcpclip_tok_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream(dir / "plain.txt") << "#version: 0.2\ni n\n";  // not gzip'd, too short
  }
  std::string e = error_of([&] { Tokenizer::load((dir / "plain.txt").string()); });
  EXPECT_EQ(e.rfind("CLIP BPE vocabulary " + (dir / "plain.txt").string() +
                        " is not a valid gzip'd merges file (it has 3 lines, expected at least 48895). ",
                    0),
            0u)
      << e;
  EXPECT_NE(e.find("SHA-256 924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"), std::string::npos) << e;
  { std::ofstream(dir / "junk.gz") << "hello"; }
  e = error_of([&] { Tokenizer::load((dir / "junk.gz").string()); });
  EXPECT_EQ(e, "CLIP BPE vocabulary " + (dir / "junk.gz").string() +
                   " is not a valid gzip'd merges file (its first line is not a '#version' header). Download it from "
                   "https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz (SHA-256 "
                   "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a) and pass its path (config key "
                   "model.vocab, --vocab or $VCPCLIP_VOCAB), or run scripts/setup.sh, which puts it in assets/.");
  {  // a truncated download
    std::ifstream in(vocab_path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir / "cut.gz", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  e = error_of([&] { Tokenizer::load((dir / "cut.gz").string()); });
  EXPECT_EQ(e.rfind("CLIP BPE vocabulary " + (dir / "cut.gz").string() +
                        " is not a valid gzip'd merges file (gzip: unexpected end of file). Download it from",
                    0),
            0u)
      << e;
  fs::remove_all(dir);
}

// The BPE cache (speed is measured by `vcpclip bench`, section data): on a fresh tokenizer every
// golden text is encoded once with an empty cache for each of its new words, then again from the
// cache only; both passes give the reference's ids. A copy shares the cache and gives the same ids.
TEST(Tokenizer, CachedEncodeEqualsUncachedAndReference) {
  const Tokenizer fresh = Tokenizer::load(vocab_path());
  const auto& cases = golden().at("cases");
  std::vector<std::vector<int64_t>> first;
  for (const auto& c : cases) first.push_back(fresh.encode(c.at("text").get<std::string>()));
  const Tokenizer copy = fresh;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string text = cases[i].at("text");
    SCOPED_TRACE("text: " + text);
    const auto expect = cases[i].at("ids").get<std::vector<int64_t>>();
    EXPECT_EQ(first[i], expect) << "uncached";
    EXPECT_EQ(fresh.encode(text), expect) << "cached";
    EXPECT_EQ(copy.encode(text), expect) << "cached, through a copy";
  }
  // One text on a second fresh tokenizer: its first encode (no cache) equals the cached one.
  const std::string text = "a photo of a damaged <|class|> with scratches, dents and 3 cracks";
  EXPECT_EQ(Tokenizer::load(vocab_path()).encode(text), fresh.encode(text));
}
