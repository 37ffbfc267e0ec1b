// `vcpclip tokenize [--vocab F] [--truncate] [--context-length N] TEXT...`: prints one JSON line per
// text, {"text": ..., "ids": [context_length ids]} (SOT, BPE ids, EOT, zero padding), exactly the
// rows the reference `tokenize` gives.
#include <ATen/ATen.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "command.h"
#include "vcpclip/model/tokenizer.h"

namespace {

struct TokenizeArgs {
  std::vector<std::string> texts;
  std::string vocab;
  bool truncate = false;
  int64_t context_length = 77;
};

}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "tokenize", "Print CLIP token ids of texts as JSON lines", [](CLI::App& sub) -> vcpclip::cli::Action {
      auto args = std::make_shared<TokenizeArgs>();
      sub.add_option("text", args->texts, "texts to tokenize (one JSON line each)")->required();
      sub.add_option("--vocab", args->vocab,
                     "bpe_simple_vocab_16e6.txt.gz (default: $VCPCLIP_VOCAB, then assets/ next to the "
                     "working directory, the binary or the source tree)");
      sub.add_flag("--truncate", args->truncate,
                   "cut texts longer than the context (keeping EOT last) instead of failing");
      sub.add_option("--context-length", args->context_length, "tokens per row")
          ->default_val(77)
          ->check(CLI::PositiveNumber);
      return [args]() {
        auto tok = vcpclip::model::Tokenizer::load(vcpclip::model::find_vocab(args->vocab));
        at::Tensor ids = tok.tokenize(args->texts, args->context_length, args->truncate);
        for (size_t i = 0; i < args->texts.size(); ++i) {
          at::Tensor row = ids[int64_t(i)].contiguous();
          const int64_t* p = row.data_ptr<int64_t>();
          nlohmann::ordered_json line = {{"text", args->texts[i]}, {"ids", std::vector<int64_t>(p, p + row.numel())}};
          std::printf("%s\n", line.dump().c_str());
        }
        return 0;
      };
    });
