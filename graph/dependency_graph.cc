// BuildDependencyGraph and the graph's accessors; the analysis itself is in
// graph/dependency_analyzer*.cc.
#include "graph/dependency_graph.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "graph/dependency_analyzer.h"

namespace slimfit {

int64_t ChannelGroup::prunable_units() const {
  int64_t n = 0;
  for (const ChannelUnit& u : units) n += u.blocked ? 0 : 1;
  return n;
}

int DependencyGraph::SpaceOf(const std::string& module_path) const {
  for (const ChannelSpace& s : spaces) {
    if (s.module_path == module_path) return s.id;
  }
  return -1;
}

absl::StatusOr<DependencyGraph> BuildDependencyGraph(Model& model, const std::vector<c10::IValue>& example_inputs) {
  DependencyGraph out;
  dependency_internal::Analyzer a(model, &out);
  RETURN_IF_ERROR(a.Run(example_inputs));
  return out;
}

std::string FormatDependencyGroups(const DependencyGraph& graph) {
  std::string out;
  for (size_t g = 0; g < graph.groups.size(); ++g) {
    const ChannelGroup& group = graph.groups[g];
    std::vector<std::string> members;
    std::string reason;
    for (int s : group.spaces) {
      const ChannelSpace& sp = graph.spaces[s];
      members.push_back(
          absl::StrCat(sp.module_path.empty() ? "(root)" : sp.module_path, " (", sp.op_type, ", ", sp.size, ")"));
      if (reason.empty() && !sp.blocked_reason.empty()) reason = sp.blocked_reason;
    }
    const int64_t prunable = group.prunable_units();
    absl::StrAppendFormat(
        &out, "group %d: %d units, %d prunable: %s%s\n", g, group.units.size(), prunable, absl::StrJoin(members, ", "),
        prunable < static_cast<int64_t>(group.units.size()) ? absl::StrCat("\n    kept: ", reason) : "");
  }
  if (!graph.unhandled_ops.empty()) {
    absl::StrAppend(&out, "ops that keep channels:\n");
    for (const std::string& op : graph.unhandled_ops) absl::StrAppend(&out, "  ", op, "\n");
  }
  return out;
}

}  // namespace slimfit
