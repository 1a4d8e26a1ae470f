#include "tools/job.h"

#include <ATen/ATen.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "data/readers/idx.h"
#include "model/device.h"
#include "model/zoo/zoo.h"
#include "tools/cli.h"
#include "tools/device_flag.h"

namespace slimfit {
namespace {

void AddNormalize(DataConfig& c, std::vector<float> mean, std::vector<float> std) {
  for (auto* list : {c.mutable_train_transforms(), c.mutable_eval_transforms()}) {
    auto* n = list->Add()->mutable_normalize();
    for (float m : mean) n->add_mean(m);
    for (float s : std) n->add_std(s);
  }
}

void AddAugment(DataConfig& c, int size, int pad) {
  auto* crop = c.add_train_transforms()->mutable_random_crop();
  crop->set_size(size);
  crop->set_padding(pad);
  c.add_train_transforms()->mutable_random_horizontal_flip();
}

}  // namespace

absl::StatusOr<DataConfig> PresetData(const std::string& name, const std::string& directory, bool augment) {
  DataConfig c;
  if (name == "fashion_mnist" || name == "mnist") {
    if (name == "mnist" && directory.empty()) {
      return FieldError("--data_dir", "required for --data=mnist", "\"\"", "a directory of MNIST IDX files");
    }
    c.mutable_mnist()->set_directory(directory.empty() ? kDefaultFashionMnistDir : directory);
    if (augment) AddAugment(c, 28, 2);
    if (name == "mnist") {
      AddNormalize(c, {0.1307f}, {0.3081f});
    } else {
      AddNormalize(c, {0.2860f}, {0.3530f});
    }
  } else if (name == "cifar10" || name == "cifar100") {
    if (directory.empty()) {
      return FieldError("--data_dir", absl::StrCat("required for --data=", name), "\"\"",
                        "the folder of the CIFAR binary version's .bin files");
    }
    c.mutable_cifar()->set_directory(directory);
    c.mutable_cifar()->set_num_classes(name == "cifar10" ? 10 : 100);
    if (augment) AddAugment(c, 32, 4);
    AddNormalize(c, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f});
  } else if (name == "image_folder") {
    if (directory.empty()) {
      return FieldError("--data_dir", "required for --data=image_folder", "\"\"", "a folder of class folders");
    }
    // torchvision's ImageNet recipe at 224 x 224.
    auto& f = *c.mutable_image_folder();
    f.set_root(directory);
    if (augment) {
      f.add_train_sample_transforms()->mutable_random_resized_crop()->set_size(224);
      c.add_train_transforms()->mutable_random_horizontal_flip();
    } else {
      f.add_train_sample_transforms()->mutable_resize()->set_size(256);
      f.add_train_sample_transforms()->mutable_center_crop()->set_size(224);
    }
    f.add_eval_sample_transforms()->mutable_resize()->set_size(256);
    f.add_eval_sample_transforms()->mutable_center_crop()->set_size(224);
    AddNormalize(c, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f});
  } else if (name == "synthetic") {
    c.mutable_synthetic();
  } else if (absl::EndsWith(name, ".pbtxt")) {
    RETURN_IF_ERROR(ParseTextProtoFile(ResolveUserPath(name), &c), AtField("--data"));
  } else {
    return FieldError("--data", "neither a preset nor a .pbtxt file", Quoted(name),
                      "fashion_mnist, mnist, cifar10, cifar100, image_folder, synthetic, or a DataConfig .pbtxt file");
  }
  return c;
}

absl::StatusOr<Job> BuildJob(const TrainJob& config, bool with_train_loader) {
  if (config.model().empty()) return FieldError("model", "required", "\"\"", "a zoo name or a .pt file");

  Job job;
  ComponentsConfig parts{&config.data(), &config.forward_pass(), &config.loss(), &config.evaluation()};
  parts.train_loader = with_train_loader;
  ASSIGN_OR_RETURN(parts.device, ResolveDevice(config.device()), AtField("device"));
  ASSIGN_OR_RETURN(static_cast<Components&>(job), BuildComponents(parts));
  // Zoo models take their shape from a batch: [N, C, H, W] images, labels
  // in [0, classes).
  ASSIGN_OR_RETURN(Batch probe, ShapeProbe(*job.splits.train));
  ZooOptions zoo = ZooShapeFromBatch(probe);
  zoo.seed = config.seed();
  ASSIGN_OR_RETURN(Model model, LoadModelOrZoo(config.model(), zoo), AtField("model"));
  job.model = std::make_unique<Model>(std::move(model));
  return job;
}

TrainerConfig FineTuneConfig(double lr, int epochs, int64_t steps_per_epoch, uint64_t seed) {
  TrainerConfig t;
  t.mutable_optimizer()->mutable_sgd()->set_momentum(0.9);
  t.mutable_optimizer()->set_lr(lr);
  t.mutable_optimizer()->set_weight_decay(5e-4);
  t.mutable_optimizer()->set_no_weight_decay_on_bias_and_norm(true);
  t.set_epochs(epochs);
  t.set_seed(seed);
  t.mutable_scheduler()->mutable_cosine()->set_t_max(std::max<int64_t>(2, epochs * steps_per_epoch));
  t.mutable_scheduler()->set_interval(SchedulerConfig::ITERATION);
  return t;
}

absl::StatusOr<std::unique_ptr<Trainer>> MakeJobTrainer(const TrainJob& config, Job& job, Collective* group,
                                                        DataLoader* eval_shard) {
  if (job.train == nullptr) return absl::FailedPreconditionError("the job was built without a train loader");
  TrainerConfig t = config.full_trainer();
  if (t.eval_key().empty() && !config.evaluation().eval_key().empty()) t.set_eval_key(config.evaluation().eval_key());
  t.set_eval_split(job.eval_split);
  TrainerDeps deps{job.loss.get(), job.evaluator.get(), job.train.get(), job.eval.get()};
  deps.group = group;
  deps.eval_shard = eval_shard;
  deps.device = job.device;
  return Trainer::Create(t, deps);
}

absl::StatusOr<Job> BuildToolJob(const std::string& model, const std::string& data, const std::string& data_dir,
                                 int batch_size, uint64_t seed, TrainJob* config) {
  config->set_model(model);
  ASSIGN_OR_RETURN(*config->mutable_data(), PresetData(data, data_dir, false));
  config->mutable_data()->set_train_batch_size(batch_size);
  config->mutable_data()->set_seed(seed);
  RETURN_IF_ERROR(ApplyDeviceFlag(config->mutable_device()));
  return BuildJob(*config, /*with_train_loader=*/true);
}

}  // namespace slimfit
