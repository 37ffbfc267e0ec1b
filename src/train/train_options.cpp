// `train:` section parsing, see include/vcpclip/train/train_options.h.
#include "vcpclip/train/train_options.h"

#include "vcpclip/common/error.h"

namespace vcpclip::train {

TrainOptions& TrainOptions::resolve() {
  if (deterministic) {
    augment = false;
    shuffle = false;
  }
  return *this;
}

TrainOptions parse_train_options(io::ConfigNode& node) {
  TrainOptions o;
  o.epochs = node.get<int64_t>("epochs", o.epochs);
  VCP_CHECK(o.epochs >= 1, "config key ", node.where("epochs"), ": expected at least 1, found ", o.epochs);
  o.batch_size = node.get<int64_t>("batch_size", o.batch_size);
  VCP_CHECK(o.batch_size >= 1, "config key ", node.where("batch_size"), ": expected at least 1, found ", o.batch_size);
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
  o.save_every = node.get<int64_t>("save_every", o.save_every);
  VCP_CHECK(o.save_every >= 1, "config key ", node.where("save_every"), ": expected at least 1, found ", o.save_every);
  o.out_dir = node.get<std::string>("out_dir", o.out_dir);
  VCP_CHECK(!o.out_dir.empty(), "config key ", node.where("out_dir"), ": expected a directory, found nothing");
  o.augment = node.get<bool>("augment", o.augment);
  o.shuffle = node.get<bool>("shuffle", o.shuffle);
  o.deterministic = node.get<bool>("deterministic", o.deterministic);
  o.workers = node.get<int>("workers", o.workers);
  VCP_CHECK(o.workers >= 0, "config key ", node.where("workers"), ": expected 0 or more, found ", o.workers);
  o.val_classes = node.get<std::vector<std::string>>("val_classes", o.val_classes);
  o.skip_bad = node.get<bool>("skip_bad", o.skip_bad);
  o.max_steps = node.get<int64_t>("max_steps", o.max_steps);
  VCP_CHECK(o.max_steps >= 0, "config key ", node.where("max_steps"), ": expected 0 (no limit) or more, found ",
            o.max_steps);
  o.init_from = node.get_path("init_from", o.init_from);
  o.log_every = node.get<int64_t>("log_every", o.log_every);
  VCP_CHECK(o.log_every >= 1, "config key ", node.where("log_every"), ": expected at least 1, found ", o.log_every);
  node.finish();
  return o.resolve();
}

}  // namespace vcpclip::train
