// model.method: the registry, each method's own keys, the errors for an unknown method, a method
// not built in this version, another method's keys, and another method's checkpoint.
#include <gtest/gtest.h>

#include "support/test_util.h"
#include "vcp_fixture.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/io/config_node.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/model_options.h"

using namespace vcpclip;
using vcpclip::testing::error_of;

namespace {

model::ModelOptions parse(const std::string& yaml) {
  auto root = io::ConfigNode::from_string(yaml, "m.yaml");
  auto node = root.section("model");
  return model::parse_model_options(node);
}

}  // namespace

TEST(MethodRegistry, DefaultIsVcpClipAndBothBuiltMethodsAreRegistered) {
  EXPECT_EQ(parse("model: {backbone: b.json}\n").method, "vcp_clip");
  EXPECT_NE(model::method_registry().find("vcp_clip"), nullptr);
  EXPECT_NE(model::method_registry().find("april_gan"), nullptr);
  EXPECT_EQ(model::method_info("april_gan").title, "APRIL-GAN");
  EXPECT_FALSE(model::method_info("vcp_clip").needs_class_name);
  const auto o = parse("model: {backbone: b.json, method: april_gan, features_list: [1, 2]}\n");
  EXPECT_EQ(o.method, "april_gan");
}

TEST(MethodRegistry, UnknownMethodListsTheKnownOnes) {
  EXPECT_EQ(error_of([] { parse("model: {backbone: b.json, method: winclip}\n"); }),
            "config key 'model.method' in m.yaml: unknown method 'winclip', expected one of vcp_clip, april_gan, "
            "anomaly_clip");
}

TEST(MethodRegistry, AKnownMethodWithoutItsFilePairIsNotBuilt) {
  // A build without anomaly_clip's file pair: a registry holding vcp_clip's entry only.
  model::MethodRegistry only_vcp;
  only_vcp.add(*model::method_registry().find("vcp_clip"));
  EXPECT_EQ(&model::require_method(only_vcp, "vcp_clip"), only_vcp.find("vcp_clip"));
  EXPECT_EQ(error_of([&] { model::require_method(only_vcp, "anomaly_clip", "'model.method' in m.yaml"); }),
            "config key 'model.method' in m.yaml: method 'anomaly_clip' is not built in this version of vcpclip "
            "(built: vcp_clip)");
  // and in this build every known method is built
  for (const auto& name : model::known_method_names()) EXPECT_TRUE(model::method_registry().find(name)) << name;
}

TEST(MethodRegistry, AKeyOfAnotherMethodNamesBothMethods) {
  const std::string e = error_of([] { parse("model: {backbone: b.json, method: april_gan, prompt_len: 3}\n"); });
  EXPECT_NE(e.find("config key 'model.prompt_len' in m.yaml is a key of method vcp_clip, but 'model.method' in "
                   "m.yaml is april_gan (it has no keys of its own)"),
            std::string::npos)
      << e;
  // vcp_clip's own keys are still read and checked under vcp_clip.
  EXPECT_EQ(parse("model: {backbone: b.json, prompt_len: 3}\n").prompt_len, 3);
  EXPECT_NE(error_of([] { parse("model: {backbone: b.json, prompt_len: 0}\n"); }).find("prompt_len"),
            std::string::npos);
}

TEST(MethodRegistry, RecognisesEachLayoutAndRefusesAnotherMethodsCheckpoint) {
  const auto vcp = io::read_reference_checkpoint(vcp_fixture::path(vcp_fixture::manifest().at("checkpoint")));
  EXPECT_EQ(model::recognise_checkpoint(vcp), "vcp_clip");
  io::ReferenceCheckpoint april;
  april.modules.push_back(vcp.modules.front());  // trainable_linearlayer alone: APRIL-GAN's layout
  ASSERT_EQ(april.modules.front().first, "trainable_linearlayer");
  EXPECT_EQ(model::recognise_checkpoint(april), "april_gan");
  EXPECT_EQ(model::recognise_checkpoint(io::ReferenceCheckpoint{}), "");
}
