// inspect: OK/NG for one image with an installed vcpclip.
//   inspect CONFIG CHECKPOINT CALIBRATION IMAGE [MASK_OUT [CLASS]]
// prints "<ok|ng> score <normalised score> regions <n>", writes the mask (0 ok, 255 anomalous);
// exit status 0 ok, 1 ng, 2 usage, 3 error.
#include <vcpclip/vcpclip.h>

#include <cstdio>
#include <opencv2/imgcodecs.hpp>

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s CONFIG CHECKPOINT CALIBRATION IMAGE [MASK_OUT [CLASS]]\n", argv[0]);
    return 2;
  }
  try {
    vcpclip::InferencerOptions opts;
    opts.config = argv[1];
    opts.checkpoint = argv[2];
    opts.calibration = argv[3];
    if (argc > 6) opts.class_name = argv[6];  // needed when the calibration has several classes
    vcpclip::Inferencer inferencer(opts);

    const cv::Mat image = cv::imread(argv[4], cv::IMREAD_UNCHANGED);  // BGR(A) or grey, any size
    if (image.empty()) throw vcpclip::Error(std::string("cannot read image ") + argv[4]);
    const vcpclip::Prediction p = inferencer.predict(image);

    const vcpclip::Decision& d = *p.decision;
    std::printf("%s score %.4f regions %zu\n", d.label(), d.normalized_score, d.regions.size());
    for (const vcpclip::Region& r : d.regions)
      std::printf("  region x %d y %d w %d h %d area %lld\n", r.x, r.y, r.width, r.height, (long long)r.area);
    if (argc > 5 && !cv::imwrite(argv[5], d.mask)) throw vcpclip::Error(std::string("cannot write ") + argv[5]);
    return d.anomalous ? 1 : 0;
  } catch (const vcpclip::Error& e) {
    std::fprintf(stderr, "inspect: error: %s\n", e.what());
    return 3;
  }
}
