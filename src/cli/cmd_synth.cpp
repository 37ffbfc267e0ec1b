// `vcpclip synth`: procedural MVTec AD / VisA stand-ins with exact masks.
#include <iostream>
#include <memory>

#include "command.h"
#include "vcpclip/app/synth.h"

static vcpclip::cli::CommandRegistrar reg(
    "synth", "Write a procedural dataset (product images with defects and masks) in the MVTec AD or VisA layout",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto o = std::make_shared<vcpclip::data::SynthOptions>();
      sub.add_option("--layout", o->layout, "on-disk layout")
          ->check(CLI::IsMember({"mvtec", "visa"}))
          ->capture_default_str();
      sub.add_option("-o,--out", o->out, "output directory")->required();
      sub.add_option("--classes", o->classes, "number of product classes")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();
      sub.add_option("--images", o->images, "test images per class (40% normal, 60% anomalous)")
          ->check(CLI::Range(2, 1000000))
          ->capture_default_str();
      sub.add_option("--train-images", o->train_images, "normal training images per class (-1: images/2)")
          ->capture_default_str();
      sub.add_option("--size", o->size, "image side in pixels")->check(CLI::Range(16, 8192))->capture_default_str();
      sub.add_option("--seed", o->seed, "random seed")->capture_default_str();
      sub.add_option("--role", o->set, "which product set: auxiliary (train on) or target (evaluate on); disjoint")
          ->check(CLI::IsMember({"auxiliary", "target"}))
          ->capture_default_str();
      sub.add_option("--kinds", o->kinds,
                     "product kinds of the set, in class order (default: its first four); auxiliary: stripes, "
                     "fabric, disk, screw, carpet, mesh, metal, capsule, nut; target: checker, wood, plate, bottle")
          ->delimiter(',');
      return [o]() {
        vcpclip::data::synthetic_class_names(o->set, o->classes, o->kinds);  // checks the kinds
        vcpclip::app::run_synth(*o, std::cout);
        return 0;
      };
    });
