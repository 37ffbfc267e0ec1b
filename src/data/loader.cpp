// Parallel, deterministic batch loader with prefetch, sharding, augmentation and mosaic.
#include "vcpclip/data/loader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "vcpclip/common/error.h"
#include "vcpclip/data/transforms.h"

namespace vcpclip::data {
namespace {

uint64_t mix(uint64_t h, uint64_t v) {
  uint64_t z = h ^ (v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Decoded image and binary (0/255) mask; normal samples get an empty mask.
void decode(const SampleInfo& s, cv::Mat& rgb, cv::Mat& mask) {
  rgb = read_rgb(s.image_path);
  mask.release();
  if (s.anomaly) {
    VCP_CHECK(!s.mask_path.empty(), "anomalous image without a mask path: ", s.image_path);
    cv::Mat m = read_mask(s.mask_path);
    VCP_CHECK(m.size() == rgb.size(), "mask size ", m.cols, "x", m.rows, " differs from image size ", rgb.cols, "x",
              rgb.rows, ": ", s.mask_path, " (for ", s.image_path, ")");
    mask = m > 0;
  }
}

}  // namespace

LoaderOptions make_loader_options(const DataOptions& d, int64_t image_size, int64_t batch_size, bool shuffle,
                                  uint64_t seed) {
  LoaderOptions o;
  o.image_size = image_size;
  o.batch_size = batch_size;
  o.shuffle = shuffle;
  o.seed = seed;
  o.workers = d.workers;
  o.prefetch = d.prefetch;
  o.skip_bad = d.skip_bad;
  o.augment = d.augment;
  o.mosaic_p = d.mosaic_p;
  return o;
}

Sample load_sample(const SampleInfo& info, int64_t size) {
  cv::Mat rgb, mask;
  decode(info, rgb, mask);
  return Sample{preprocess_image(rgb, size), preprocess_mask(mask, size), info};
}

Batch collate(std::vector<Sample>& samples) {
  VCP_CHECK(!samples.empty(), "collate: no samples");
  std::vector<at::Tensor> imgs, masks;
  Batch b;
  for (auto& s : samples) {
    imgs.push_back(s.image);
    masks.push_back(s.mask);
    b.infos.push_back(s.info);
  }
  b.images = at::stack(imgs);
  b.masks = at::stack(masks);
  return b;
}

DataLoader::DataLoader(std::vector<SampleInfo> samples, LoaderOptions opts)
    : samples_(std::move(samples)), opts_(std::move(opts)) {
  VCP_CHECK(opts_.batch_size >= 1, "loader: batch_size must be >= 1, found ", opts_.batch_size);
  VCP_CHECK(opts_.image_size >= 1, "loader: image_size must be >= 1, found ", opts_.image_size);
  VCP_CHECK(opts_.world_size >= 1 && opts_.rank >= 0 && opts_.rank < opts_.world_size,
            "loader: expected 0 <= rank < world_size, found rank ", opts_.rank, ", world_size ", opts_.world_size);
  VCP_CHECK(opts_.workers >= 0, "loader: workers must be >= 0, found ", opts_.workers);
  VCP_CHECK(opts_.prefetch >= 1, "loader: prefetch must be >= 1, found ", opts_.prefetch);
  VCP_CHECK(!samples_.empty(), "loader: the dataset has no samples");
  for (size_t i = 0; i < samples_.size(); ++i)
    if (samples_[i].anomaly) anomalous_by_class_[samples_[i].cls_name].push_back(i);
}

DataLoader::~DataLoader() { stop_workers(); }

int64_t DataLoader::samples_per_epoch() const {
  const int64_t n = static_cast<int64_t>(samples_.size());
  return (n + opts_.world_size - 1) / opts_.world_size;
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = samples_per_epoch();
  return opts_.drop_last ? n / opts_.batch_size : (n + opts_.batch_size - 1) / opts_.batch_size;
}

std::vector<size_t> DataLoader::epoch_order(int64_t epoch) const {
  std::vector<size_t> all(samples_.size());
  std::iota(all.begin(), all.end(), size_t{0});
  if (opts_.shuffle) {
    std::mt19937_64 g(mix(opts_.seed, static_cast<uint64_t>(epoch)));
    // Fisher–Yates with our own index draws: identical on every standard library.
    for (size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[g() % i]);
  }
  const size_t per_rank = static_cast<size_t>(samples_per_epoch());
  std::vector<size_t> mine;
  mine.reserve(per_rank);
  for (size_t j = 0; j < per_rank; ++j) mine.push_back(all[(j * opts_.world_size + opts_.rank) % all.size()]);
  return mine;
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop_workers();
  epoch_ = epoch;
  order_ = epoch_order(epoch);
  n_batches_ = batches_per_epoch();
  VCP_CHECK(first_batch >= 0 && first_batch <= n_batches_, "loader: cannot start epoch ", epoch, " at batch ",
            first_batch, " of ", n_batches_);
  next_to_build_ = next_to_return_ = first_batch;
  ready_.clear();
  stop_ = false;
  for (int i = 0; i < opts_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

Sample DataLoader::load_one(size_t pos, size_t index) {
  const SampleInfo& info = samples_[index];
  // One generator per (seed, epoch, rank position): independent of which thread loads it.
  const uint64_t global_pos = pos * opts_.world_size + opts_.rank;
  std::mt19937 g(
      static_cast<uint32_t>(mix(mix(opts_.seed ^ 0xA5A5A5A5ull, static_cast<uint64_t>(epoch_)), global_pos)));
  cv::Mat rgb, mask;
  SampleInfo out_info = info;
  const bool mosaic = opts_.mosaic_p > 0 && std::uniform_real_distribution<double>(0, 1)(g) < opts_.mosaic_p &&
                      anomalous_by_class_.count(info.cls_name);
  if (mosaic) {
    const auto& pool = anomalous_by_class_.at(info.cls_name);
    std::vector<cv::Mat> imgs(4), masks(4);
    for (int t = 0; t < 4; ++t) {
      const SampleInfo& tile = samples_[pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(g)]];
      decode(tile, imgs[t], masks[t]);
    }
    mosaic2x2(imgs, masks, rgb, mask);
    out_info.anomaly = 1;
    out_info.specie_name = "mosaic";
  } else {
    decode(info, rgb, mask);
  }
  if (opts_.augment) augment(rgb, mask, g, opts_.aug);
  return Sample{preprocess_image(rgb, opts_.image_size), preprocess_mask(mask, opts_.image_size), out_info};
}

DataLoader::Result DataLoader::build_batch(int64_t k) {
  Result r;
  try {
    const size_t begin = static_cast<size_t>(k * opts_.batch_size);
    const size_t end = std::min(order_.size(), begin + static_cast<size_t>(opts_.batch_size));
    std::vector<Sample> batch;
    int64_t skipped = 0;
    for (size_t p = begin; p < end; ++p) {
      try {
        batch.push_back(load_one(p, order_[p]));
      } catch (const Error& e) {
        if (!opts_.skip_bad) throw;
        spdlog::warn("skipping sample {}: {}", samples_[order_[p]].image_path, e.what());
        ++skipped;
      }
    }
    if (skipped) {
      std::lock_guard<std::mutex> lock(mu_);
      skipped_ += skipped;
    }
    if (!batch.empty()) r.batch = collate(batch);
  } catch (...) {
    r.error = std::current_exception();
  }
  return r;
}

void DataLoader::worker_loop() {
  for (;;) {
    int64_t k;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stop_ || next_to_build_ >= n_batches_ || next_to_build_ < next_to_return_ + opts_.prefetch;
      });
      if (stop_ || next_to_build_ >= n_batches_) return;
      k = next_to_build_++;
    }
    Result r = build_batch(k);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_[k] = std::move(r);
    }
    cv_.notify_all();
  }
}

std::optional<Batch> DataLoader::next() {
  VCP_CHECK(epoch_ >= 0, "loader: call start_epoch() before next()");
  for (;;) {
    Result r;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (next_to_return_ >= n_batches_) return std::nullopt;
      const int64_t k = next_to_return_;
      if (threads_.empty()) {
        lock.unlock();
        r = build_batch(k);
        lock.lock();
      } else {
        cv_.wait(lock, [&] { return ready_.count(k) > 0; });
        r = std::move(ready_[k]);
        ready_.erase(k);
      }
      ++next_to_return_;
    }
    cv_.notify_all();
    if (r.error) std::rethrow_exception(r.error);
    if (r.batch) return r.batch;  // else every sample of this batch was skipped: go on
  }
}

int64_t DataLoader::position() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_to_return_;
}

int64_t DataLoader::skipped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return skipped_;
}

}  // namespace vcpclip::data
