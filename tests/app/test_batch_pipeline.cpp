// BatchPipeline (app/batch_pipeline.h): writes in submission order on one writer thread under a
// slow, uneven writer; at most `depth` batches pending; a writer's error reaches the caller and
// stops later writes; the serial mode writes inline. On the CPU the busy share is n/a.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "vcpclip/app/batch_pipeline.h"
#include "vcpclip/common/error.h"

using namespace vcpclip;

namespace {
const c10::Device kCpu(c10::kCPU);
}  // namespace

TEST(BatchPipeline, WritesInSubmissionOrderOnTheWriterThreadUnderASlowWriter) {
  for (bool overlap : {true, false}) {
    app::PipelineOptions po;
    po.overlap = overlap;
    app::BatchPipeline pipe(kCpu, po, nullptr);
    std::vector<int64_t> order;
    std::vector<std::thread::id> threads;
    for (int64_t i = 0; i < 12; ++i) {
      pipe.begin_batch();
      pipe.submit({at::full({2}, static_cast<double>(i)), at::Tensor()}, [&, i](std::vector<at::Tensor>& host) {
        // uneven delays: a later batch written faster must still come after an earlier one
        std::this_thread::sleep_for(std::chrono::milliseconds((i % 3 == 0) ? 15 : 1));
        ASSERT_EQ(host.size(), 2u);
        EXPECT_FALSE(host[1].defined());
        EXPECT_EQ(host[0][1].item<double>(), static_cast<double>(i));
        order.push_back(host[0][0].item<int64_t>());
        threads.push_back(std::this_thread::get_id());
      });
    }
    pipe.finish();
    ASSERT_EQ(order.size(), 12u) << "overlap " << overlap;
    for (int64_t i = 0; i < 12; ++i) EXPECT_EQ(order[i], i) << "overlap " << overlap;
    for (const auto& id : threads) {
      if (overlap)
        EXPECT_NE(id, std::this_thread::get_id()) << "pipelined writes run on the writer thread";
      else
        EXPECT_EQ(id, std::this_thread::get_id()) << "serial writes run inline";
    }
    EXPECT_FALSE(pipe.device_busy_share().has_value()) << "the busy share is CUDA's";
  }
}

TEST(BatchPipeline, AtMostDepthBatchesArePending) {
  for (size_t depth : {size_t(1), size_t(3)}) {
    app::PipelineOptions po;
    po.depth = depth;
    app::BatchPipeline pipe(kCpu, po, nullptr);
    std::atomic<int64_t> submitted{0};
    std::atomic<int64_t> worst{0};
    for (int64_t i = 0; i < 10; ++i) {
      pipe.submit({at::zeros({1})}, [&, i](std::vector<at::Tensor>&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        // batch i is not written yet: at most depth - 1 later ones can have been submitted
        worst = std::max<int64_t>(worst, submitted.load() - i);
      });
      ++submitted;
    }
    pipe.finish();
    EXPECT_LE(worst.load(), static_cast<int64_t>(depth)) << "depth " << depth;
    EXPECT_GE(worst.load(), 1);
  }
}

TEST(BatchPipeline, WriterErrorReachesTheCallerAndStopsLaterWrites) {
  app::PipelineOptions po;
  app::BatchPipeline pipe(kCpu, po, nullptr);
  std::vector<int> written;
  std::string message;
  try {
    for (int i = 0; i < 8; ++i)
      pipe.submit({at::zeros({1})}, [&, i](std::vector<at::Tensor>&) {
        if (i == 3) VCP_CHECK(false, "predict: cannot write batch ", i);
        written.push_back(i);
      });
    pipe.finish();
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("predict: cannot write batch 3"), std::string::npos) << message;
  EXPECT_EQ(written, (std::vector<int>{0, 1, 2}));
}

TEST(BatchPipeline, DestroyedWithoutFinishDropsPendingWritesAndJoins) {
  std::atomic<int> written{0};
  {
    app::BatchPipeline pipe(kCpu, app::PipelineOptions{}, nullptr);
    pipe.submit({at::zeros({1})}, [&](std::vector<at::Tensor>&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ++written;
    });
  }  // no finish(): an error unwinding the caller; the threads end without hanging
  EXPECT_LE(written.load(), 1);
}

TEST(BatchPipeline, ToDeviceOnTheCpuKeepsTheValuesAndBusyShareLineSaysNa) {
  auto x = at::arange(6, at::kFloat).view({2, 3});
  EXPECT_TRUE(at::equal(app::to_device_async(x, kCpu), x));
  EXPECT_EQ(app::busy_share_line(std::nullopt), "GPU busy share: n/a (not on CUDA)");
  EXPECT_EQ(app::busy_share_line(0.5),
            "GPU busy share: 50.0 % of the batch loop's wall time (device work outstanding)");
  app::PipelineOptions po;
  po.depth = 0;
  try {
    app::BatchPipeline pipe(kCpu, po, nullptr);
    FAIL() << "depth 0 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "batch pipeline: expected a depth >= 1, found 0");
  }
}
