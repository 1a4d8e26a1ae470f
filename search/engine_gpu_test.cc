// The engine with `device: "cuda"` on a LeNet-5 slice (search/
// engine_testing.h), against the same run on the CPU. Tagged `gpu`: built by
// the suite, run where a GPU is (docs/gpu.md); it fails, never skips,
// without one.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "absl/strings/str_join.h"
#include "common/status_matchers.h"
#include "model/model.h"
#include "search/engine.h"
#include "search/engine_testing.h"

namespace slimfit {
namespace {

using ::slimfit::testing::BuildEngine;
using ::slimfit::testing::LenetSlice;
using ::slimfit::testing::MetricOfFile;

// Level 1 with every data-driven path (taylor scores on the loss, the lr
// trial, distillation, sensitivity, the final fine-tune) on the GPU; the
// written model is a CPU model within delta, as on the CPU.
TEST(EngineGpuTest, CompressesOnCudaWithinDeltaAndWritesACpuModel) {
  double chosen_metric[2] = {0, 0};
  for (const char* device : {"cpu", "cuda"}) {
    Experiment e = LenetSlice(std::string("gpu_") + device,
                              "delta: 2.0 level: 1 objective: MACS candidate_epochs: 1 final_epochs: 2 "
                              "pruners: ['l1_filter', 'taylor']");
    e.set_device(device);
    auto b = BuildEngine(e);
    ASSERT_NE(b->engine, nullptr);
    ASSERT_OK_AND_ASSIGN(EngineResult r, b->engine->Run());
    ASSERT_FALSE(r.returned_reference) << r.why << "\n" << absl::StrJoin(b->lines, "\n");
    EXPECT_LT(r.chosen.macs(), r.reference.macs());
    std::set<std::string> pruners;
    for (const CandidateRecord& c : r.candidates) {
      if (c.phase() == "candidate") pruners.insert(c.pruner());
    }
    EXPECT_TRUE(pruners.count("taylor")) << device;
    const std::string path = b->experiment.output_dir() + "/model.pt";
    ASSERT_OK_AND_ASSIGN(Model written, Model::Load(path));
    EXPECT_EQ(written.device(), c10::Device(c10::kCPU));
    const double measured = MetricOfFile(b->experiment, path);
    EXPECT_NEAR(measured, r.chosen.eval_metric(), 1e-6) << device;
    EXPECT_GE(measured, r.reference.eval_metric() - 2.0) << device;
    chosen_metric[std::string(device) == "cuda"] = r.chosen.eval_metric();
  }
  // Not bit-equal (other kernels), but the same search on the same data.
  EXPECT_NEAR(chosen_metric[1], chosen_metric[0], 3.0);
}

}  // namespace
}  // namespace slimfit
