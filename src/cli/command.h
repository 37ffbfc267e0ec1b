#pragma once
// Subcommand registry of the `vcpclip` binary. Each src/cli/cmd_<name>.cpp defines one
// subcommand and registers it with a file-scope `static CommandRegistrar`:
//
//   static vcpclip::cli::CommandRegistrar reg("tokenize", "Print CLIP token ids as JSON",
//       [](CLI::App& sub) {
//         auto texts = std::make_shared<std::vector<std::string>>();
//         sub.add_option("text", *texts, "texts to tokenize")->required();
//         return [texts]() -> int { ...call the library...; return 0; };
//       });
//
// The setup function adds options to `sub` and returns the action to run when the subcommand
// is chosen. Commands only parse, load config and call the library; a vcpclip::Error thrown by
// the action is printed as one readable paragraph and the process exits with status 1.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace vcpclip::cli {

using Action = std::function<int()>;
using Setup = std::function<Action(CLI::App&)>;

struct CommandSpec {
  std::string name, help;
  Setup setup;
};

std::vector<CommandSpec>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(std::string name, std::string help, Setup setup) {
    command_registry().push_back({std::move(name), std::move(help), std::move(setup)});
  }
};

}  // namespace vcpclip::cli
