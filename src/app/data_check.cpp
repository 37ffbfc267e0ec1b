// `vcpclip data check`: validate the data section of a run config (see app/data_check.h).
#include "vcpclip/app/data_check.h"

#include "vcpclip/common/error.h"

namespace vcpclip::app {

DataCheckRequest make_data_check_request(const RunConfig& cfg, const DataCheckFlags& flags) {
  VCP_CHECK(flags.section == "train" || flags.section == "eval",
            "data check --section: expected train or eval, found '", flags.section, "'");
  DataCheckRequest req;
  req.data = flags.section == "train" ? cfg.require_train_data("data check --section train")
                                      : cfg.require_eval_data("data check --section eval");
  req.check.workers = flags.workers;
  req.check.decode = flags.decode;
  req.check.progress = flags.progress;
  return req;
}

data::DataReport run_data_check(const DataCheckRequest& req, std::ostream& out) {
  data::DataReport rep = data::check_dataset(req.data, req.check);
  out << rep.format();
  return rep;
}

}  // namespace vcpclip::app
