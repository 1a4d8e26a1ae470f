// Experiment files: the built-in default and every checked-in experiment
// validate; each bad field is refused with the field, the value and what is
// valid; defaults fill in as experiment.proto says.
#include "search/experiment.h"

#include <filesystem>

#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

Experiment With(const std::string& text) {
  Experiment e = DefaultExperiment();
  Experiment patch;
  EXPECT_OK(ParseTextProto(text, "patch", &patch));
  e.MergeFrom(patch);
  return e;
}

TEST(Experiment, DefaultAndCheckedInExperimentsValidate) {
  const Experiment d = DefaultExperiment();
  EXPECT_EQ(d.model().zoo(), "resnet_small");
  EXPECT_OK(ValidateExperiment(d));
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator("experiments")) {
    if (entry.path().extension() != ".pbtxt") continue;
    ++seen;
    SCOPED_TRACE(entry.path().string());
    ASSERT_OK_AND_ASSIGN(Experiment e, LoadExperiment(entry.path().string()));
    EXPECT_FALSE(e.name().empty());
    if (e.model().has_path() && !std::filesystem::exists(e.model().path())) {
      // A model made by a documented script first (see the file's comment).
      EXPECT_THAT(ValidateExperiment(e), StatusIs(absl::StatusCode::kNotFound, HasSubstr(e.model().path())));
      continue;
    }
    EXPECT_OK(ValidateExperiment(e));
  }
  EXPECT_GE(seen, 1);
}

// The GPU check's experiment (tools/gpu/check.sh) validates here; only the
// lent machine has its CUDA device and its data folder.
TEST(Experiment, GpuCheckExperimentValidates) {
  ASSERT_OK_AND_ASSIGN(Experiment e, LoadExperiment("tools/gpu/experiment.pbtxt"));
  EXPECT_EQ(e.device(), "cuda");
  EXPECT_EQ(e.model().zoo(), "vgg_small");
  EXPECT_OK(ValidateExperiment(e));
}

TEST(Experiment, NameDefaultsToTheFileStem) {
  const std::string path = std::string(getenv("TEST_TMPDIR")) + "/my_run.pbtxt";
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("model { zoo: 'lenet5' } data { mnist { } } full_trainer { optimizer { sgd { } lr: 0.01 } }", f);
  fclose(f);
  ASSERT_OK_AND_ASSIGN(Experiment e, LoadExperiment(path));
  EXPECT_EQ(e.name(), "my_run");
  EXPECT_OK(ValidateExperiment(e));
}

TEST(Experiment, BadFieldsNameFieldValueAndWhatIsValid) {
  struct Case {
    std::string patch;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"compression { delta: -1 }", absl::StatusCode::kInvalidArgument,
       "compression.delta: not a finite number >= 0, got -1; valid: >= 0, the allowed drop of eval_key in its units"},
      {"compression { level: 3 }", absl::StatusCode::kInvalidArgument,
       "compression.level: not a level, got 3; valid: 1 (structured pruning) or 2"},
      {"compression { pruners: 'fpgn' }", absl::StatusCode::kInvalidArgument,
       "compression.pruners[0]: not a structured pruner, got \"fpgn\"; valid: l1_filter, l2_filter, fpgm, taylor, "
       "apoz, activation_mean, slim"},
      {"compression { pruners: 'level' }", absl::StatusCode::kInvalidArgument,
       "compression.pruners[0]: unstructured pruning makes no model smaller or faster here, got \"level\"; valid: "
       "l1_filter, "},
      {"compression { level: 1 quantization { calibration_batches: 4 } }", absl::StatusCode::kInvalidArgument,
       "compression.quantization: quantization runs at level 2, got set with level 1; valid: level: 2, or no "
       "quantization block"},
      {"compression { level: 2 quantization { activation { minmax { } bits: 4 } } }",
       absl::StatusCode::kInvalidArgument,
       "compression.quantization.activation.bits: int8 kernels take 8-bit activation codes, got 4; valid: 8, or 7 "
       "(codes 0..127: no saturation on x86 CPUs without VNNI); 0 = 7 on onednn, x86 and fbgemm, 8 on qnnpack"},
      {"deploy_device: 'tpu'", absl::StatusCode::kInvalidArgument,
       "deploy_device: not a device, got \"tpu\"; valid: cpu, cuda, cuda:<index>, auto"},
      {"deploy_device: 'cuda' compression { level: 2 }", absl::StatusCode::kInvalidArgument,
       "deploy_device: level 2 makes int8 models, which run on the CPU only, got \"cuda\"; valid: cpu with level 2, "
       "or level 1"},
      {"compression { time_budget_minutes: -5 }", absl::StatusCode::kInvalidArgument,
       "compression.time_budget_minutes: not a finite number >= 0, got -5; valid: >= 0 (0 = none)"},
      {"model { zoo: 'resnet101' }", absl::StatusCode::kInvalidArgument,
       "model.zoo: not a zoo model, got \"resnet101\"; valid: lenet5, "},
      {"model { path: '/no/such/model.pt' }", absl::StatusCode::kNotFound,
       "model.path: not a readable file (cannot stat \"/no/such/model.pt\": No such file or directory), got "
       "\"/no/such/model.pt\"; valid: a TorchScript file"},
      {"evaluation { eval_split: 'holdout' }", absl::StatusCode::kInvalidArgument,
       "evaluation.eval_split: not a split, got \"holdout\"; valid: train, val, test"},
      {"full_trainer { eval_key: 'loss' }", absl::StatusCode::kInvalidArgument,
       "full_trainer.eval_key: differs from evaluation.eval_key \"accuracy\", got \"loss\"; valid: unset"},
      {"device: 'tpu'", absl::StatusCode::kInvalidArgument,
       "device: not a device, got \"tpu\"; valid: cpu, cuda, cuda:<index>, auto"},
      {"name: 'a/b'", absl::StatusCode::kInvalidArgument,
       "name: not a directory name, got \"a/b\"; valid: letters, digits"},
      {"threads: -2", absl::StatusCode::kInvalidArgument, "threads: negative, got -2; valid: >= 0 (0 = 1)"},
      {"compression { strategy: 'bisect' }", absl::StatusCode::kInvalidArgument,
       "compression.strategy: not a registered strategy, got \"bisect\"; valid: bisection, gradual"},
      {"compression { tuning { step_factor: 1.01 } }", absl::StatusCode::kInvalidArgument,
       "compression.tuning.step_factor: out of range, got 1.01; valid: [1.05, 10]"},
      {"compression { distillation { alpha: 1.5 } }", absl::StatusCode::kInvalidArgument,
       "compression.distillation.alpha: out of range, got 1.5; valid: [0, 1]"},
      {"compression { distillation { temperature: -1 } }", absl::StatusCode::kInvalidArgument,
       "compression.distillation.temperature: not a finite number >= 0, got -1; valid: > 0"},
      {"compression { tuning { probes: -1 } }", absl::StatusCode::kInvalidArgument,
       "compression.tuning.probes: out of range, got -1; valid: [1, 50]"},
      {"compression { tuning { promising_slack: -0.5 } }", absl::StatusCode::kInvalidArgument,
       "compression.tuning.promising_slack: not a finite number >= 0, got -0.5; valid: >= 0"},
      {"compression { tuning { max_ratio: 1 } }", absl::StatusCode::kInvalidArgument,
       "compression.tuning.max_ratio: out of range, got 1; valid: (0, 1)"},
      {"compression { tuning { sensitivity_budget_fraction: 2 } }", absl::StatusCode::kInvalidArgument,
       "compression.tuning.sensitivity_budget_fraction: out of range, got 2; valid: (0, 1]"},
      {"compression { tuning { lr_factors: [1, 0] } }", absl::StatusCode::kInvalidArgument,
       "compression.tuning.lr_factors[1]: out of range, got 0; valid: (0, 10]"},
      {"compression { tuning { round_to: [16, 0] } }", absl::StatusCode::kInvalidArgument,
       "compression.tuning.round_to[1]: out of range, got 0; valid: [1, 1024]"},
      {"compression { tuning { lr_tie: 1.5 } }", absl::StatusCode::kInvalidArgument,
       "compression.tuning.lr_tie: out of range, got 1.5; valid: [0, 1] in units of delta"},
      {"compression { tuning { lr_trial_steps: -3 } }", absl::StatusCode::kInvalidArgument,
       "compression.tuning.lr_trial_steps: negative, got -3; valid: >= 0"},
      {"full_trainer { optimizer { sgd { momentum: 1.5 } } }", absl::StatusCode::kInvalidArgument,
       "full_trainer.optimizer.sgd.momentum: out of range, got 1.5; valid: [0, 1)"},
      {"full_trainer { scheduler { step { } } }", absl::StatusCode::kInvalidArgument,
       "full_trainer.scheduler.step.step_size: required, got 0; valid: >= 1"},
      {"model { reference_training { optimizer { adam { } lr: -1 } } }", absl::StatusCode::kInvalidArgument,
       "model.reference_training.optimizer.lr: required, and positive, got -1; valid: > 0"},
      {"compression { tuning { sensitivity_samples: -2 } }", absl::StatusCode::kInvalidArgument,
       "compression.tuning.sensitivity_samples: out of range, got -2; valid: >= -1"},
      {"export { formats: [ONNX, TORCHSCRIPT, ONNX] }", absl::StatusCode::kInvalidArgument,
       "export.formats[2]: is listed twice, got ONNX; valid: each format at most once"},
      {"export { formats: [FORMAT_UNSPECIFIED] }", absl::StatusCode::kInvalidArgument,
       "export.formats[0]: is not a format, got 0; valid: TORCHSCRIPT or ONNX"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.patch);
    EXPECT_THAT(ValidateExperiment(With(c.patch)), StatusIs(c.code, HasSubstr(c.message)));
  }
  Experiment no_model = DefaultExperiment();
  no_model.clear_model();
  EXPECT_THAT(ValidateExperiment(no_model),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "model: no model set; valid: path (a TorchScript file) or zoo (a zoo model name)"));
  Experiment no_data = DefaultExperiment();
  no_data.clear_data();
  EXPECT_THAT(ValidateExperiment(no_data),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data: no dataset set; valid: mnist, cifar, ")));
  Experiment no_optimizer = DefaultExperiment();
  no_optimizer.mutable_full_trainer()->clear_optimizer();
  EXPECT_THAT(ValidateExperiment(no_optimizer),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("full_trainer.optimizer: required")));
}

TEST(Experiment, DefaultsFillInAndAreIdempotent) {
  Experiment e;
  ASSERT_OK(ParseTextProto("model { zoo: 'lenet5' } data { mnist { } } "
                           "full_trainer { optimizer { sgd { } lr: 0.01 } } compression { deepsearch: true }",
                           "t", &e));
  const Experiment d = WithDefaults(e);
  EXPECT_EQ(d.name(), "default");
  EXPECT_EQ(d.output_dir(), "runs/default");
  EXPECT_DOUBLE_EQ(d.compression().delta(), 1.0);
  EXPECT_EQ(d.compression().level(), 1);
  EXPECT_EQ(d.compression().objective(), CompressionConfig::LATENCY);
  EXPECT_THAT(d.compression().pruners(), ::testing::ElementsAre("l1_filter", "fpgm", "taylor"));
  EXPECT_EQ(d.compression().candidate_epochs(), 2);  // deepsearch
  EXPECT_EQ(d.compression().final_epochs(), 10);
  EXPECT_EQ(d.evaluation().eval_key(), "accuracy");
  EXPECT_EQ(d.full_trainer().eval_split(), "val");
  EXPECT_EQ(d.model().reference_epochs(), 6);
  EXPECT_EQ(d.device(), "cpu");
  EXPECT_EQ(d.threads(), 1);
  EXPECT_EQ(d.compression().strategy(), "gradual");
  EXPECT_TRUE(d.compression().tune_lr());
  EXPECT_TRUE(d.compression().remove_blocks());
  EXPECT_TRUE(d.compression().distillation().enabled());
  EXPECT_FLOAT_EQ(d.compression().distillation().alpha(), 0.5);
  EXPECT_FLOAT_EQ(d.compression().distillation().temperature(), 4);
  EXPECT_EQ(d.compression().tuning().probes(), 7);      // deepsearch
  EXPECT_EQ(d.compression().tuning().max_finals(), 4);  // deepsearch
  EXPECT_DOUBLE_EQ(d.compression().tuning().promising_slack(), 1.0);
  EXPECT_DOUBLE_EQ(d.compression().tuning().max_ratio(), 0.95);
  EXPECT_DOUBLE_EQ(d.compression().tuning().sensitivity_budget_fraction(), 0.3);
  EXPECT_DOUBLE_EQ(d.compression().tuning().step_factor(), 1.5);
  EXPECT_THAT(d.compression().tuning().lr_factors(), ::testing::ElementsAre(1.0, 0.3, 0.1));
  EXPECT_THAT(d.compression().tuning().round_to(), ::testing::ElementsAre(16, 8));
  EXPECT_TRUE(d.compression().tuning().latency_aware());
  EXPECT_DOUBLE_EQ(d.compression().tuning().lr_tie(), 0.25);
  EXPECT_THAT(d.export_().formats(), ::testing::ElementsAre(ExportConfig::TORCHSCRIPT));
  EXPECT_FALSE(ExportsOnnx(d));
  EXPECT_EQ(WithDefaults(d).DebugString(), d.DebugString());
  EXPECT_OK(ValidateExperiment(d));
  // delta 0 is a real choice (no drop allowed), not "unset".
  Experiment zero = e;
  zero.mutable_compression()->set_delta(0);
  EXPECT_DOUBLE_EQ(WithDefaults(zero).compression().delta(), 0.0);
  // Likewise switching tune_lr, block removal and distillation off, and a
  // zero slack.
  Experiment off = e;
  off.mutable_compression()->set_tune_lr(false);
  off.mutable_compression()->set_remove_blocks(false);
  off.mutable_compression()->mutable_distillation()->set_enabled(false);
  off.mutable_compression()->mutable_tuning()->set_promising_slack(0);
  off.mutable_compression()->mutable_tuning()->set_latency_aware(false);
  off.mutable_compression()->mutable_tuning()->set_lr_tie(0);
  const Experiment off_d = WithDefaults(off);
  EXPECT_FALSE(off_d.compression().tune_lr());
  EXPECT_FALSE(off_d.compression().remove_blocks());
  EXPECT_FALSE(off_d.compression().distillation().enabled());
  EXPECT_DOUBLE_EQ(off_d.compression().tuning().promising_slack(), 0.0);
  EXPECT_FALSE(off_d.compression().tuning().latency_aware());
  EXPECT_DOUBLE_EQ(off_d.compression().tuning().lr_tie(), 0.0);
  // Formats given are kept as given.
  Experiment onnx = e;
  onnx.mutable_export_()->add_formats(ExportConfig::ONNX);
  EXPECT_THAT(WithDefaults(onnx).export_().formats(), ::testing::ElementsAre(ExportConfig::ONNX));
  EXPECT_TRUE(ExportsOnnx(WithDefaults(onnx)));
}

}  // namespace
}  // namespace slimfit
