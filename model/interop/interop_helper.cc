// The C++ half of the Python interop test (model/interop/interop_test.sh).
//
//   interop_helper save-zoo DIR     every zoo model → DIR/<name>.pt, plus
//                                   DIR/<name>_io.pt = [input, eval output]
//                                   (torch::pickle_save: loads with torch.load)
//                                   and what slimfit writes of resnet_small:
//                                   DIR/written_{fp32_frozen,int8,weight_only8,
//                                   weight_only4}.pt with their _io.pt, and
//                                   DIR/written_engine.txt (the int8 engine)
//   interop_helper check-python DIR loads DIR/py_{traced,scripted}.pt made in
//                                   Python, runs DIR/py_io.pt's input, compares
//                                   with Python's outputs; lists their layers;
//                                   loads DIR/py_data.pt as a tensor_file dataset;
//                                   checks DIR/py_state_dict.pt is refused.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/readers/tensor_file.h"
#include "data/splits.h"
#include "graph/layer_table.h"
#include "model/model.h"
#include "graph/dependency_graph.h"
#include "graph/freeze.h"
#include "graph/surgery.h"
#include "data/data_loader.h"
#include "data/dataset.h"
#include "forward_pass/forward_pass.h"
#include "model/zoo/zoo.h"
#include "quantizers/int8.h"
#include "quantizers/quantize.h"

namespace slimfit {
namespace {

// Half of every dependency group's prunable units (every other one), removed
// for real: what slimfit's pruners write.
absl::StatusOr<Model> PruneHalf(Model& m) {
  ASSIGN_OR_RETURN(DependencyGraph dg, BuildDependencyGraph(m, {at::randn({2, 1, 28, 28})}));
  PruningPlan plan;
  for (const ChannelGroup& g : dg.groups) {
    for (size_t u = 1; u < g.units.size(); u += 2) {
      if (!g.units[u].blocked) plan.RemoveUnit(g.units[u]);
    }
  }
  return ApplyPruning(m, dg, plan);
}

absl::Status SaveIo(Model& m, const std::string& dir, const std::string& name) {
  RETURN_IF_ERROR(m.Save(absl::StrCat(dir, "/", name, ".pt")));
  return TorchCall(name, [&] {
      c10::NoGradGuard no_grad;
      at::Tensor x = at::randn({4, 1, 28, 28});
      at::Tensor y = m.module().forward({x}).toTensor();
      std::vector<char> bytes = torch::jit::pickle_save(c10::List<at::Tensor>({x, y}));
      auto s = WriteFileAtomically(absl::StrCat(dir, "/", name, "_io.pt"),
                                   std::string(bytes.begin(), bytes.end()));
      if (!s.ok()) throw std::runtime_error(std::string(s.message()));
  });
}

// The files slimfit's tools write, of one model with residual adds: the
// frozen fp32 model (what compress returns at level 1), int8 (level 2 and
// //tools:quantize, calibrated here on random images) and 8/4-bit
// weight-only. Python must load each and give the same outputs.
absl::Status SaveWritten(const std::string& dir) {
  ASSIGN_OR_RETURN(Model m, CreateZooModel("resnet_small"));
  m.Eval();
  ASSIGN_OR_RETURN(Model frozen, FrozenForInference(m));
  RETURN_IF_ERROR(SaveIo(frozen, dir, "written_fp32_frozen"));

  ASSIGN_OR_RETURN(auto images, TensorDataset::Create(
                                    {at::randn({128, 1, 28, 28}), at::randint(10, {128}, at::kLong)}, "random"));
  ASSIGN_OR_RETURN(auto calibration, BatchLoader::Create(images, {.batch_size = 32}));
  ASSIGN_OR_RETURN(auto forward_pass, MakeForwardPass(ForwardPassConfig()));
  QuantizeDeps deps;
  deps.forward_pass = forward_pass.get();
  deps.calibration = calibration.get();
  QuantizationConfig int8;
  int8.set_calibration_batches(4);
  ASSIGN_OR_RETURN(QuantizeResult q, Quantize(m, int8, deps));
  RETURN_IF_ERROR(SaveIo(q.model, dir, "written_int8"));
  RETURN_IF_ERROR(WriteFileAtomically(dir + "/written_engine.txt", QuantizedEngineName(int8.engine())));
  for (int bits : {8, 4}) {
    QuantizationConfig weight_only;
    weight_only.mutable_weight_only()->set_bits(bits);
    ASSIGN_OR_RETURN(QuantizeResult w, Quantize(m, weight_only, deps));
    RETURN_IF_ERROR(SaveIo(w.model, dir, absl::StrCat("written_weight_only", bits)));
  }
  std::printf("saved resnet_small as slimfit writes it: fp32 frozen, int8 (%s), weight-only 8 and 4 bits\n",
              QuantizedEngineName(int8.engine()).c_str());
  return absl::OkStatus();
}

absl::Status SaveZoo(const std::string& dir) {
  for (const std::string& name : ZooModelNames()) {
    ASSIGN_OR_RETURN(Model m, CreateZooModel(name));
    m.Eval();
    RETURN_IF_ERROR(SaveIo(m, dir, name));
    ASSIGN_OR_RETURN(Model pruned, PruneHalf(m));
    pruned.Eval();
    RETURN_IF_ERROR(SaveIo(pruned, dir, name + "_pruned"));
    std::printf("saved %s (%lld parameters) and %s_pruned (%lld)\n", name.c_str(),
                static_cast<long long>(m.NumParameters()), name.c_str(),
                static_cast<long long>(pruned.NumParameters()));
  }
  return SaveWritten(dir);
}

absl::Status CheckPython(const std::string& dir) {
  ASSIGN_OR_RETURN(std::vector<at::Tensor> io, ReadTensorFile(dir + "/py_io.pt"));
  if (io.size() != 3) return absl::InternalError("py_io.pt: expected [x, y_traced, y_scripted]");
  for (int i = 0; i < 2; ++i) {
    const std::string file = dir + (i == 0 ? "/py_traced.pt" : "/py_scripted.pt");
    ASSIGN_OR_RETURN(Model m, Model::Load(file));
    m.Eval();
    ASSIGN_OR_RETURN(at::Tensor y, TorchCallOr(file, [&] {
                       c10::NoGradGuard no_grad;
                       return m.module().forward({io[0]}).toTensor();
                     }));
    const double diff = (y - io[1 + i]).abs().max().item<double>();
    std::printf("%s: max |C++ - Python| = %.3g\n", file.c_str(), diff);
    if (!(diff <= 1e-5)) return absl::InternalError(absl::StrCat(file, ": outputs differ by ", diff));
    ASSIGN_OR_RETURN(LayerTable table, BuildLayerTable(m));
    std::printf("%s", FormatLayerTable(table).c_str());
    int convs = 0, depthwise = 0, linears = 0, bns = 0;
    for (const Layer& l : table.layers) {
      convs += l.op_type == "Conv2d";
      depthwise += l.op_type == "DepthwiseConv2d";
      linears += l.op_type == "Linear";
      bns += l.op_type == "BatchNorm";
    }
    // The Python model (interop_test.py): stem, branch_a, pw, mix convs; dw
    // depthwise; a batch norm after each of the five; fc.
    if (convs != 4 || depthwise != 1 || linears != 1 || bns != 5 ||
        table.params_in_layers != table.total_params) {
      return absl::InternalError(absl::StrCat(file, ": layer table found ", convs, " convs, ",
                                              depthwise, " depthwise, ", linears, " linears, ", bns,
                                              " batch norms"));
    }
  }
  DataConfig data;
  data.mutable_tensor_file()->set_train_path(dir + "/py_data.pt");
  ASSIGN_OR_RETURN(Splits splits, LoadSplits(data));
  const int64_t n = splits.train->size() + splits.val->size() + splits.test->size();
  std::printf("py_data.pt: %lld samples\n", static_cast<long long>(n));
  if (n != 40) return absl::InternalError(absl::StrCat("py_data.pt: expected 40 samples, got ", n));
  auto refused = Model::Load(dir + "/py_state_dict.pt");
  std::printf("py_state_dict.pt: %s\n", refused.status().ToString().c_str());
  if (refused.ok() || refused.status().message().find("torch.save()") == std::string::npos) {
    return absl::InternalError("a torch.save() state_dict was not refused with a clear error");
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: interop_helper save-zoo|check-python DIR\n");
    return 2;
  }
  const std::string cmd = argv[1], dir = argv[2];
  absl::Status s = cmd == "save-zoo"       ? slimfit::SaveZoo(dir)
                   : cmd == "check-python" ? slimfit::CheckPython(dir)
                                           : absl::InvalidArgumentError("unknown command " + cmd);
  if (!s.ok()) {
    std::fprintf(stderr, "interop_helper %s: %s\n", cmd.c_str(), slimfit::ErrorText(s).c_str());
    return 1;
  }
  return 0;
}
