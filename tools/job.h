// File: tools/job.h
//
// Assembles what the train and evaluate tools run from a TrainJob: splits
// and loaders, the model (a zoo model shaped by the data, or a file), the
// forward pass, loss, evaluator, and (for training) the trainer.
//
// PresetData(name, dir, augment) gives the DataConfig of a named dataset
// with its usual normalisation (and augmentation when asked):
//   fashion_mnist (default dir: Debian's), mnist, cifar10, cifar100, synthetic;
//   image_folder (dir: the root): torchvision's ImageNet recipe at 224 x 224
//     (random_resized_crop + flip when augmenting, else resize 256 + center
//     crop 224; ImageNet mean / std);
//   a path ending in .pbtxt: a DataConfig in text format, used as written.
#ifndef SLIMFIT_TOOLS_JOB_H_
#define SLIMFIT_TOOLS_JOB_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "data/splits.h"
#include "evaluators/evaluation_function.h"
#include "forward_pass/forward_pass.h"
#include "losses/loss_function.h"
#include "model/model.h"
#include "tools/train_job.pb.h"
#include "trainer/components.h"
#include "trainer/trainer.h"

namespace slimfit {

absl::StatusOr<DataConfig> PresetData(const std::string& name, const std::string& directory, bool augment);

// The data and components (trainer/components.h, as the compression
// engine builds them: eval is the evaluation.eval_split loader), and the
// model.
struct Job : Components {
  std::unique_ptr<Model> model;
};

// Validates and builds everything but the trainer; the train loader only
// when `with_train_loader`. Errors are prefixed with the job field; an
// eval split without samples is one (nothing could be scored on it).
absl::StatusOr<Job> BuildJob(const TrainJob& config, bool with_train_loader);

// The job of a compression tool run with data: `model` (file or zoo name)
// on the `data` preset (PresetData), train batches of `batch_size`, seeded;
// fills `config` (model and data; the device from --device, tools/device_flag.h)
// and builds it with a train loader.
absl::StatusOr<Job> BuildToolJob(const std::string& model, const std::string& data, const std::string& data_dir,
                                 int batch_size, uint64_t seed, TrainJob* config);

// The fine-tuning trainer config of the pruning tool and benchmark: SGD with
// momentum 0.9 at `lr`, weight decay 5e-4 except on biases and norms, and
// `epochs` epochs of `steps_per_epoch` steps with a per-iteration cosine
// decay to zero.
TrainerConfig FineTuneConfig(double lr, int epochs, int64_t steps_per_epoch, uint64_t seed);

// The trainer for `job` from `config.full_trainer()` (eval_key and
// eval_split filled in from config.evaluation()); data-parallel over `group`
// when it has several ranks (job.train then is this rank's ShardedLoader,
// `eval_shard` its shard of the eval split).
absl::StatusOr<std::unique_ptr<Trainer>> MakeJobTrainer(const TrainJob& config, Job& job, Collective* group = nullptr,
                                                        DataLoader* eval_shard = nullptr);

}  // namespace slimfit

#endif  // SLIMFIT_TOOLS_JOB_H_
