// Strict config reading: unknown keys, wrong types, overrides, missing files.
#include <gtest/gtest.h>

#include "support/test_util.h"
#include "vcpclip/io/config_node.h"

using vcpclip::testing::error_of;

using vcpclip::Error;
using vcpclip::io::ConfigNode;

TEST(ConfigNode, ReadsTypedValuesAndDefaults) {
  auto root = ConfigNode::from_string("train:\n  epochs: 3\n  lr: 4.0e-5\n  names: [a, b]\n  flag: true\n", "t.yaml");
  auto train = root.section("train");
  EXPECT_EQ(train.get<int>("epochs", 10), 3);
  EXPECT_DOUBLE_EQ(train.get<double>("lr", 0.0), 4e-5);
  EXPECT_EQ(train.get<std::vector<std::string>>("names", {}), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(train.get<bool>("flag", false));
  EXPECT_EQ(train.get<int>("batch_size", 32), 32);
  EXPECT_NO_THROW(train.finish());
  EXPECT_NO_THROW(root.finish());
}

TEST(ConfigNode, UnknownKeyNamesKeyAndFile) {
  auto root = ConfigNode::from_string("train:\n  epochs: 3\n  lrr: 1\n", "configs/x.yaml");
  auto train = root.section("train");
  train.get<int>("epochs", 1);
  train.get<double>("lr", 1.0);
  EXPECT_EQ(error_of([&] { train.finish(); }),
            "unknown config key 'train.lrr' in configs/x.yaml; known keys of 'train': epochs, lr");
}

TEST(ConfigNode, WrongTypeNamesExpectedAndFound) {
  auto root = ConfigNode::from_string("epochs: ten\nlist: 3\n", "c.yaml");
  EXPECT_EQ(error_of([&] { root.get<int>("epochs", 1); }),
            "config key 'epochs' in c.yaml: expected an integer, found 'ten'");
  EXPECT_EQ(error_of([&] { root.get<std::vector<int>>("list", {}); }),
            "config key 'list' in c.yaml: expected a list of values each an integer, found '3'");
  EXPECT_EQ(error_of([&] { root.require<std::string>("name"); }),
            "missing config key 'name' in c.yaml (a string is required)");
}

TEST(ConfigNode, OverridesSetNestedValues) {
  auto root = ConfigNode::from_string("train:\n  epochs: 3\n", "c.yaml");
  root.apply_override("train.epochs=5");
  root.apply_override("model.features_list=[6,12]");
  EXPECT_EQ(root.section("train").get<int>("epochs", 0), 5);
  EXPECT_EQ(root.section("model").get<std::vector<int>>("features_list", {}), (std::vector<int>{6, 12}));
  EXPECT_EQ(error_of([&] { root.apply_override("novalue"); }),
            "override 'novalue' must look like key.subkey=value (e.g. train.epochs=3)");
}

TEST(ConfigNode, MissingFileAndSyntaxError) {
  EXPECT_EQ(error_of([] { ConfigNode::load_file("/nonexistent/c.yaml"); }),
            "cannot open config file '/nonexistent/c.yaml': no such file");
  EXPECT_NE(error_of([] { ConfigNode::from_string("a: [1, 2\n", "bad.yaml"); }).find("cannot parse config 'bad.yaml'"),
            std::string::npos);
}

TEST(ConfigNode, PathTheSystemCannotLookUpIsKeptAsGiven) {
  // Found by fuzz_config (fuzz/regressions/config/path_too_long_filesystem_error.yaml): a path
  // longer than the system allows made std::filesystem throw its own exception out of the loader.
  const std::string long_name(5000, 'x');
  auto root = ConfigNode::from_string("model:\n  backbone: " + long_name + "\n", "configs/x.yaml");
  auto model = root.section("model");
  std::string got;
  EXPECT_NO_THROW(got = model.get_path("backbone", ""));
  EXPECT_EQ(got, long_name);
}

TEST(ConfigNode, NumberTooLargeForItsTypeNamesKeyAndRange) {
  // Found by fuzz_config (fuzz/regressions/config/integer_out_of_range.json): yaml-cpp's own
  // exception escaped the loader.
  auto root = ConfigNode::from_string("a: 16666666666666666666666666666666662\nb: 1e999\nc: 70000\n", "m.json");
  EXPECT_EQ(error_of([&] { root.get<int64_t>("a", 0); }),
            "config key 'a' in m.json: expected an integer between -9223372036854775808 and 9223372036854775807, "
            "found '16666666666666666666666666666666662'");
  EXPECT_EQ(
      error_of([&] { root.get<double>("b", 0.0); }).rfind("config key 'b' in m.json: expected a number between ", 0),
      0u);
  EXPECT_EQ(root.get<int>("c", 0), 70000);
}

TEST(ConfigNode, KeyThatIsNotTextNamesLineAndKind) {
  // Found by fuzz_config (fuzz/regressions/config/yaml_mapping_as_key.yaml): YAML's explicit key
  // `? {…}` makes a mapping a key, and yaml-cpp's "bad conversion" escaped the unknown-key check.
  auto root = ConfigNode::from_string("# note\n? post_h: 333\npostpess: 1\n", "c.yaml");
  EXPECT_EQ(error_of([&] { root.finish(); }), "c.yaml: line 2: a config key must be plain text, found a mapping key");
  auto nested = ConfigNode::from_string("model:\n  ? [1, 2]\n  : x\n", "c.yaml").section("model");
  EXPECT_EQ(error_of([&] { nested.finish(); }),
            "section 'model' in c.yaml: line 2: a config key must be plain text, found a sequence key");
}
