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
#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/image_codec.h"
#include "data/image_transforms.h"
#include "data/splits.h"
#include "tools/cli.h"
#include "tools/job.h"

ABSL_FLAG(std::string, data, "fashion_mnist", "a --data preset (fashion_mnist, mnist, cifar10, ...) or a .pbtxt");
ABSL_FLAG(std::string, data_dir, "", "the dataset's directory (default for fashion_mnist: Debian's)");
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
  if (out.empty()) return absl::InvalidArgumentError("--out: required (the folder to write)");
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "png" && format != "jpg") {
    return absl::InvalidArgumentError(absl::StrCat("--format: png or jpg, got \"", format, "\""));
  }
  const int channels = absl::GetFlag(FLAGS_channels), size = absl::GetFlag(FLAGS_size);
  if (channels != 0 && channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat("--channels: 0 (keep), 1 or 3, got ", channels));
  }
  if (size < 0) return absl::InvalidArgumentError(absl::StrCat("--size: >= 0 (0 = keep), got ", size));
  ASSIGN_OR_RETURN(DataConfig data,
                   PresetData(absl::GetFlag(FLAGS_data), ResolveUserPath(absl::GetFlag(FLAGS_data_dir)),
                              /*augment=*/false));
  ASSIGN_OR_RETURN(Splits splits, LoadSplits(data));
  for (absl::string_view split : absl::StrSplit(absl::GetFlag(FLAGS_splits), ',', absl::SkipEmpty())) {
    ASSIGN_OR_RETURN(auto ds, splits.Get(split), "--splits");
    int64_t n = ds->size();
    if (absl::GetFlag(FLAGS_max_per_split) > 0) n = std::min(n, absl::GetFlag(FLAGS_max_per_split));
    ASSIGN_OR_RETURN(Batch probe, ShapeProbe(*ds));
    const int64_t classes = probe.size() > 1 ? probe[1].toTensor().max().item<int64_t>() + 1 : 1;
    const int width = static_cast<int>(std::to_string(std::max<int64_t>(classes - 1, 0)).size());
    for (int64_t c = 0; c < classes; ++c) {
      RETURN_IF_ERROR(CreateDirectories(absl::StrFormat("%s/%s/%0*d", out, split, width, c)));
    }
    int64_t bytes = 0;
    for (int64_t start = 0; start < n; start += 512) {
      const int64_t take = std::min<int64_t>(512, n - start);
      ASSIGN_OR_RETURN(Batch b, ds->GetBatch(at::arange(start, start + take, at::kLong)));
      at::Tensor images = b[0].toTensor(), labels = b[1].toTensor();
      if (images.dim() == 3) images = images.unsqueeze(1);
      if (images.scalar_type() != at::kByte) {
        return absl::FailedPreconditionError(absl::StrCat(ds->name(), ": images are ", images.scalar_type(),
                                                          "; only uint8 images can be written as files"));
      }
      for (int64_t i = 0; i < take; ++i) {
        ASSIGN_OR_RETURN(at::Tensor x, TorchCallOr("resizing", [&] {
                           at::Tensor img = images[i];
                           if (size > 0) img = ResizeImage(img, size, size);
                           return img;
                         }));
        Image image = TensorToImage(x);
        if (channels == 3 && image.channels == 1) {
          x = x.expand({3, x.size(1), x.size(2)});
          image = TensorToImage(x);
        } else if (channels == 1 && image.channels == 3) {
          ASSIGN_OR_RETURN(std::string png, EncodePng(image));
          ASSIGN_OR_RETURN(image, DecodeImage(png, ColorMode::kGray));
        }
        ASSIGN_OR_RETURN(std::string file,
                         format == "png" ? EncodePng(image) : EncodeJpeg(image, absl::GetFlag(FLAGS_quality)));
        bytes += static_cast<int64_t>(file.size());
        RETURN_IF_ERROR(WriteFileAtomically(
            absl::StrFormat("%s/%s/%0*d/%06d.%s", out, split, width, labels[i].item<int64_t>(), start + i, format),
            file));
      }
    }
    std::printf("%s: %lld images in %lld classes, %.1f MiB -> %s/%s\n", ds->name().c_str(), static_cast<long long>(n),
                static_cast<long long>(classes), bytes / 1048576.0, out.c_str(), std::string(split).c_str());
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
