#pragma once
// Internal: accumulates every metric of metrics.h from the distinct scores fed in descending
// order, each with its counts of positive and negative samples (and, for pixels, the summed PRO
// weight 1/area(region) of its positive samples). One pass, O(1) per distinct score.
#include <cmath>
#include <cstdint>
#include <vector>

#include "vcpclip/eval/metrics.h"

namespace vcpclip::eval::detail {

class Sweep {
 public:
  /// P, N: positives / negatives in total; R: regions (0 = no PRO); f1_eps: see metrics.h.
  Sweep(uint64_t P, uint64_t N, uint64_t R, double f1_eps, const MetricsOptions& opts)
      : P_(P), N_(N), R_(R), eps_(f1_eps), opts_(opts) {
    if (opts.curves) {
      step_ = 1.0 / double(std::max<int64_t>(opts.curve_points, 2));
      roc_.x.push_back(0.f);
      roc_.y.push_back(0.f);
      if (R_ > 0) {
        pro_.x.push_back(0.f);
        pro_.y.push_back(0.f);
      }
    }
  }

  /// Reference AUPRO thresholds (ascending, already in float32 as the reference compares).
  void set_reference_thresholds(std::vector<float> th) {
    ref_th_ = std::move(th);
    ref_j_ = int64_t(ref_th_.size()) - 1;
    ref_fp_.assign(ref_th_.size(), 0);
    ref_pro_.assign(ref_th_.size(), 0.0);
  }

  void add(float value, uint64_t pos, uint64_t neg, double pro_w) {
    while (ref_j_ >= 0 && !(value > ref_th_[ref_j_])) {
      ref_fp_[ref_j_] = fp_;
      ref_pro_[ref_j_] = pro_sum_;
      --ref_j_;
    }
    const uint64_t ptp = tp_, pfp = fp_;
    tp_ += pos;
    fp_ += neg;
    pro_sum_ += pro_w;
    roc2_ += (unsigned __int128)(fp_ - pfp) * (unsigned __int128)(tp_ + ptp);
    if (P_ > 0) {
      const double precision = double(tp_) / double(tp_ + fp_);
      const double recall = double(tp_) / double(P_);
      if (pos) ap_ += (double(pos) / double(P_)) * precision;
      const double f1 = (2 * precision * recall) / (precision + recall + eps_);
      if (std::isfinite(f1) && f1 >= best_f1_) {
        best_f1_ = f1;
        best_thr_ = value;
        have_best_ = true;
        best_iou_ = double(ptp) / double(P_ + pfp);
      }
    }
    if (R_ > 0 && N_ > 0 && !pro_done_) {
      const double fpr = double(fp_) / double(N_);
      const double pro = pro_sum_ / double(R_);
      const double L = opts_.aupro_fpr_limit;
      if (fpr <= L) {
        pro_area_ += (fpr - last_fpr_) * (pro + last_pro_) / 2;
        if (opts_.curves && (fpr - rec_pro_x_ >= step_ * L || pro - rec_pro_y_ >= step_)) {
          pro_.x.push_back(float(fpr));
          pro_.y.push_back(float(pro));
          rec_pro_x_ = fpr;
          rec_pro_y_ = pro;
        }
      } else {
        const double yl = last_pro_ + (pro - last_pro_) * (L - last_fpr_) / (fpr - last_fpr_);
        pro_area_ += (L - last_fpr_) * (yl + last_pro_) / 2;
        pro_done_ = true;
        if (opts_.curves) {
          pro_.x.push_back(float(L));
          pro_.y.push_back(float(yl));
        }
      }
      last_fpr_ = fpr;
      last_pro_ = pro;
    }
    if (opts_.curves && P_ > 0 && N_ > 0) {
      const double fpr = double(fp_) / double(N_), tpr = double(tp_) / double(P_);
      if (fpr - rec_roc_x_ >= step_ || tpr - rec_roc_y_ >= step_ || (tp_ == P_ && fp_ == N_)) {
        roc_.x.push_back(float(fpr));
        roc_.y.push_back(float(tpr));
        rec_roc_x_ = fpr;
        rec_roc_y_ = tpr;
      }
    }
  }

  void finish() {
    while (ref_j_ >= 0) {
      ref_fp_[ref_j_] = fp_;
      ref_pro_[ref_j_] = pro_sum_;
      --ref_j_;
    }
  }

  Metric auroc() const {
    if (P_ == 0 || N_ == 0) return std::nullopt;
    return double((long double)roc2_ / ((long double)2 * (long double)P_ * (long double)N_));
  }
  Metric ap() const { return P_ > 0 ? Metric(ap_) : std::nullopt; }
  Metric f1_max() const { return have_best_ ? Metric(best_f1_) : std::nullopt; }
  Metric f1_threshold() const { return have_best_ ? Metric(double(best_thr_)) : std::nullopt; }
  Metric iou() const { return have_best_ ? Metric(best_iou_) : std::nullopt; }
  Metric aupro_exact() const {
    if (R_ == 0 || N_ == 0) return std::nullopt;
    return pro_area_ / opts_.aupro_fpr_limit;
  }
  /// Reference cal_pro_score from the recorded thresholds; nullopt (with `why`) if undefined.
  Metric aupro_reference(std::string* why) const {
    if (R_ == 0 || N_ == 0) return std::nullopt;
    std::vector<double> fprs, pros;
    for (size_t j = 0; j < ref_th_.size(); ++j) {
      const double fpr = double(ref_fp_[j]) / double(N_);
      if (fpr < opts_.aupro_fpr_limit) {
        fprs.push_back(fpr);
        pros.push_back(ref_pro_[j] / double(R_));
      }
    }
    if (fprs.size() < 2) {
      *why = "fewer than two of its thresholds have FPR < " + std::to_string(opts_.aupro_fpr_limit);
      return std::nullopt;
    }
    double lo = fprs[0], hi = fprs[0];
    for (double f : fprs) lo = std::min(lo, f), hi = std::max(hi, f);
    if (!(hi > lo)) {
      *why = "all its thresholds with FPR < limit have the same FPR";
      return std::nullopt;
    }
    for (double& f : fprs) f = (f - lo) / (hi - lo);
    // sklearn.metrics.auc on a non-increasing x: −trapz(y, x)
    double area = 0;
    for (size_t i = 0; i + 1 < fprs.size(); ++i) area += (fprs[i + 1] - fprs[i]) * (pros[i + 1] + pros[i]) / 2.0;
    return -area;
  }

  Curve roc_curve() const { return roc_; }
  Curve pro_curve() const { return pro_; }
  uint64_t tp() const { return tp_; }
  uint64_t fp() const { return fp_; }

 private:
  uint64_t P_, N_, R_;
  double eps_;
  const MetricsOptions& opts_;
  uint64_t tp_ = 0, fp_ = 0;
  double pro_sum_ = 0;
  unsigned __int128 roc2_ = 0;
  double ap_ = 0;
  double best_f1_ = 0, best_iou_ = 0;
  float best_thr_ = 0;
  bool have_best_ = false;
  double pro_area_ = 0, last_fpr_ = 0, last_pro_ = 0;
  bool pro_done_ = false;
  std::vector<float> ref_th_;
  int64_t ref_j_ = -1;
  std::vector<uint64_t> ref_fp_;
  std::vector<double> ref_pro_;
  double step_ = 0, rec_roc_x_ = 0, rec_roc_y_ = 0, rec_pro_x_ = 0, rec_pro_y_ = 0;
  Curve roc_, pro_;
};

}  // namespace vcpclip::eval::detail
