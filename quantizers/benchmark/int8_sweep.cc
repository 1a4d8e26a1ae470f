// Converts every TorchScript file given to int8 with calibration on random
// inputs — a check that arbitrary models (torchvision's, traced and
// scripted) go through Int8Quantizer and run, not an accuracy figure: random
// inputs make poor ranges. One line per model: layers found / int8, the
// quantized ops in the written graph, max |int8 − simulation| relative to
// the output's span, or the error.
//
//   bazel build //quantizers/benchmark:int8_sweep && tools/torchvision/quantize_sweep.sh /tmp/tv
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/threads.h"
#include "common/torch_status.h"
#include "quantizers/int8.h"

ABSL_FLAG(std::string, input_shape, "3,128,128", "per-sample input shape");
ABSL_FLAG(std::string, out_dir, "", "write each int8 model here (<name>_int8.pt)");

namespace slimfit {
namespace {

absl::Status One(const std::string& path, const std::vector<int64_t>& shape) {
  ASSIGN_OR_RETURN(Model model, Model::Load(path));
  model.Eval();
  ASSIGN_OR_RETURN(auto q, Int8Quantizer::Create(model, QuantizationConfig()));
  std::vector<int64_t> batch_shape = {4};
  batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());
  at::manual_seed(0);
  for (int b = 0; b < 2; ++b) RETURN_IF_ERROR(q->Observe({at::randn(batch_shape)}));
  ASSIGN_OR_RETURN(Model int8, q->Convert());
  ASSIGN_OR_RETURN(Model sim, q->Simulate());
  int selected = 0;
  for (const QuantLayer& l : q->layers()) selected += l.selected;
  int qconv = 0, qlinear = 0, fconv = 0;
  for (const torch::jit::Node* n : int8.module().get_method("forward").graph()->nodes()) {
    const std::string k = n->kind().toQualString();
    qconv += k.rfind("quantized::conv", 0) == 0;
    qlinear += k.rfind("quantized::linear", 0) == 0;
    fconv += k == "aten::conv2d" || k == "aten::linear";
  }
  ASSIGN_OR_RETURN(double rel, TorchCallOr("running", [&] {
                     at::NoGradGuard no_grad;
                     const at::Tensor x = at::randn(batch_shape);
                     // Models like scripted GoogLeNet return a tuple: its first tensor.
                     auto first = [](const c10::IValue& v) {
                       return v.isTuple() ? v.toTupleRef().elements()[0].toTensor() : v.toTensor();
                     };
                     at::Tensor a = first(int8.module().forward({x}));
                     at::Tensor s = first(sim.module().forward({x}));
                     return ((a - s).abs().max() / (s.max() - s.min()).clamp_min(1e-12)).item<double>();
                   }));
  const std::string out_dir = absl::GetFlag(FLAGS_out_dir);
  if (!out_dir.empty()) {
    std::string name = path.substr(path.rfind('/') + 1);
    name = name.substr(0, name.size() - 3);
    RETURN_IF_ERROR(int8.Save(absl::StrCat(out_dir, "/", name, "_int8.pt")));
  }
  std::printf("%-28s layers %3zu int8 %3d | quantized conv %3d linear %2d, float conv/linear %2d | int8 vs sim %.3f\n",
              path.substr(path.rfind('/') + 1).c_str(), q->layers().size(), selected, qconv, qlinear, fconv, rel);
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  std::vector<char*> files = absl::ParseCommandLine(argc, argv);
  slimfit::ConfigureThreads(1);
  std::vector<int64_t> shape;
  for (absl::string_view d : absl::StrSplit(absl::GetFlag(FLAGS_input_shape), ',')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(d, &v)) {
      std::fprintf(stderr, "--input_shape: '%s' is not a list of integers\n", absl::GetFlag(FLAGS_input_shape).c_str());
      return 2;
    }
    shape.push_back(v);
  }
  int failed = 0;
  for (size_t i = 1; i < files.size(); ++i) {
    absl::Status s = slimfit::One(files[i], shape);
    if (!s.ok()) {
      ++failed;
      const std::string msg(s.message());
      std::printf("%-28s FAILED %s\n", std::string(files[i]).substr(std::string(files[i]).rfind('/') + 1).c_str(),
                  msg.substr(0, 300).c_str());
    }
    std::fflush(stdout);
  }
  return failed == 0 ? 0 : 1;
}
