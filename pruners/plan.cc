#include "pruners/plan.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/field_error.h"
#include "common/regex.h"
#include "common/status_macros.h"
#include "re2/re2.h"

namespace slimfit {
namespace {

constexpr double kDefaultMaxRatio = 0.9;

absl::Status CheckRatio(const std::string& field, double v, bool allow_zero = true) {
  if (!(v >= 0 && v < 1) || (!allow_zero && v == 0)) {
    return FieldError(field, "out of range", v, allow_zero ? "[0, 1)" : "(0, 1)");
  }
  return absl::OkStatus();
}

struct Selector {
  LayerSelection entry;
  std::unique_ptr<RE2> re;
  bool Matches(const ChannelSpace& s) const {
    if (!entry.op_types().empty() &&
        std::find(entry.op_types().begin(), entry.op_types().end(), s.op_type) == entry.op_types().end()) {
      return false;
    }
    return re == nullptr || FullMatch(*re, s.module_path);
  }
};

bool IsDefaultSelected(const std::string& op_type) {
  return op_type.rfind("Conv", 0) == 0 || op_type.rfind("DepthwiseConv", 0) == 0 ||
         op_type.rfind("GroupedConv", 0) == 0 || op_type == "Linear";
}

struct SpaceChoice {
  bool selected = false;
  bool excluded = false;
  double ratio = 0;
  double max_ratio = kDefaultMaxRatio;
};

}  // namespace

absl::Status ValidatePruningConfig(const PruningConfig& config) {
  RETURN_IF_ERROR(CheckRatio("pruning.ratio", config.ratio()));
  if (config.max_ratio() != 0) RETURN_IF_ERROR(CheckRatio("pruning.max_ratio", config.max_ratio(), false));
  if (config.min_channels() < 0) {
    return FieldError("pruning.min_channels", "negative", config.min_channels(), ">= 1 (0 = 1)");
  }
  if (config.round_to() < 0 || config.round_to() > 1024) {
    return FieldError("pruning.round_to", "out of range", config.round_to(), "[0, 1024] (0 or 1: no rounding)");
  }
  if (config.finetune_epochs() < 0) {
    return FieldError("pruning.finetune_epochs", "negative", config.finetune_epochs(), ">= 0");
  }
  for (int i = 0; i < config.layers_size(); ++i) {
    const LayerSelection& l = config.layers(i);
    const std::string f = IndexedField("pruning.layers", i);
    if (l.has_ratio()) RETURN_IF_ERROR(CheckRatio(f + ".ratio", l.ratio()));
    if (l.has_max_ratio()) RETURN_IF_ERROR(CheckRatio(f + ".max_ratio", l.max_ratio(), false));
    if (!l.module_regex().empty()) {
      RETURN_IF_ERROR(CompileUserRegex(l.module_regex(), f + ".module_regex").status());
    }
    if (l.exclude() && (l.has_ratio() || l.has_max_ratio())) {
      return FieldError(f + (l.has_ratio() ? ".ratio" : ".max_ratio"), "set on an exclude entry",
                        l.has_ratio() ? l.ratio() : l.max_ratio(), "unset when exclude is true");
    }
  }
  if (config.has_iterative()) {
    if (config.iterative().steps() < 1 || config.iterative().steps() > 100) {
      return FieldError("pruning.iterative.steps", "out of range", config.iterative().steps(), "[1, 100]");
    }
    if (config.iterative().finetune_epochs() < 0) {
      return FieldError("pruning.iterative.finetune_epochs", "negative", config.iterative().finetune_epochs(), ">= 0");
    }
  }
  if (config.has_agp()) {
    if (config.agp().epochs() < 1) {
      return FieldError("pruning.agp.epochs", "below 1", config.agp().epochs(), ">= 1");
    }
    if (config.agp().frequency() < 0) {
      return FieldError("pruning.agp.frequency", "negative", config.agp().frequency(), ">= 1 (0 = 10)");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PlanResult> MakePlan(const DependencyGraph& graph, const PruningConfig& config,
                                    const ChannelScores* scores, bool normalize,
                                    const std::function<double(double)>& ratio_map) {
  RETURN_IF_ERROR(ValidatePruningConfig(config));
  auto map_ratio = [&](double r) { return ratio_map ? std::clamp(ratio_map(r), 0.0, 0.999) : r; };
  std::vector<Selector> selectors;
  for (int i = 0; i < config.layers_size(); ++i) {
    Selector s{config.layers(i), nullptr};
    if (!s.entry.module_regex().empty()) {
      ASSIGN_OR_RETURN(s.re, CompileUserRegex(s.entry.module_regex(),
                                              absl::StrCat("pruning.layers[", i, "].module_regex")));
    }
    selectors.push_back(std::move(s));
  }
  const double default_max = config.max_ratio() == 0 ? kDefaultMaxRatio : config.max_ratio();
  const int64_t min_channels = std::max(1, config.min_channels());
  // Per space: selected? excluded? ratio.
  std::vector<SpaceChoice> choice(graph.spaces.size());
  for (const ChannelSpace& s : graph.spaces) {
    SpaceChoice& c = choice[s.id];
    c.max_ratio = default_max;
    if (selectors.empty()) {
      c.selected = IsDefaultSelected(s.op_type);
      c.ratio = config.ratio();
      continue;
    }
    for (const Selector& sel : selectors) {
      if (!sel.Matches(s)) continue;
      if (sel.entry.exclude()) {
        c.excluded = true;
      } else if (!c.selected) {
        c.selected = true;
        c.ratio = sel.entry.has_ratio() ? sel.entry.ratio() : config.ratio();
        if (sel.entry.has_max_ratio()) c.max_ratio = sel.entry.max_ratio();
      }
    }
    if (c.excluded) c.selected = false;
  }

  // Unit scores.
  std::vector<std::vector<double>> unit_score(graph.groups.size());
  for (size_t g = 0; g < graph.groups.size(); ++g) {
    const ChannelGroup& group = graph.groups[g];
    for (size_t u = 0; u < group.units.size(); ++u) {
      double sum = 0;
      for (const ChannelRef& m : group.units[u].members) {
        double v = scores ? (*scores)[m.space][m.channel] : static_cast<double>(-m.channel);
        if (scores && normalize) {
          const auto& sp = (*scores)[m.space];
          const double mean = std::accumulate(sp.begin(), sp.end(), 0.0) / std::max<size_t>(1, sp.size());
          if (mean > 0) v /= mean;
        }
        sum += v;
      }
      unit_score[g].push_back(sum / static_cast<double>(group.units[u].members.size()));
    }
  }

  // Groups to prune, their ratio and cap.
  struct GroupChoice {
    bool pruned = false;
    double ratio = 0;
    double max_ratio = 1;
    std::string note;
  };
  std::vector<GroupChoice> gc(graph.groups.size());
  for (size_t g = 0; g < graph.groups.size(); ++g) {
    GroupChoice& c = gc[g];
    bool any_selected = false;
    std::string excluded;
    for (int s : graph.groups[g].spaces) {
      if (choice[s].excluded && excluded.empty()) excluded = graph.spaces[s].module_path;
      if (choice[s].selected) {
        any_selected = true;
        c.ratio = std::max(c.ratio, map_ratio(choice[s].ratio));
        c.max_ratio = std::min(c.max_ratio, choice[s].max_ratio);
      }
    }
    c.pruned = any_selected && excluded.empty() && graph.groups[g].prunable_units() > 0;
    if (any_selected && !excluded.empty()) c.note = absl::StrCat("kept: shares channels with excluded ", excluded);
    c.ratio = std::min(c.ratio, c.max_ratio);
  }

  PlanResult result;
  std::vector<int64_t> removed_from(graph.spaces.size(), 0);
  // Per layer, every space of a group also has its own quota, so groups
  // whose units span spaces of different sizes (cat) still remove the ratio
  // from each layer.
  std::vector<int64_t> quota(graph.spaces.size(), -1);
  auto can_remove = [&](const ChannelUnit& u) {
    std::map<int, int64_t> take;
    for (const ChannelRef& m : u.members) ++take[m.space];
    for (const auto& [s, k] : take) {
      if (graph.spaces[s].size - removed_from[s] - k < min_channels) return false;
      if (quota[s] >= 0 && removed_from[s] + k > quota[s]) return false;
    }
    return true;
  };
  auto remove = [&](const ChannelUnit& u) {
    for (const ChannelRef& m : u.members) ++removed_from[m.space];
    result.plan.RemoveUnit(u);
  };
  // Candidates: (group, unit) of pruned groups, not blocked.
  std::vector<std::pair<int, size_t>> order;
  for (size_t g = 0; g < graph.groups.size(); ++g) {
    if (!gc[g].pruned) continue;
    for (size_t u = 0; u < graph.groups[g].units.size(); ++u) {
      if (!graph.groups[g].units[u].blocked) order.push_back({static_cast<int>(g), u});
    }
  }
  std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    return unit_score[a.first][a.second] < unit_score[b.first][b.second];
  });
  std::vector<int64_t> budget(graph.groups.size(), 0), cap(graph.groups.size(), 0), taken(graph.groups.size(), 0);
  int64_t global_budget = 0;
  for (size_t g = 0; g < graph.groups.size(); ++g) {
    if (!gc[g].pruned) continue;
    const double n = static_cast<double>(graph.groups[g].units.size());
    budget[g] = std::llround(gc[g].ratio * n);
    if (!config.global()) {
      for (int s : graph.groups[g].spaces) {
        quota[s] = std::llround(gc[g].ratio * static_cast<double>(graph.spaces[s].size));
      }
    }
    cap[g] = static_cast<int64_t>(std::floor(gc[g].max_ratio * n + 1e-9));
    if (config.global()) global_budget += std::llround(map_ratio(config.ratio()) * n);
  }
  for (const auto& [g, u] : order) {
    if (config.global()) {
      if (global_budget <= 0) break;
      if (taken[g] >= cap[g]) continue;
    } else if (taken[g] >= budget[g]) {
      continue;
    }
    const ChannelUnit& unit = graph.groups[g].units[u];
    if (!can_remove(unit)) continue;
    remove(unit);
    ++taken[g];
    --global_budget;
  }
  // Round kept counts: give back the best removed units until the first
  // space's kept count is a multiple of round_to.
  if (config.round_to() > 1) {
    std::fill(quota.begin(), quota.end(), -1);
    const int64_t r = config.round_to();
    for (size_t g = 0; g < graph.groups.size(); ++g) {
      if (taken[g] == 0) continue;
      const int s0 = graph.groups[g].spaces[0];
      const int64_t kept = graph.spaces[s0].size - removed_from[s0];
      if (kept % r == 0) continue;
      int64_t target = ((kept + r / 2) / r) * r;  // nearest multiple
      if (target < r) target = r;
      if (target > graph.spaces[s0].size) target = kept + (r - kept % r);
      std::vector<size_t> removed_units;
      for (const auto& [gg, u] : order) {
        if (gg != static_cast<int>(g)) continue;
        bool is_removed = true;
        for (const ChannelRef& m : graph.groups[g].units[u].members) {
          const auto& v = result.plan.removed[m.space];
          is_removed = is_removed && std::binary_search(v.begin(), v.end(), m.channel);
        }
        if (is_removed) removed_units.push_back(u);
      }
      // removed_units is in ascending score order: give back from the end,
      // or remove more from the remaining when rounding down.
      int64_t cur = kept;
      while (cur < target && !removed_units.empty()) {
        const ChannelUnit& unit = graph.groups[g].units[removed_units.back()];
        removed_units.pop_back();
        for (const ChannelRef& m : unit.members) {
          auto& v = result.plan.removed[m.space];
          v.erase(std::lower_bound(v.begin(), v.end(), m.channel));
          --removed_from[m.space];
        }
        --taken[g];
        cur = graph.spaces[s0].size - removed_from[s0];
      }
      for (const auto& [gg, u] : order) {
        if (cur <= target) break;
        if (gg != static_cast<int>(g) || taken[g] >= cap[g]) continue;
        const ChannelUnit& unit = graph.groups[g].units[u];
        bool already = true;
        for (const ChannelRef& m : unit.members) {
          const auto& v = result.plan.removed[m.space];
          already = already && std::binary_search(v.begin(), v.end(), m.channel);
        }
        if (already || !can_remove(unit)) continue;
        remove(unit);
        ++taken[g];
        cur = graph.spaces[s0].size - removed_from[s0];
      }
    }
  }
  for (auto it = result.plan.removed.begin(); it != result.plan.removed.end();) {
    it = it->second.empty() ? result.plan.removed.erase(it) : std::next(it);
  }

  for (const ChannelSpace& s : graph.spaces) {
    LayerPlan l;
    l.module_path = s.module_path.empty() ? "(root)" : s.module_path;
    l.op_type = s.op_type;
    l.group = s.group;
    l.channels = s.size;
    l.kept = s.size - removed_from[s.id];
    l.selected = choice[s.id].selected;
    l.ratio_asked = choice[s.id].selected ? map_ratio(choice[s.id].ratio) : 0;
    const GroupChoice& c = gc[s.group];
    if (choice[s.id].excluded) {
      l.note = "excluded";
    } else if (!c.note.empty()) {
      l.note = c.note;
    } else if (graph.groups[s.group].prunable_units() == 0) {
      l.note = absl::StrCat("kept: ", s.blocked_reason);
    } else if (!l.selected && l.kept < l.channels) {
      l.note = "pruned with its group";
    } else if (!l.selected) {
      l.note = "not selected";
    }
    result.layers.push_back(std::move(l));
  }
  return result;
}

std::string FormatPlan(const PlanResult& result) {
  size_t w = 5, tw = 4;
  for (const LayerPlan& l : result.layers) {
    w = std::max(w, l.module_path.size());
    tw = std::max(tw, l.op_type.size());
  }
  std::string out = absl::StrFormat("%-*s  %-*s  %5s  %8s  %8s  %6s  %s\n", w, "layer", tw, "type", "group",
                                    "channels", "kept", "pruned", "note");
  int64_t before = 0, after = 0;
  for (const LayerPlan& l : result.layers) {
    before += l.channels;
    after += l.kept;
    absl::StrAppendFormat(&out, "%-*s  %-*s  %5d  %8d  %8d  %5.1f%%  %s\n", w, l.module_path, tw, l.op_type,
                          l.group, l.channels, l.kept,
                          100.0 * static_cast<double>(l.channels - l.kept) / std::max<int64_t>(1, l.channels),
                          l.note);
  }
  absl::StrAppendFormat(&out, "total channels %d → %d (%.1f%% removed)\n", before, after,
                        100.0 * static_cast<double>(before - after) / std::max<int64_t>(1, before));
  return out;
}

}  // namespace slimfit
