// evaluate: any TorchScript model on a dataset split, with the registered
// evaluators (accuracy, top-5, the classification report, mean loss).
//
//   bazel run //tools:evaluate -- --model=runs/train/lenet5/model.pt
//   bazel run //tools:evaluate -- --model=m.pt --data=cifar10 --data_dir=/data/cifar10 --split=val --json=m.json
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/threads.h"
#include "tools/cli.h"
#include "tools/data_flags.h"
#include "tools/device_flag.h"
#include "tools/job.h"

ABSL_FLAG(std::string, model, "", "a TorchScript file (or a zoo name: an untrained baseline)");
ABSL_FLAG(std::string, split, "test", "train, val or test");
ABSL_FLAG(int, batch_size, 256, "evaluation batch size");
ABSL_FLAG(bool, report, true, "add the per-class report and confusion matrix");
ABSL_FLAG(std::string, json, "", "also write the metrics here as JSON");
ABSL_FLAG(int, threads, 1, "intra-op threads");

namespace slimfit {
namespace {

absl::Status Run() {
  ConfigureThreads(absl::GetFlag(FLAGS_threads));
  TrainJob config;
  config.set_model(absl::GetFlag(FLAGS_model));
  ASSIGN_OR_RETURN(*config.mutable_data(), RequiredDataFromFlags("evaluate", "fashion_mnist", false));
  config.mutable_data()->set_eval_batch_size(absl::GetFlag(FLAGS_batch_size));
  EvaluationConfig& e = *config.mutable_evaluation();
  e.set_eval_split(absl::GetFlag(FLAGS_split));
  auto* acc = e.add_evaluators()->mutable_accuracy();
  acc->add_top_k(1);
  acc->add_top_k(5);
  e.add_evaluators()->mutable_mean_loss()->mutable_loss()->mutable_cross_entropy();
  RETURN_IF_ERROR(ApplyDeviceFlag(config.mutable_device()));
  ASSIGN_OR_RETURN(Job job, BuildJob(config, /*with_train_loader=*/false));
  if (absl::GetFlag(FLAGS_report)) {
    const int64_t classes = job.model->metadata().num_classes();
    if (classes >= 2) {
      e.add_evaluators()->mutable_classification_report()->set_num_classes(classes);
      ASSIGN_OR_RETURN(job.evaluator, MakeEvaluator(e, EvaluatorContext{job.forward_pass}));
    }
  }
  ASSIGN_OR_RETURN(Metrics m, job.evaluator->Apply(*job.model, *job.eval));
  std::printf("%s on %s/%s (%lld samples)\n", absl::GetFlag(FLAGS_model).c_str(), DataFlag("fashion_mnist").c_str(),
              job.eval_split.c_str(), static_cast<long long>(job.eval->num_samples()));
  for (const auto& [name, metric] : m.values()) {
    std::printf("  %-22s %10.4f  (%s is better)\n", name.c_str(), metric.value,
                metric.higher_is_better ? "higher" : "lower");
  }
  if (auto it = m.tensors().find("confusion_matrix"); it != m.tensors().end()) {
    std::printf("confusion matrix (rows: true class, columns: predicted):\n");
    const at::Tensor& cm = it->second;
    for (int64_t i = 0; i < cm.size(0); ++i) {
      std::string row;
      for (int64_t j = 0; j < cm.size(1); ++j) absl::StrAppendFormat(&row, " %6d", cm[i][j].item<int64_t>());
      std::printf("  %3lld:%s\n", static_cast<long long>(i), row.c_str());
    }
  }
  if (!absl::GetFlag(FLAGS_json).empty()) {
    RETURN_IF_ERROR(WriteFileAtomically(ResolveUserPath(absl::GetFlag(FLAGS_json)), m.ToJson() + "\n"));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunTool(argc, argv, "evaluate",
                          "Evaluates a TorchScript model on a dataset split.\n"
                          "  bazel run //tools:evaluate -- --model=PATH [--data=fashion_mnist] [--split=test]",
                          &slimfit::Run);
}
