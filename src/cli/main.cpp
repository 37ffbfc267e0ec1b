// vcpclip: the command-line entry point. Subcommands register themselves (see command.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>

#include "command.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"

namespace vcpclip::cli {
std::vector<CommandSpec>& command_registry() {
  static std::vector<CommandSpec> registry;
  return registry;
}
}  // namespace vcpclip::cli

int main(int argc, char** argv) {
  using namespace vcpclip::cli;
  CLI::App app{"vcpclip " VCPCLIP_VERSION
               ": zero-shot anomaly segmentation with visual context prompting (VCP-CLIP) on LibTorch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("vcpclip ") + VCPCLIP_VERSION);
  spdlog::set_pattern("[%H:%M:%S] [%^%l%$] %v");

  auto& registry = command_registry();
  std::sort(registry.begin(), registry.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::map<CLI::App*, Action> actions;
  for (auto& spec : registry) {
    CLI::App* sub = app.add_subcommand(spec.name, spec.help);
    actions[sub] = spec.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [sub, action] : actions) {
    if (!sub->parsed()) continue;
    try {
      return action();
    } catch (const vcpclip::Error& e) {
      std::fprintf(stderr, "vcpclip %s: error: %s\n", sub->get_name().c_str(), e.what());
      return 1;
    } catch (const c10::Error& e) {
      std::fprintf(stderr, "vcpclip %s: error (LibTorch): %s\n", sub->get_name().c_str(), e.what_without_backtrace());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "vcpclip %s: error: %s\n", sub->get_name().c_str(), e.what());
      return 1;
    }
  }
  return 0;
}
