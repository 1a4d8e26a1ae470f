#include "search/setup.h"

#include <ATen/ATen.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/threads.h"
#include "data/sharded_loader.h"
#include "data/splits.h"
#include "distributed/data_parallel.h"
#include "model/device.h"
#include "search/candidate_store.h"
#include "search/experiment.h"
#include "trainer/components.h"
#include "trainer/trainer.h"

namespace slimfit {
namespace {

// The training recipe of a zoo reference: reference_training, else the
// full_trainer for reference_epochs, evaluated every epoch, best kept.
TrainerConfig ReferenceRecipe(const Experiment& e, int64_t steps_per_epoch) {
  TrainerConfig t = e.model().has_reference_training() ? e.model().reference_training() : e.full_trainer();
  if (!e.model().has_reference_training()) t.set_epochs(e.model().reference_epochs());
  if (!t.has_optimizer()) *t.mutable_optimizer() = e.full_trainer().optimizer();
  t.set_eval_key(e.evaluation().eval_key());
  t.set_eval_split(e.evaluation().eval_split());
  if (t.seed() == 0) t.set_seed(e.seed());
  FillScheduleLength(&t, steps_per_epoch);
  return t;
}

}  // namespace

absl::StatusOr<EngineInputs> BuildEngineInputs(const Experiment& experiment, const SetupOptions& options,
                                               Collective* group) {
  const bool parallel = IsDistributed(group);
  const bool root = !parallel || group->is_root();
  const Experiment e = WithDefaults(experiment);
  RETURN_IF_ERROR(ValidateExperiment(e));
  ConfigureThreads(e.threads());
  EngineInputs in;
  // The loaders and components, built as the tools build them.
  ASSIGN_OR_RETURN(in.device, ResolveDevice(e.device()), AtField("device"));
  ComponentsConfig parts_config{&e.data(), &e.forward_pass(), &e.loss(), &e.evaluation()};
  parts_config.device = in.device;
  parts_config.train_loader = true;
  parts_config.test_loader = true;  // scored beside eval_split, never to choose
  ASSIGN_OR_RETURN(Components parts, BuildComponents(parts_config));
  const Splits& splits = parts.splits;
  in.data.train = std::move(parts.train);
  in.data.eval = std::move(parts.eval);
  in.data.test = std::move(parts.test);
  in.forward_pass = std::move(parts.forward_pass);
  in.loss = std::move(parts.loss);
  in.evaluator = std::move(parts.evaluator);
  const DataConfig data = DataForDevice(e.data(), in.device);
  in.data.eval_sample = [data, splits, split = parts.eval_split](int64_t samples, uint64_t seed) {
    return MakeSampleLoader(data, splits, split, samples, seed);
  };
  if (parallel) {
    ASSIGN_OR_RETURN(auto train, MakeLoader(data, splits, "train"), AtField("data"));
    ASSIGN_OR_RETURN(in.data.train_shard, ShardedLoader::Create(std::move(train), group->rank(), group->world_size()));
    ASSIGN_OR_RETURN(auto eval, MakeLoader(data, splits, parts.eval_split), AtField("evaluation.eval_split"));
    ASSIGN_OR_RETURN(in.data.eval_shard, ShardedLoader::Create(std::move(eval), group->rank(), group->world_size()));
  }

  if (e.model().source_case() == ModelSpec::kPath) {
    ASSIGN_OR_RETURN(Model m, Model::Load(e.model().path()), AtField("model.path"));

    in.model.emplace(std::move(m));
    in.reference_source = absl::StrCat("loaded ", e.model().path());
    return in;
  }
  // A zoo model: trained once per recipe, cached.
  ASSIGN_OR_RETURN(Batch all, ShapeProbe(*splits.train), "data");
  ZooOptions zoo = ZooShapeFromBatch(all);
  zoo.width_multiplier = e.model().width_multiplier();
  zoo.seed = e.seed();
  const TrainerConfig recipe = ReferenceRecipe(e, in.data.train->num_batches());
  Experiment identity;  // everything that shapes the trained reference
  *identity.mutable_model() = e.model();
  *identity.mutable_data() = e.data();
  *identity.mutable_forward_pass() = e.forward_pass();
  *identity.mutable_loss() = e.loss();
  *identity.mutable_full_trainer() = recipe;
  identity.mutable_full_trainer()->clear_progress();
  identity.set_seed(e.seed());
  const std::string text = ToTextProto(identity);
  const std::string dir =
      absl::StrCat(options.references_dir, "/", e.model().zoo(), "_", CandidateFileStem(text));
  const std::string path = dir + "/model.pt";
  // Distributed: rank 0's cache decides; the others get its weights.
  bool cached = RegularFileSize(path).ok();
  if (parallel) {
    std::vector<at::Tensor> flag{at::full({1}, root && cached ? 1 : 0, at::kLong)};
    RETURN_IF_ERROR(group->Broadcast(flag, 0), "agreeing on the cached reference");
    cached = flag[0].item<int64_t>() == 1;
  }
  if (cached) {
    ASSIGN_OR_RETURN(Model m, root ? Model::Load(path) : CreateZooModel(e.model().zoo(), zoo),
                     root ? "the cached reference" : "model.zoo");

    if (parallel) RETURN_IF_ERROR(DataParallel(*group).BroadcastModel(m), "sending the cached reference");
    in.model.emplace(std::move(m));
    in.reference_source = absl::StrCat("cached ", path);
    return in;
  }
  if (root) {
    std::printf("reference: training %s for %d epoch(s)%s (once; cached in %s)\n", e.model().zoo().c_str(),
                recipe.epochs(), parallel ? absl::StrFormat(" on %d ranks", group->world_size()).c_str() : "",
                dir.c_str());
    std::fflush(stdout);
    RETURN_IF_ERROR(CreateDirectories(dir));
    RETURN_IF_ERROR(WriteFileAtomically(dir + "/recipe.pbtxt", text));
  }
  ASSIGN_OR_RETURN(Model m, CreateZooModel(e.model().zoo(), zoo), AtField("model.zoo"));
  TrainerConfig t = recipe;
  t.set_metrics_path(dir + "/metrics.jsonl");
  TrainerDeps deps{in.loss.get(), in.evaluator.get(), in.data.train.get(), in.data.eval.get()};
  deps.device = in.device;
  if (parallel) {
    deps.train = in.data.train_shard.get();
    deps.eval_shard = in.data.eval_shard.get();
    deps.group = group;
  }
  ASSIGN_OR_RETURN(auto trainer, Trainer::Create(t, deps), "the reference's training recipe");

  ASSIGN_OR_RETURN(TrainResult r, trainer->Train(m), "training the reference");
  if (root) RETURN_IF_ERROR(m.Save(path));
  in.reference_source = absl::StrFormat("trained %d epoch(s) in %.0f s (best %s) -> %s", r.epochs_run, r.seconds,
                                        r.best.ToString(), path);
  in.model.emplace(std::move(m));
  return in;
}

}  // namespace slimfit
