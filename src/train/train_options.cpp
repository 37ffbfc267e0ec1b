// `train:` section parsing, see include/vcpclip/train/train_options.h.
#include "vcpclip/train/train_options.h"

#include "vcpclip/common/error.h"

namespace vcpclip::train {
namespace {

template <typename T>
T at_least(io::ConfigNode& node, const std::string& key, T fallback, T min, const char* expected) {
  const T v = node.get<T>(key, fallback);
  VCP_CHECK(v >= min, "config key ", node.where(key), ": expected ", expected, ", found ", v);
  return v;
}

}  // namespace

TrainOptions parse_train_options(io::ConfigNode& node, const TrainOptions& defaults) {
  TrainOptions o = defaults;
  o.epochs = at_least<int64_t>(node, "epochs", o.epochs, 1, "at least 1");
  o.batch_size = at_least<int64_t>(node, "batch_size", o.batch_size, 1, "at least 1");
  o.lr = node.get<double>("lr", o.lr);
  VCP_CHECK(o.lr > 0, "config key ", node.where("lr"), ": expected a positive learning rate, found ", o.lr);
  o.lr_temp = node.get<double>("lr_temp", o.lr_temp);
  VCP_CHECK(o.lr_temp > 0, "config key ", node.where("lr_temp"), ": expected a positive learning rate, found ",
            o.lr_temp);
  auto betas = node.get<std::vector<double>>("betas", {o.betas[0], o.betas[1]});
  VCP_CHECK(betas.size() == 2 && betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1, "config key ",
            node.where("betas"), ": expected two numbers in [0, 1), found ", betas.size(), " value(s)");
  o.betas = {betas[0], betas[1]};
  o.eps = node.get<double>("eps", o.eps);
  VCP_CHECK(o.eps > 0, "config key ", node.where("eps"), ": expected a positive number, found ", o.eps);
  o.save_every = at_least<int64_t>(node, "save_every", o.save_every, 1, "at least 1");
  o.resume_every_steps =
      at_least<int64_t>(node, "resume_every_steps", o.resume_every_steps, 0, "0 (off) or a number of steps");
  o.resume_every_seconds =
      at_least<double>(node, "resume_every_seconds", o.resume_every_seconds, 0.0, "0 (off) or a number of seconds");
  o.out_dir = node.get<std::string>("out_dir", o.out_dir);
  VCP_CHECK(!o.out_dir.empty(), "config key ", node.where("out_dir"), ": expected a directory, found nothing");
  o.shuffle = node.get<bool>("shuffle", o.shuffle);
  o.deterministic = node.get<bool>("deterministic", o.deterministic);
  o.val_classes = node.get<std::vector<std::string>>("val_classes", o.val_classes);
  o.max_steps = at_least<int64_t>(node, "max_steps", o.max_steps, 0, "0 (no limit) or more");
  o.init_from = node.get_path("init_from", o.init_from);
  o.log_every = at_least<int64_t>(node, "log_every", o.log_every, 1, "at least 1");
  node.finish();
  return o;
}

}  // namespace vcpclip::train
