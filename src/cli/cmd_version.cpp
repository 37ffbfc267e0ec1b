// `vcpclip version`: prints the toolkit, LibTorch and OpenCV versions, the BLAS kernels, the
// data-parallel backends built in (train/distributed.h) and threads.
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/cuda.h>

#include <cstdio>
#include <opencv2/core/version.hpp>

#include "command.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/blas_kernels.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/train/distributed.h"

static vcpclip::cli::CommandRegistrar reg("version", "Print versions and the compute configuration",
                                          [](CLI::App&) -> vcpclip::cli::Action {
                                            return []() {
                                              const auto& blas = vcpclip::select_blas_kernels();
                                              std::printf("BLAS: %s\n", blas.reason.c_str());
                                              std::printf("vcpclip %s\nOpenCV %s\nCUDA available: %s\n",
                                                          VCPCLIP_VERSION, CV_VERSION,
                                                          torch::cuda::is_available() ? "yes" : "no");
                                              std::printf("attention: %s\n", vcpclip::model::attention_kernel());
                                              std::printf("data-parallel training: gloo %s, nccl %s\n%s\n",
                                                          vcpclip::train::distributed_available() ? "yes" : "no",
                                                          vcpclip::train::nccl_available() ? "yes" : "no",
                                                          at::get_parallel_info().c_str());
                                              return 0;
                                            };
                                          });
