// inspect: prints every layer of a TorchScript model (module path, op type,
// weight shape, parameters), found from its graph, so models traced or
// scripted in Python show the same as zoo models, and the residual blocks
// depth pruning may remove (graph/depth.h).
//
//   bazel run //tools:inspect -- --model=resnet_small
//   bazel run //tools:inspect -- --model=/abs/path/model.pt
//   bazel run //tools:inspect -- --model=/abs/path/model.pt --archive
//       (lists the archive's entries without loading the model: code files,
//        tensor count and bytes — what a file holds before you run its code)
//   bazel run //tools:inspect -- --model=resnet_small --pruning_config=experiments/prune/l1_half.pbtxt
//   bazel run //tools:inspect -- --model=/abs/m.pt --pruner=fpgm --ratio=0.5 --input_shape=3,224,224
//       (a pruning dry run: the channel dependency groups, which layers the
//        config selects, and every weight shape after pruning — nothing is
//        written)
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "graph/dependency_graph.h"
#include "graph/depth.h"
#include "graph/layer_table.h"
#include "graph/surgery.h"
#include "pruners/plan.h"
#include "pruners/prune.h"
#include "tools/pruning_flags.h"
#include "model/archive.h"
#include "tools/cli.h"

ABSL_FLAG(std::string, model, "", "TorchScript file, or a zoo model name");
ABSL_FLAG(std::string, pruning_config, "", "a PruningConfig text proto: print a pruning dry run");
ABSL_FLAG(bool, archive, false,
          "list the file's archive entries instead of loading it (no code runs)");

namespace slimfit {
namespace {

absl::Status Run() {
  const std::string spec = absl::GetFlag(FLAGS_model);
  if (absl::GetFlag(FLAGS_archive)) {
    ASSIGN_OR_RETURN(ArchiveSummary s, InspectTorchScriptArchive(ResolveUserPath(spec)));
    for (const ArchiveEntry& e : s.entries) {
      std::printf("%12llu  %s\n", static_cast<unsigned long long>(e.uncompressed_size), e.name.c_str());
    }
    std::printf("%zu entries: %d code files, %d tensor blobs (%llu bytes); file %lld bytes\n",
                s.entries.size(), s.num_code_files, s.num_tensor_blobs,
                static_cast<unsigned long long>(s.tensor_bytes), static_cast<long long>(s.file_size));
    std::string ops;
    for (const auto& [op, count] : s.declared_ops) absl::StrAppendFormat(&ops, "%s%s x%d", ops.empty() ? "" : ", ", op, count);
    std::printf("declared ops (%zu): %s\n", s.declared_ops.size(), ops.empty() ? "none" : ops.c_str());
    if (s.num_unscanned_code_files > 0) {
      std::printf("warning: %d code file(s) not read (unknown compression, over 16 MiB, or inconsistent headers)\n",
                  s.num_unscanned_code_files);
    }
    for (const auto& [op, why] : s.notable_ops) std::printf("note: the code calls %s (%s)\n", op.c_str(), why.c_str());
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(Model model, LoadModelOrZoo(spec));
  ASSIGN_OR_RETURN(LayerTable table, BuildLayerTable(model));
  const ModelMetadata& md = model.metadata();
  std::printf("model: %s%s\n", spec.c_str(),
              md.name().empty() ? "" : absl::StrFormat(" (%s)", md.name()).c_str());
  if (md.inputs_size() > 0) {
    std::string shape;
    for (int64_t d : md.inputs(0).shape()) absl::StrAppendFormat(&shape, "%s%d", shape.empty() ? "" : "x", d);
    std::printf("input: %s %s\n", shape.c_str(), md.inputs(0).dtype().c_str());
  }
  std::printf("%s", FormatLayerTable(table).c_str());
  ASSIGN_OR_RETURN(std::vector<ResidualBlock> blocks, FindResidualBlocks(model));
  std::printf("residual blocks with an identity shortcut (removable whole): %s\n",
              blocks.empty() ? "none" : "");
  for (const ResidualBlock& b : blocks) {
    std::printf("  %-24s %s\n", b.path.c_str(), absl::StrJoin(b.layers, ", ").c_str());
  }
  if (absl::GetFlag(FLAGS_pruning_config).empty() && !FlagGiven("pruner") && !FlagGiven("ratio")) {
    return absl::OkStatus();
  }
  // Pruning dry run.
  ASSIGN_OR_RETURN(PruningConfig config, PruningConfigFromFlags(absl::GetFlag(FLAGS_pruning_config)));
  ASSIGN_OR_RETURN(std::shared_ptr<ForwardPass> fp, ForwardPassForModel(model));
  ASSIGN_OR_RETURN(DependencyGraph graph, AnalyzeModel(model, *fp));
  std::printf("\nchannel dependency groups:\n%s", FormatDependencyGroups(graph).c_str());
  ASSIGN_OR_RETURN(PlanResult plan, MakePlan(graph, config, nullptr));
  std::printf("\npruning plan (%s, dry run: counts are exact, which channels go is the pruner's choice):\n%s",
              SetOneofField(config, "pruner").c_str(), FormatPlan(plan).c_str());
  ASSIGN_OR_RETURN(Model pruned, ApplyPruning(model, graph, plan.plan));
  ASSIGN_OR_RETURN(LayerTable after, BuildLayerTable(pruned));
  std::printf("\nafter pruning:\n%s", FormatLayerTable(after).c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunTool(argc, argv, "inspect",
      "Prints every layer of a TorchScript model and its removable residual blocks; with a pruning config, a\n"
      "pruning dry run.\n"
      "  bazel run //tools:inspect -- --model=PATH_OR_ZOO_NAME [--archive]\n"
      "      [--pruning_config=prune.pbtxt | --pruner=fpgm --ratio=0.5] [--input_shape=3,224,224]", &slimfit::Run);
}
