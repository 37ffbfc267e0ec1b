// StageTimer: per-stage sums from scopes and threads, first-use order, table and JSON; a disabled
// timer records nothing.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "vcpclip/common/stage_timer.h"

using vcpclip::StageTimer;

TEST(StageTimer, ScopesAndAddsSumPerStageInFirstUseOrder) {
  int syncs = 0;
  StageTimer t(true, [&] { ++syncs; });
  t.add("decode", 0.25);
  {
    auto s = t.scope("vision tower");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  t.add("decode", 0.5);
  { auto s = StageTimer::scope(&t, "vision tower"); }
  EXPECT_EQ(syncs, 4);  // before and after each scope
  EXPECT_EQ(t.stages(), (std::vector<std::string>{"decode", "vision tower"}));
  EXPECT_DOUBLE_EQ(t.seconds("decode"), 0.75);
  EXPECT_GE(t.seconds("vision tower"), 0.019);
  EXPECT_EQ(t.seconds("unknown"), 0.0);
  auto j = t.to_json(2.0);
  EXPECT_EQ(j.at("stages").at(0).at("stage"), "decode");
  EXPECT_EQ(j.at("stages").at(0).at("calls"), 2);
  EXPECT_EQ(j.at("stages").at(1).at("calls"), 2);
  EXPECT_EQ(j.at("total_seconds"), 2.0);
  const auto table = t.table(1.5);
  EXPECT_NE(table.find("decode"), std::string::npos) << table;
  EXPECT_NE(table.find("50%"), std::string::npos) << table;  // 0.75 of 1.5 s
  EXPECT_NE(table.find("total (wall)"), std::string::npos) << table;
}

TEST(StageTimer, MovedScopeChargesOnce) {
  StageTimer t(true);
  {
    auto a = t.scope("x");
    auto b = std::move(a);
  }
  EXPECT_EQ(t.to_json(0).at("stages").at(0).at("calls"), 1);
}

TEST(StageTimer, ThreadsAddConcurrently) {
  StageTimer t(true);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      for (int k = 0; k < 1000; ++k) t.add("decode", 0.001);
    });
  for (auto& th : threads) th.join();
  EXPECT_NEAR(t.seconds("decode"), 4.0, 1e-9);
  EXPECT_EQ(t.to_json(0).at("stages").at(0).at("calls"), 4000);
}

TEST(StageTimer, DisabledRecordsNothingAndNeverSyncs) {
  int syncs = 0;
  StageTimer t(false, [&] { ++syncs; });
  { auto s = t.scope("a"); }
  { auto s = StageTimer::scope(&t, "b"); }
  { auto s = StageTimer::scope(nullptr, "c"); }
  t.add("d", 1.0);
  EXPECT_TRUE(t.stages().empty());
  EXPECT_EQ(syncs, 0);
}
