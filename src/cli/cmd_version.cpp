// `vcpclip version`: prints the toolkit, LibTorch and OpenCV versions and the BLAS threads.
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/cuda.h>

#include <cstdio>
#include <opencv2/core/version.hpp>

#include "command.h"
#include "vcpclip/build_info.h"

static vcpclip::cli::CommandRegistrar reg("version", "Print versions and the compute configuration",
                                          [](CLI::App&) -> vcpclip::cli::Action {
                                            return []() {
                                              std::printf("vcpclip %s\nOpenCV %s\nCUDA available: %s\n%s\n",
                                                          VCPCLIP_VERSION, CV_VERSION,
                                                          torch::cuda::is_available() ? "yes" : "no",
                                                          at::get_parallel_info().c_str());
                                              return 0;
                                            };
                                          });
