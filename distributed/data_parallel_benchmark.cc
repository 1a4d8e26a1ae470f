// Data-parallel training on this machine: seconds per epoch with 1 and with
// 2 processes (c10d + Gloo on 127.0.0.1, each rank 1 intra-op thread, the
// global batch of 128 split between them) and the gradient all-reduce time
// per step, side by side in one run.
//
//   bazel run //distributed:data_parallel_benchmark [-- lenet5 resnet_small]
//
// Needs Debian's Fashion-MNIST (dataset-fashion-mnist). The all-reduce time
// includes waiting for the slower rank (it is where ranks meet).
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "distributed/launch.h"

namespace slimfit {
namespace {

struct Figures {
  double epoch_seconds = 0, sync_ms = 0;
  long steps = 0;
};

bool Run(const std::string& worker, const std::string& model, int nproc, Figures* f) {
  const std::string out = absl::StrCat("/tmp/slimfit_dp_benchmark_", model, "_", nproc);
  if (!CreateDirectories(out).ok()) return false;
  auto exits = LaunchLocal({worker, "bench", model, out},
                           LaunchOptions{.nproc_per_node = nproc, .env = {{"OPENBLAS_NUM_THREADS", "1"}}});
  if (!exits.ok()) {
    std::fprintf(stderr, "%s\n", exits.status().ToString().c_str());
    return false;
  }
  for (const RankExit& e : *exits) {
    if (e.exit_code != 0) return false;
  }
  std::ifstream in(out + "/rank0.txt");
  return static_cast<bool>(in >> f->epoch_seconds >> f->sync_ms >> f->steps);
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: data_parallel_benchmark WORKER [MODEL...]\n");
    return 2;
  }
  std::vector<std::string> models(argv + 2, argv + argc);
  if (models.empty()) models = {"lenet5", "resnet_small"};
  std::printf("%-14s %12s %12s %9s %16s %14s\n", "model", "1 proc s/ep", "2 procs s/ep", "speed-up",
              "all-reduce/step", "share of step");
  for (const std::string& model : models) {
    slimfit::Figures one, two;
    if (!slimfit::Run(argv[1], model, 1, &one) || !slimfit::Run(argv[1], model, 2, &two)) {
      std::fprintf(stderr, "%s: a run failed\n", model.c_str());
      return 1;
    }
    const double step_ms = 1e3 * two.epoch_seconds * 2 / std::max(1L, two.steps);
    std::printf("%-14s %12.2f %12.2f %8.2fx %13.2f ms %13.0f%%\n", model.c_str(), one.epoch_seconds, two.epoch_seconds,
                one.epoch_seconds / two.epoch_seconds, two.sync_ms, 100 * two.sync_ms / step_ms);
  }
  return 0;
}
