// export_images: a dataset's splits written as an image folder
// (root/<split>/<class>/<index>.png|jpg, torchvision's ImageFolder layout),
// so image-folder experiments, tests and benchmarks read real files.
//
//   bazel run //tools:export_images -- --out=/tmp/fmnist_rgb --channels=3 --size=64 --max_per_split=2000
//
// Classes are folders named by label, zero-padded so that their names sort
// in label order ("0".."9"; "00".."99"). --size resizes each image to size x
// size (bilinear, antialiased); --channels=3 replicates a gray image, 1
// takes an RGB image's luma. Without --max_per_split every sample is written.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "data/image_export.h"
#include "data/splits.h"
#include "tools/cli.h"
#include "tools/data_flags.h"
#include "tools/job.h"

ABSL_FLAG(std::string, out, "", "the folder to write (required; created)");
ABSL_FLAG(std::string, splits, "train,val,test",
          "which splits, comma-separated: train, val (the val slimfit carves when the source has none), test");
ABSL_FLAG(int64_t, max_per_split, 0, "write at most this many samples of each split (0 = all)");
ABSL_FLAG(int, size, 0, "resize every image to size x size (0 = keep)");
ABSL_FLAG(int, channels, 0, "1 or 3 (0 = keep)");
ABSL_FLAG(std::string, format, "png", "png or jpg");
ABSL_FLAG(int, quality, 90, "JPEG quality, 1..100");

namespace slimfit {
namespace {

absl::Status Run() {
  const std::string out = ResolveUserPath(absl::GetFlag(FLAGS_out));
  if (out.empty()) return FieldError("--out", "required", "\"\"", "the folder to write");
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "png" && format != "jpg")
    return FieldError("--format", "not an image format", Quoted(format), "png, jpg");

  const int channels = absl::GetFlag(FLAGS_channels), size = absl::GetFlag(FLAGS_size);
  ImageExportOptions o;
  o.max_samples = absl::GetFlag(FLAGS_max_per_split);
  o.size = size;
  o.channels = channels;
  o.jpeg = format == "jpg";
  o.quality = absl::GetFlag(FLAGS_quality);
  ASSIGN_OR_RETURN(DataConfig data, RequiredDataFromFlags("export_images", "fashion_mnist",
                                                          /*augment=*/false));
  ASSIGN_OR_RETURN(Splits splits, LoadSplits(data), AtField("data"));
  for (absl::string_view split : absl::StrSplit(absl::GetFlag(FLAGS_splits), ',', absl::SkipEmpty())) {
    ASSIGN_OR_RETURN(auto ds, splits.Get(split), AtField("--splits"));
    // ImageExportOptions' fields are named as the flags that set them.
    absl::StatusOr<ImageExportResult> exported = ExportImageFolder(*ds, out, std::string(split), o);
    if (!exported.ok()) {
      return AsFlagError(exported.status());
    }
    const ImageExportResult& r = *exported;

    std::printf("%s: %lld images in %lld classes, %.1f MiB -> %s/%s\n", ds->name().c_str(),
                static_cast<long long>(r.images), static_cast<long long>(r.classes), r.bytes / 1048576.0, out.c_str(),
                std::string(split).c_str());
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunTool(argc, argv, "export_images",
                          "Writes a dataset's splits as an image folder (root/<split>/<class>/<index>.png).\n"
                          "  bazel run //tools:export_images -- --out=DIR [--data=fashion_mnist] [--channels=3] "
                          "[--size=64] [--max_per_split=N] [--format=png|jpg]",
                          &slimfit::Run);
}
