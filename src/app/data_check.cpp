// `vcpclip data check`: validate the data section of a run config.
#include "vcpclip/app/data_check.h"

#include "vcpclip/common/error.h"
#include "vcpclip/io/config_node.h"

namespace vcpclip::app {

data::DataReport run_data_check(const DataCheckArgs& args, std::ostream& out) {
  auto root = io::ConfigNode::load_file(args.config);
  VCP_CHECK(root.has(args.section), "no '", args.section, "' section in ", args.config,
            " (data check reads <section>.data; choose it with --section)");
  auto sec = root.section(args.section);
  VCP_CHECK(sec.has("data"), "no 'data' mapping in section '", args.section, "' of ", args.config);
  auto node = sec.section("data");
  const data::DataOptions opts = data::parse_data_options(node, args.section == "train");
  data::CheckOptions check;
  check.workers = args.workers;
  check.decode = args.decode;
  check.progress = args.progress;
  data::DataReport rep = data::check_dataset(opts, check);
  out << rep.format();
  return rep;
}

}  // namespace vcpclip::app
