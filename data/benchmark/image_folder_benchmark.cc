// Streaming an image folder: slimfit's image_folder source + prefetching
// loader against torchvision's ImageFolder + DataLoader (image_folder.py),
// the same JPEG folder, the same training recipe (random resized crop to
// 224, flip, to float, ImageNet normalize), batch 64, the same number of
// workers (threads here, processes there), one epoch each, side by side.
// Prints images/s, the ratio, and peak resident memory.
//
//   bazel run //data/benchmark:image_folder_benchmark -- [--images=4000] [--workers=1,2]
//
// Without --root it writes (once) a folder of --images JPEGs at --side x
// --side (Fashion-MNIST upscaled to RGB, quality 90) under /tmp, so the
// folder decoded is far larger than the prefetch bound.
#include <ATen/ATen.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/threads.h"
#include "data/image_export.h"
#include "data/readers/idx.h"
#include "data/splits.h"
#include "tools/cli.h"
#include "tools/job.h"
#include "tools/python_flag.h"

ABSL_FLAG(std::string, root, "", "an image folder with a train/ split (default: one made under /tmp)");
ABSL_FLAG(int64_t, images, 4000, "images in the folder made without --root");
ABSL_FLAG(int, side, 320, "their width and height");
ABSL_FLAG(std::string, workers, "1,2", "worker counts to compare, comma-separated");
ABSL_FLAG(std::string, python_script, "data/benchmark/image_folder.py", "the Python half");

namespace slimfit {
namespace {

// Resident and peak resident MiB of this process (/proc/self/status).
std::pair<double, double> RssMib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  double rss = 0, hwm = 0;
  while (std::getline(f, line)) {
    int64_t kb = 0;
    std::vector<std::string> parts = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) {
      if (parts[0] == "VmRSS:") rss = kb / 1024.0;
      if (parts[0] == "VmHWM:") hwm = kb / 1024.0;
    }
  }
  return {rss, hwm};
}

absl::StatusOr<std::string> MakeFolder() {
  const std::string root =
      absl::StrFormat("/tmp/slimfit_image_bench_%d_%d", absl::GetFlag(FLAGS_images), absl::GetFlag(FLAGS_side));
  if (RegularFileSize(root + "/done").ok()) return root;
  DataConfig c;
  c.mutable_mnist()->set_directory(kDefaultFashionMnistDir);
  ASSIGN_OR_RETURN(Splits s, LoadSplits(c));
  ImageExportOptions o;
  o.max_samples = absl::GetFlag(FLAGS_images);
  o.size = absl::GetFlag(FLAGS_side);
  o.channels = 3;
  o.jpeg = true;
  std::printf("writing %lld JPEGs of %dx%d to %s ...\n", static_cast<long long>(o.max_samples), o.size, o.size,
              root.c_str());
  ASSIGN_OR_RETURN(ImageExportResult r, ExportImageFolder(*s.train, root, "train", o));
  std::printf("  %.1f MiB on disk, %.1f MiB decoded\n", r.bytes / 1048576.0,
              r.images * 3.0 * o.size * o.size / 1048576.0);
  RETURN_IF_ERROR(WriteFileAtomically(root + "/done", ""));
  return root;
}

struct Epoch {
  int64_t images = 0;
  double seconds = 0, peak_mib = 0;
};

absl::StatusOr<Epoch> Slimfit(const std::string& root, int workers) {
  // torchvision's training recipe: random resized crop 224, flip, ImageNet normalize.
  ASSIGN_OR_RETURN(DataConfig c, PresetData("image_folder", root, /*augment=*/true));
  c.mutable_image_folder()->set_index_cache_dir("none");
  c.set_workers(workers);
  c.set_train_batch_size(64);
  c.set_val_fraction(0.01);
  ASSIGN_OR_RETURN(Splits s, LoadSplits(c));
  ASSIGN_OR_RETURN(auto loader, MakeLoader(c, s, "train"));
  RETURN_IF_ERROR(loader->Reset(0));
  Epoch e;
  const auto start = std::chrono::steady_clock::now();
  Batch b;
  while (true) {
    ASSIGN_OR_RETURN(bool got, loader->Next(&b));
    if (!got) break;
    e.images += b[0].toTensor().size(0);
  }
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  e.peak_mib = RssMib().second;
  return e;
}

absl::StatusOr<Epoch> Python(const std::string& root, int workers) {
  ASSIGN_OR_RETURN(
      const std::string out,
      RunTorchPython("OMP_NUM_THREADS=1",
                     absl::StrFormat("%s %s/train %d", absl::GetFlag(FLAGS_python_script), root, workers)));
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("images=([0-9]+) seconds=([0-9.]+) peak_rss_mib=([0-9.]+)"))) {
    return absl::InternalError(absl::StrCat("the Python half printed: ", out));
  }
  return Epoch{std::stoll(m[1]), std::stod(m[2]), std::stod(m[3])};
}

absl::Status Run() {
  ConfigureThreads(1);
  std::string root = absl::GetFlag(FLAGS_root);
  if (root.empty()) {
    ASSIGN_OR_RETURN(root, MakeFolder());
  } else {
    root = StartDirectoryPath(root);
  }
  const double base_mib = RssMib().first;
  std::printf("folder %s, batch 64, random_resized_crop 224 + flip + normalize, one epoch\n", root.c_str());
  std::printf("resident before loading: %.0f MiB (LibTorch and the process itself)\n\n", base_mib);
  std::printf("%-8s %16s %16s %8s %18s %18s\n", "workers", "slimfit img/s", "torchvision img/s", "ratio",
              "slimfit peak MiB", "torchvision MiB");
  for (absl::string_view w : absl::StrSplit(absl::GetFlag(FLAGS_workers), ',', absl::SkipEmpty())) {
    int workers = 0;
    if (!absl::SimpleAtoi(w, &workers) || workers < 1) {
      return absl::InvalidArgumentError(absl::StrCat("--workers: positive counts, got \"", w, "\""));
    }
    ASSIGN_OR_RETURN(Epoch ours, Slimfit(root, workers));
    ASSIGN_OR_RETURN(Epoch theirs, Python(root, workers));
    const double a = ours.images / ours.seconds, b = theirs.images / theirs.seconds;
    std::printf("%-8d %16.1f %16.1f %7.2fx %18.0f %18.0f\n", workers, a, b, a / b, ours.peak_mib, theirs.peak_mib);
  }
  std::printf(
      "\nslimfit's peak is the whole process's (VmHWM, so it includes every earlier row); torchvision's is "
      "its main process's peak plus its largest worker's.\n");
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunFromWorkspace(argc, argv, "image_folder_benchmark", &slimfit::Run);
}
