// Engine::Search: the dependency groups, the sensitivity pass, allocations and their widths, pruned candidates.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/interrupt.h"
#include "common/status_macros.h"
#include "graph/depth.h"
#include "graph/freeze.h"
#include "pruners/plan.h"
#include "pruners/prune.h"
#include "search/budget.h"
#include "search/engine_search.h"
#include "search/widths.h"

namespace slimfit {

absl::Status Engine::Search::FindGroups() {
  ASSIGN_OR_RETURN(Model copy, e_.model_.Clone());
  ASSIGN_OR_RETURN(DependencyGraph graph, AnalyzeModel(copy, *e_.forward_pass_), "analysing the model");
  PruningConfig dry;
  dry.mutable_l1_filter();
  dry.set_ratio(0.5);
  ASSIGN_OR_RETURN(PlanResult plan, MakePlan(graph, dry, nullptr));
  std::map<int, bool> seen;
  for (const LayerPlan& l : plan.layers) {
    if (!l.selected || l.kept >= l.channels || seen[l.group]) continue;
    seen[l.group] = true;
    groups_.push_back(PruneGroup{l.module_path, l.channels, {{0.0, 0.0}}});
  }
  // Whole residual blocks compete with channels (compression.remove_blocks).
  if (comp_.remove_blocks()) {
    ASSIGN_OR_RETURN(std::vector<ResidualBlock> blocks, FindResidualBlocks(e_.model_));
    for (const ResidualBlock& b : blocks) {
      groups_.push_back(PruneGroup{DepthKey(b.path), 0, {{0.0, 0.0}}, /*whole=*/true});
    }
  }
  if (groups_.empty()) {
    return absl::FailedPreconditionError(
        "the model has no prunable channel group (every conv / linear layer is tied to the output or to an op "
        "the dependency analysis does not handle; `bazel run //tools:inspect -- --model=...` shows why) and no "
        "removable residual block");
  }
  return absl::OkStatus();
}

double Engine::Search::FirstSensitivityRatio(const PruneGroup& g, const std::vector<double>& ratios) {
  double first = 0;
  for (double r : ratios) {
    if (g.whole || r <= kTimedRatio + 1e-9) first = std::max(first, r);
  }
  return first > 0 || ratios.empty() ? first : *std::min_element(ratios.begin(), ratios.end());
}

double Engine::Search::TimedRatio(const PruneGroup& g, const std::vector<double>& ratios) const {
  if (comp_.objective() != CompressionConfig::LATENCY || !comp_.tuning().latency_aware()) return 0;
  return FirstSensitivityRatio(g, ratios);
}

absl::StatusOr<Model*> Engine::Search::FrozenReference() {
  if (!frozen_reference_) {
    ASSIGN_OR_RETURN(Model f, FrozenForInference(e_.model_), "freezing the reference to time it");
    frozen_reference_.emplace(std::move(f));
  }
  return &*frozen_reference_;
}

absl::StatusOr<double> Engine::Search::LatencyVsReference(const Model& cut) {
  ASSIGN_OR_RETURN(Model * frozen_reference, FrozenReference());
  ASSIGN_OR_RETURN(Model frozen, FrozenForInference(cut), "freezing a sensitivity cut to time it");
  ASSIGN_OR_RETURN(std::vector<CandidateRecord> timed,
                   TimedInTurns({frozen_reference, &frozen}, /*rounds=*/2, /*runs=*/8), "timing a sensitivity cut");
  return ObjectiveValue(CompressionConfig::LATENCY, /*reference=*/timed[0], timed[1]);
}

void Engine::Search::WeighByLatency(const std::map<std::string, double>& savings) {
  std::vector<PruneGroup*> weighed;
  std::vector<double> slopes;
  for (PruneGroup& g : groups_) {
    auto it = savings.find(g.path);
    if (it == savings.end()) continue;
    weighed.push_back(&g);
    slopes.push_back(it->second);
  }
  if (weighed.empty()) return;
  const std::vector<double> w = ToleranceWeights(slopes);
  std::vector<std::string> parts;
  for (size_t i = 0; i < weighed.size(); ++i) {
    weighed[i]->weight = w[i];
    parts.push_back(absl::StrFormat("%s x%.2f", weighed[i]->path, w[i]));
  }
  Say(absl::StrCat("  latency-aware allocation: each group's tolerance x (the latency its cut saved / the mean): ",
                   absl::StrJoin(parts, ", ")));
}

absl::StatusOr<CandidateRecord> Engine::Search::SensitivityPoint(const PruneGroup& g, double r, const std::string& key,
                                                                 bool timed) {
  const auto t0 = Clock::now();
  ASSIGN_OR_RETURN(Model cut, Cut(e_.model_, comp_.pruners(0), {{g.path, r}}, sensitivity_.bn_batches, true));
  CandidateRecord n;
  n.set_key(key);
  n.set_phase("sensitivity");
  n.set_pruner(comp_.pruners(0));
  n.set_description(g.whole ? absl::StrCat("residual block ", BlockOfDepthKey(g.path), " removed")
                            : absl::StrFormat("%s alone at %.2f", g.path, r));
  (*n.mutable_ratios())[g.path] = r;
  ASSIGN_OR_RETURN(Metric m, Evaluate(cut, sensitivity_.loader.get(), "evaluation on a sample of eval_split"));
  n.set_eval_metric(m.value);
  n.set_eval_samples(sensitivity_.samples);
  n.set_qualifies(sensitivity_.DropOf(*this, m.value) <= comp_.delta() + 1e-9);
  ASSIGN_OR_RETURN(int64_t macs, Macs(cut));
  n.set_macs(macs);
  if (timed) {
    ASSIGN_OR_RETURN(double vs, LatencyVsReference(cut));
    n.set_latency_vs_reference(vs);
  }
  n.set_seconds(SecondsSince(t0));
  return n;
}

absl::Status Engine::Search::ChooseSensitivityScoring(int points, int timed) {
  constexpr int kBnBatches = 20;
  const int64_t whole = e_.data_.eval->num_samples();
  const int64_t asked = comp_.tuning().sensitivity_samples();
  if (asked > 0 && !e_.data_.eval_sample) {
    return FieldErrorWithCode(absl::StatusCode::kFailedPrecondition, "compression.tuning.sensitivity_samples",
                              "needs EngineData.eval_sample (a loader over a sample of the eval split), which the "
                              "caller did not give",
                              absl::StrCat(asked), "0 or -1 without EngineData.eval_sample");
  }
  const std::string key = absl::StrCat("sensitivity_samples|", asked == 0 ? std::string("auto") : absl::StrCat(asked));
  const CandidateRecord* rec = Reuse(key);
  if (rec == nullptr) {
    const auto t0 = Clock::now();
    // One point on the whole split: the cut, its batch norm on the fewest
    // batches and its counts (timed on the first group: what a point costs
    // before scoring, loaders' start-up included), a pass over the split,
    // and batch norm on kBnBatches train batches (forward passes as costly,
    // per sample, as the evaluation's; the timed floor is counted twice, so
    // the estimate errs long).
    const double bn_seconds = eval_seconds_ * kBnBatches * e_.data_.train->batch_size() / std::max<int64_t>(1, whole);
    double cut_seconds = 0;
    const double seconds =
        comp_.time_budget_minutes() <= 0
            ? 0
            : comp_.tuning().sensitivity_budget_fraction() * comp_.time_budget_minutes() * 60 - SecondsSince(start_);
    const int per_rank = (points + world_size() - 1) / world_size();
    SensitivityScoring scoring{whole, kBnBatches};
    if (asked > 0) {
      scoring = {std::min(asked, whole), SensitivityBnBatches(std::min(asked, whole), whole, kBnBatches)};
    } else if (asked == 0 && e_.data_.eval_sample && seconds > 0 && per_rank > 0) {
      const PruneGroup& g = groups_.front();
      ASSIGN_OR_RETURN(
          Model cut, Cut(e_.model_, comp_.pruners(0), {{g.path, g.whole ? 1.0 : 0.5}}, kMinSensitivityBnBatches, true));
      RETURN_IF_ERROR(Macs(cut).status());
      cut_seconds = SecondsSince(t0);
      if (timed > 0) {  // the timed points' share of a timing, spread over all
        const auto t1 = Clock::now();
        RETURN_IF_ERROR(LatencyVsReference(cut).status());
        cut_seconds += SecondsSince(t1) * timed / std::max(1, points);
      }
      scoring = ScaleSensitivity(per_rank, seconds, cut_seconds, eval_seconds_, bn_seconds, whole, kBnBatches);
    }
    CandidateRecord n;
    n.set_key(key);
    n.set_phase("sensitivity_samples");
    n.set_qualifies(true);
    if (scoring.samples < whole) {
      n.set_eval_samples(scoring.samples);
      ASSIGN_OR_RETURN(std::unique_ptr<DataLoader> loader, e_.data_.eval_sample(scoring.samples, c_.seed()),
                       "a sample of evaluation.eval_split");
      ASSIGN_OR_RETURN(Model copy, e_.model_.Clone());
      ASSIGN_OR_RETURN(Metric m, Evaluate(copy, loader.get(), "evaluation on a sample of eval_split"));
      n.set_eval_metric(m.value);
    } else {
      n.set_eval_metric(reference_.eval_metric());
    }
    const std::string why =
        asked > 0 ? "as compression.tuning.sensitivity_samples asks"
                  : absl::StrFormat("%d points%s at ~%.1f s each on the whole split would not fit in %s", per_rank,
                                    world_size() > 1 ? " a rank" : "", cut_seconds + eval_seconds_ + bn_seconds,
                                    Hms(std::max(0.0, seconds)));
    n.set_description(
        scoring.samples < whole
            ? absl::StrFormat("sensitivity scored on a seeded sample of %lld of %lld eval samples, batch norm "
                              "re-estimated on %d batches (%s)",
                              static_cast<long long>(scoring.samples), static_cast<long long>(whole),
                              scoring.bn_batches, why)
            : absl::StrFormat("sensitivity scored on the whole eval split (%lld samples), batch norm re-estimated "
                              "on %d batches",
                              static_cast<long long>(whole), kBnBatches));
    n.set_seconds(SecondsSince(t0));
    RETURN_IF_ERROR(Keep(n, nullptr));
    rec = store_->Find(key);
  }
  sensitivity_ = SensitivitySample{};
  sensitivity_.reference = rec->eval_metric();  // the reference's, on the rows the points are scored on
  if (rec->eval_samples() > 0 && rec->eval_samples() < whole) {
    sensitivity_.samples = rec->eval_samples();
    sensitivity_.bn_batches = SensitivityBnBatches(rec->eval_samples(), whole, kBnBatches);
    ASSIGN_OR_RETURN(sensitivity_.loader, e_.data_.eval_sample(rec->eval_samples(), c_.seed()),
                     "a sample of evaluation.eval_split");
    Say(absl::StrCat("  ", rec->description()));
  }
  return absl::OkStatus();
}

absl::Status Engine::Search::Sensitivity() {
  const std::vector<double> channel_ratios =
      comp_.deepsearch() ? std::vector<double>{0.2, 0.4, 0.6, 0.8, 0.9} : std::vector<double>{0.25, 0.5, 0.75};
  // A block is removed whole or kept: one point.
  auto ratios_of = [&](const PruneGroup& g) { return g.whole ? std::vector<double>{1.0} : channel_ratios; };
  int total = 0, blocks = 0;
  for (const PruneGroup& g : groups_) {
    total += static_cast<int>(ratios_of(g).size());
    blocks += g.whole;
  }
  Phase(
      "sensitivity",
      absl::StrFormat(
          "%zu prunable groups x %zu ratios%s, pruner %s, no fine-tuning%s", groups_.size() - blocks,
          channel_ratios.size(),
          blocks > 0 ? absl::StrFormat(", %d residual block(s) removed one at a time", blocks) : std::string(),
          comp_.pruners(0), distributed() ? absl::StrFormat(", over %d ranks", group().world_size()) : std::string()));
  // Objective LATENCY: one point per group is also timed (its key says so).
  auto timed = [&](const PruneGroup& g, double r) { return r > 0 && r == TimedRatio(g, ratios_of(g)); };
  auto key_of = [&](const PruneGroup& g, double r) {
    return absl::StrFormat("sensitivity|%s|%s|%.2f%s%s", comp_.pruners(0), g.path, r,
                           sensitivity_.samples > 0 ? absl::StrCat("|n=", sensitivity_.samples) : std::string(),
                           timed(g, r) ? "|timed" : "");
  };
  // Points still to score (on the whole split: a run from before sampling
  // existed reuses them).
  int missing = 0, missing_timed = 0;
  for (const PruneGroup& g : groups_) {
    for (double r : ratios_of(g)) {
      const bool absent = store_->Find(key_of(g, r)) == nullptr;
      missing += absent;
      missing_timed += absent && timed(g, r);
    }
  }
  RETURN_IF_ERROR(ChooseSensitivityScoring(missing, missing_timed));
  if (distributed()) {
    ASSIGN_OR_RETURN(bool fits, Fits(0));
    if (fits) {
      std::vector<Task> tasks;
      for (const PruneGroup& g : groups_) {
        for (double r : ratios_of(g)) {
          tasks.push_back(
              Task{key_of(g, r), [this, &g, r, key = key_of(g, r), t = timed(g, r)]() -> absl::StatusOr<MadeRecord> {
                     ASSIGN_OR_RETURN(CandidateRecord rec, SensitivityPoint(g, r, key, t));
                     return MadeRecord{std::move(rec), std::nullopt};
                   }});
        }
      }
      RETURN_IF_ERROR(PrefetchTasks(std::move(tasks)));
    }
  }
  // Coarse to fine: every group's first point (its largest ratio up to
  // kTimedRatio, the one timed; a block's removal) before any group's
  // second, then the other ratios from the largest down, a round each. A
  // pass its share cuts short still leaves every group a curve that ends at
  // its largest scored ratio and is linear from (0, 0) to it: a drop curve
  // is convex, so the allocation errs towards cutting less. (Group by
  // group, the groups last in the graph stayed unpruned.)
  std::vector<std::vector<double>> orders;  // each group's ratios in the order they are scored
  size_t rounds = 0;
  for (const PruneGroup& g : groups_) {
    const double first = FirstSensitivityRatio(g, ratios_of(g));
    std::vector<double> order{first};
    for (double r : ratios_of(g)) {
      if (r != first) order.push_back(r);
    }
    std::sort(order.begin() + 1, order.end(), std::greater<double>());
    rounds = std::max(rounds, order.size());
    orders.push_back(std::move(order));
  }
  int done = 0;
  const double share = comp_.tuning().sensitivity_budget_fraction();
  std::map<std::string, double> savings;  // group → latency saved per unit of ratio (timed groups)
  auto say_curve = [&](const PruneGroup& g, const std::string& suffix) {
    std::vector<std::string> pts;
    for (size_t i = 1; i < g.curve.size(); ++i) {
      pts.push_back(g.whole ? absl::StrFormat("removed:%+.2f", -g.curve[i].second)
                            : absl::StrFormat("%.2f:%+.2f", g.curve[i].first, -g.curve[i].second));
    }
    if (auto it = savings.find(g.path); it != savings.end()) {
      const double r = TimedRatio(g, ratios_of(g));
      pts.push_back(absl::StrFormat("(latency at %.2f: -%.1f%%)", r, 100 * it->second * r));
    }
    Say(absl::StrFormat("  %d/%d  %-24s %s  %s%s", done, total, g.path,
                        g.whole ? std::string("block") : absl::StrCat(g.channels, " ch"), absl::StrJoin(pts, "  "),
                        suffix));
  };
  // Whether another point fits in the pass's share; if not, says why and
  // what `then` happens.
  auto fits = [&](const std::string& then) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(bool in_share, FitsShare(0, share));
    if (!in_share) {
      Say(absl::StrCat("  ",
                       InterruptRequested() || stopped_elsewhere_
                           ? StopReason()
                           : absl::StrFormat("its share of the time budget (%.0f%%) is spent", 100 * share),
                       ": ", then));
    }
    return in_share;
  };
  // Scores (or reuses) g's point at r and adds it to g's curve.
  auto score = [&](PruneGroup& g, double r) -> absl::Status {
    ++done;
    const std::string key = key_of(g, r);
    const CandidateRecord* rec = Reuse(key);
    if (rec == nullptr) {
      if (auto f = failed_.find(key); f != failed_.end()) return f->second;
      ASSIGN_OR_RETURN(CandidateRecord n, SensitivityPoint(g, r, key, timed(g, r)));
      RETURN_IF_ERROR(Keep(n, nullptr));
      rec = store_->Find(key);
    }
    g.curve.emplace_back(r, sensitivity_.DropOf(*this, rec->eval_metric()));
    std::sort(g.curve.begin(), g.curve.end());
    if (timed(g, r)) savings[g.path] = LatencySavingSlope(r, rec->latency_vs_reference());
    return absl::OkStatus();
  };
  bool stopped = false;
  for (size_t round = 0; round < rounds && !stopped; ++round) {
    if (rounds > 1 && round < 2) {
      Say(round == 0
              ? absl::StrCat("  first round: each group at its largest ratio", blocks > 0 ? ", each block removed" : "")
              : "  the other ratios, a round each from the largest down (a group's curve when complete)");
    }
    for (size_t i = 0; i < groups_.size(); ++i) {
      if (round >= orders[i].size()) continue;
      ASSIGN_OR_RETURN(
          const bool fit,
          fits(absl::StrFormat("sensitivity analysis stops after %d of %d points; each group's curve ends at its "
                               "largest scored ratio%s",
                               done, total, round == 0 ? ", groups not analysed stay unpruned" : "")));
      if (!fit) {
        stopped = true;
        break;
      }
      RETURN_IF_ERROR(score(groups_[i], orders[i][round]));
      if (round == 0 || round + 1 == orders[i].size()) say_curve(groups_[i], "");
    }
  }
  // A group that stays within delta at its largest ratio gets one more
  // point at kFlatRatio: a curve ends at its largest scored ratio, which
  // caps the allocation there (mobilenetv2_small's block2.expand_conv, 96
  // channels, lost 0.88 at 0.75).
  bool said_flat = false;
  for (size_t i = 0; i < groups_.size() && !stopped; ++i) {
    PruneGroup& g = groups_[i];
    if (g.whole || g.curve.size() < 2) continue;
    const auto [last_ratio, last_drop] = g.curve.back();
    if (last_ratio >= kFlatRatio - 1e-9 || kFlatRatio > comp_.tuning().max_ratio() + 1e-9 ||
        last_drop > comp_.delta()) {
      continue;
    }
    if (!said_flat) {
      Say(absl::StrFormat("  groups within delta at %.2f: one more point each, at %.2f", last_ratio, kFlatRatio));
      said_flat = true;
    }
    ASSIGN_OR_RETURN(const bool fit, fits("no more points"));
    if (!fit) {
      stopped = true;
      break;
    }
    ++total;
    RETURN_IF_ERROR(score(g, kFlatRatio));
    say_curve(g, "");
  }
  if (stopped) {  // the groups a later round had begun on, as far as they got
    for (size_t i = 0; i < groups_.size(); ++i) {
      const PruneGroup& g = groups_[i];
      if (g.curve.size() > 2 && g.curve.size() < orders[i].size() + 1) say_curve(g, "  (not every ratio)");
    }
  }
  WeighByLatency(savings);
  EndPhase();
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, double>> Engine::Search::AllocateForFactor(double factor) {
  return AllocateForMacs(groups_, reference_.macs() / factor, [&](const Ratios& ratios) -> absl::StatusOr<int64_t> {
    const std::string key = RatiosKey(ratios);
    auto it = macs_cache_.find(key);
    if (it != macs_cache_.end()) return it->second;
    ASSIGN_OR_RETURN(Model cut, Cut(e_.model_, "l1_filter", ratios, 0, false));
    ASSIGN_OR_RETURN(int64_t macs, Macs(cut));
    macs_cache_[key] = macs;
    return macs;
  });
}

absl::StatusOr<std::map<std::string, double>> Engine::Search::FastestWidths(
    const std::map<std::string, double>& ratios) {
  std::vector<int> multiples;
  for (int m : comp_.tuning().round_to()) {
    if (m > 1) multiples.push_back(m);
  }
  if (multiples.empty() || !IsLatencyObjective(comp_.objective())) return ratios;
  const std::string key = absl::StrCat("widths|", RatiosKey(ratios));
  // Blocks (channels 0) pass through every rounding as they are.
  std::map<std::string, int64_t> channels;
  for (const PruneGroup& g : groups_) channels[g.path] = g.channels;
  // Every group's ratio, none rounded (a record keeps only nonzero ones).
  auto as_allocated = [&](const Ratios& r) { return RoundKeptUp(r, channels, /*multiple=*/1); };
  if (const CandidateRecord* r = Reuse(key)) return as_allocated({r->ratios().begin(), r->ratios().end()});
  const auto t0 = Clock::now();
  std::vector<Ratios> shapes{as_allocated(ratios)};
  std::vector<WidthVariant> variants{{1, 0, 0}};
  for (int m : multiples) {
    std::map<std::string, double> up = RoundKeptUp(ratios, channels, m);
    if (std::find(shapes.begin(), shapes.end(), up) != shapes.end()) continue;
    // A rounding that keeps every channel is no cut: as fast as the
    // reference, it would otherwise win as the variant with the most MACs
    // (a probe scored as the reference itself).
    if (std::none_of(up.begin(), up.end(), [](const auto& kv) { return kv.second > 0; })) continue;
    shapes.push_back(std::move(up));
    variants.push_back({m, 0, 0});
  }
  std::vector<CandidateRecord> measured(shapes.size());
  if (shapes.size() > 1) {
    std::vector<Model> frozen;
    for (size_t i = 0; i < shapes.size(); ++i) {
      ASSIGN_OR_RETURN(Model cut, Cut(e_.model_, "l1_filter", shapes[i], 0, false));
      ASSIGN_OR_RETURN(int64_t macs, Macs(cut));
      ASSIGN_OR_RETURN(Model f, FrozenForInference(cut));
      frozen.push_back(std::move(f));
      measured[i].set_macs(macs);
      variants[i].macs = macs;
    }
    std::vector<Model*> deployed;
    for (Model& f : frozen) deployed.push_back(&f);
    ASSIGN_OR_RETURN(std::vector<CandidateRecord> timed, TimedInTurns(deployed, /*rounds=*/3));
    for (size_t i = 0; i < shapes.size(); ++i) {
      timed[i].set_macs(measured[i].macs());
      measured[i] = timed[i];
      variants[i].latency = Objective(measured[i]);
    }
  }
  const size_t pick = shapes.size() > 1 ? PickWidthVariant(variants) : 0;
  CandidateRecord rec = measured[pick];
  rec.set_key(key);
  rec.set_phase("widths");
  for (const auto& [path, r] : shapes[pick]) (*rec.mutable_ratios())[path] = r;
  std::vector<std::string> tried;
  for (size_t i = 0; i < variants.size(); ++i) {
    tried.push_back(absl::StrFormat(
        "%s %.3g", variants[i].multiple > 1 ? absl::StrCat("x", variants[i].multiple) : std::string("as allocated"),
        variants[i].latency));
  }
  rec.set_description(
      shapes.size() == 1
          ? std::string("widths as allocated (already multiples of tuning.round_to)")
          : absl::StrFormat("widths %s (latency vs the reference: %s; %.1fx fewer MACs)",
                            variants[pick].multiple > 1
                                ? absl::StrCat("rounded up to multiples of ", variants[pick].multiple)
                                : std::string("as allocated"),
                            absl::StrJoin(tried, ", "),
                            static_cast<double>(reference_.macs()) / std::max<int64_t>(1, variants[pick].macs)));
  rec.set_seconds(SecondsSince(t0));
  RETURN_IF_ERROR(Keep(rec, nullptr));
  const CandidateRecord* kept = store_->Find(key);
  if (shapes.size() > 1) Say(absl::StrCat("    ", kept->description()));
  return as_allocated({kept->ratios().begin(), kept->ratios().end()});
}

absl::StatusOr<Engine::Search::Task> Engine::Search::CandidateTask(const std::string& pruner, double factor,
                                                                   const CandidateRecord* from) {
  ASSIGN_OR_RETURN(auto allocated, AllocateForFactor(factor));
  ASSIGN_OR_RETURN(auto ratios, FastestWidths(allocated));
  // Cutting a pruned model further: each group's ratio of what is left (the
  // allocation's ratios are of the reference's channels).
  const Ratios cut_ratios = from == nullptr ? ratios
                                            : RatiosOfWhatIsLeft(ratios, {from->ratios().begin(), from->ratios().end()},
                                                                 groups_, comp_.tuning().max_ratio());
  Task task;
  task.key =
      absl::StrFormat("candidate|%s|%s|e%d%s", pruner, RatiosKey(ratios), comp_.candidate_epochs(), TrainingKey());
  if (from != nullptr) absl::StrAppend(&task.key, "|from:", CandidateFileStem(from->key()));
  std::optional<CandidateRecord> base;
  if (from != nullptr) base = *from;
  task.make = [this, pruner, factor, ratios, cut_ratios, base, key = task.key]() -> absl::StatusOr<MadeRecord> {
    const auto t0 = Clock::now();
    std::optional<Model> start;
    if (base) {
      ASSIGN_OR_RETURN(Model m, LoadStored(*base));
      start.emplace(std::move(m));
    }
    ASSIGN_OR_RETURN(Model cut, Cut(start ? *start : e_.model_, pruner, cut_ratios, 50, true));
    const auto t1 = Clock::now();
    const double filled = teacher_stats_.cached_forward_seconds;
    RETURN_IF_ERROR(FineTune(cut, comp_.candidate_epochs(), 0), "fine-tuning a candidate");
    if (comp_.candidate_epochs() > 0) {
      const double took = SecondsSince(t1);
      slowest_epoch_seconds_ = std::max(slowest_epoch_seconds_, took / comp_.candidate_epochs());
      // The teacher's runs it cached are lookups for the next candidate
      // (resnet_small: the first link took 110 s, the next 74 s).
      const double cache_fill = teacher_stats_.cached_forward_seconds - filled;
      epoch_seconds_ = std::max(1e-3, took - cache_fill) / comp_.candidate_epochs();
    }
    CandidateRecord rec;
    rec.set_key(key);
    rec.set_phase("candidate");
    rec.set_pruner(pruner);
    rec.set_mac_factor(factor);
    rec.set_epochs((base ? base->epochs() : 0) + comp_.candidate_epochs());
    rec.set_lr_factor(lr_factor_);
    if (comp_.candidate_epochs() > 0) rec.set_epoch_seconds(epoch_seconds_);
    for (const auto& [path, r] : ratios) (*rec.mutable_ratios())[path] = r;
    RETURN_IF_ERROR(Measure(cut, nullptr, &rec));
    int blocks = 0;
    for (const auto& [path, r] : ratios) blocks += IsDepthKey(path) && r >= 1;
    rec.set_description(absl::StrFormat(
        "%s, %.1fx fewer MACs (aimed at %.1fx)%s, %d epoch(s)%s", pruner,
        static_cast<double>(reference_.macs()) / std::max<int64_t>(1, rec.macs()), factor,
        blocks > 0 ? absl::StrFormat(", %d residual block(s) removed", blocks) : std::string(), rec.epochs(),
        base ? absl::StrFormat(", cut further from #%d", base->sequence()) : std::string()));
    rec.set_seconds(SecondsSince(t0));
    return MadeRecord{std::move(rec), std::move(cut)};
  };
  return task;
}

absl::StatusOr<double> Engine::Search::MaxMacFactor() {
  // The channel curves bound the search: blocks are another way to reach a
  // reduction, not a reason to aim higher (every block gone on top of every
  // channel the curves allow would put the first probes far past delta).
  ASSIGN_OR_RETURN(auto most, AllocateForFactor(1e9));
  for (auto& [path, r] : most) {
    if (IsDepthKey(path)) r = 0;
  }
  ASSIGN_OR_RETURN(Model cut, Cut(e_.model_, "l1_filter", most, 0, false));
  ASSIGN_OR_RETURN(int64_t least_macs, Macs(cut));
  return std::max(1.0, static_cast<double>(reference_.macs()) / std::max<int64_t>(1, least_macs));
}

absl::Status Engine::Search::Prefetch(const std::vector<std::pair<std::string, double>>& candidates) {
  if (!distributed()) return absl::OkStatus();
  std::vector<Task> tasks;
  for (const auto& [pruner, factor] : candidates) {
    ASSIGN_OR_RETURN(Task t, CandidateTask(pruner, factor));
    tasks.push_back(std::move(t));
  }
  return PrefetchTasks(std::move(tasks));
}

absl::StatusOr<CandidateRecord> Engine::Search::CandidateFrom(const CandidateRecord& base, const std::string& pruner,
                                                              double factor) {
  ASSIGN_OR_RETURN(Task task, CandidateTask(pruner, factor, &base));
  return Made(task);
}

absl::StatusOr<CandidateRecord> Engine::Search::Candidate(const std::string& pruner, double factor) {
  ASSIGN_OR_RETURN(Task task, CandidateTask(pruner, factor));
  return Made(task);
}

absl::StatusOr<CandidateRecord> Engine::Search::Made(const Task& task) {
  if (const CandidateRecord* r = Reuse(task.key)) return *r;
  if (auto f = failed_.find(task.key); f != failed_.end()) return f->second;
  ASSIGN_OR_RETURN(MadeRecord made, task.make());
  RETURN_IF_ERROR(Keep(made.record, made.model ? &*made.model : nullptr));
  RETURN_IF_ERROR(AgreeTimings());
  return *store_->Find(task.key);
}

}  // namespace slimfit
