// quantize: int8 post-training quantization (optionally quantization-aware
// training and mixed precision) of any TorchScript model, written as a real
// int8 TorchScript model, with a before/after table.
//
//   bazel run //tools:quantize -- --model=/abs/in.pt --config=experiments/quantize/ptq.pbtxt
//       --out=/abs/int8.pt
//   bazel run //tools:quantize -- --model=resnet_small --activation_observer=mse --max_drop=0.3
//   bazel run //tools:quantize -- --model=/abs/in.pt --qat_epochs=1 --lsq
//   bazel run //tools:quantize -- --model=/abs/in.pt --weight_only_bits=4 --data=none --input_shape=1,28,28
//
// The config file is a QuantizationConfig (quantizers/quantizer.proto); the
// common fields are flags too and override it when given. Calibration,
// QAT and evaluation use --data (default fashion_mnist: the train split
// calibrates and trains, the val split decides mixed precision, the test
// split is reported).
#include "quantizers/quantize.h"

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/threads.h"
#include "tools/cli.h"
#include "tools/compare.h"
#include "tools/data_flags.h"
#include "tools/job.h"
#include "tools/pruning_flags.h"

ABSL_FLAG(std::string, model, "", "TorchScript file (or a zoo name) to quantize");
ABSL_FLAG(std::string, config, "", "a QuantizationConfig text proto; flags override its fields");
ABSL_FLAG(std::string, out, "", "output TorchScript file (default: runs/quantize/<model>/model.pt)");
ABSL_FLAG(int, batch_size, 64, "calibration / QAT batch size");
ABSL_FLAG(double, lr, 0.001, "QAT learning rate (SGD, momentum 0.9, cosine)");
ABSL_FLAG(int, threads, 1, "intra-op threads");
ABSL_FLAG(int, latency_runs, 20, "timed runs per latency figure (0: skip latency)");
ABSL_FLAG(uint64_t, seed, 0, "seed");
ABSL_FLAG(bool, show_ranges, false, "print every observed tensor's range and scale");
// QuantizationConfig fields.
ABSL_FLAG(std::string, engine, "onednn", "quantized engine: onednn, x86, fbgemm or qnnpack");
ABSL_FLAG(std::string, activation_observer, "mse", "minmax, moving_average, percentile, mse or histogram");
ABSL_FLAG(std::string, weight_observer, "minmax", "minmax, percentile or mse (symmetric)");
ABSL_FLAG(bool, per_tensor_weights, false, "one weight scale per layer instead of per output channel");
ABSL_FLAG(int, weight_bits, 8, "weight grid bits (2..8; stored as int8)");
ABSL_FLAG(int, calibration_batches, 32, "training batches to calibrate on");
ABSL_FLAG(bool, keep_first, false, "keep the first layer in fp32");
ABSL_FLAG(bool, keep_last, false, "keep the last layer in fp32");
ABSL_FLAG(std::string, exclude_layers, "", "comma-separated RE2s: module paths kept in fp32");
ABSL_FLAG(int, qat_epochs, 0, "quantization-aware training epochs (0: post-training only)");
ABSL_FLAG(bool, lsq, false, "QAT with learned step sizes");
ABSL_FLAG(double, max_drop, 0, "mixed precision: allowed accuracy drop in points (0: off)");
ABSL_FLAG(int, weight_only_bits, 0, "weight-only quantization: 8 or 4 (0: off)");

namespace slimfit {
namespace {

absl::Status SetObserver(const std::string& flag, const std::string& name, ObserverConfig* c) {
  if (SelectOneofField(c, "observer", name)) return absl::OkStatus();
  return FieldError(absl::StrCat("--", flag), "not an observer", Quoted(name),
                    absl::StrJoin(OneofFieldNames(*c, "observer"), ", "));
}

absl::StatusOr<QuantizationConfig> ConfigFromFlags() {
  QuantizationConfig c;
  const std::string path = absl::GetFlag(FLAGS_config);
  if (!path.empty()) RETURN_IF_ERROR(ParseTextProtoFile(ResolveUserPath(path), &c));
  auto given = [&](const char* name) { return path.empty() || FlagGiven(name); };
  if (given("engine")) {
    ASSIGN_OR_RETURN(const QuantizationConfig::Engine e,
                     QuantizedEngineFromName("--engine", absl::GetFlag(FLAGS_engine)));
    c.set_engine(e);
  }
  if (given("activation_observer") || !c.has_activation()) {
    RETURN_IF_ERROR(SetObserver("activation_observer", absl::GetFlag(FLAGS_activation_observer), c.mutable_activation()));
  }
  if (given("weight_observer") || !c.has_weight()) {
    RETURN_IF_ERROR(SetObserver("weight_observer", absl::GetFlag(FLAGS_weight_observer), c.mutable_weight()));
    c.mutable_weight()->set_per_channel(true);
  }
  if (given("per_tensor_weights")) c.mutable_weight()->set_per_channel(!absl::GetFlag(FLAGS_per_tensor_weights));
  if (given("weight_bits")) c.mutable_weight()->set_bits(absl::GetFlag(FLAGS_weight_bits));
  if (given("calibration_batches")) c.set_calibration_batches(absl::GetFlag(FLAGS_calibration_batches));
  if (given("keep_first")) c.set_keep_first(absl::GetFlag(FLAGS_keep_first));
  if (given("keep_last")) c.set_keep_last(absl::GetFlag(FLAGS_keep_last));
  if (FlagGiven("exclude_layers")) {
    c.clear_exclude();
    for (absl::string_view e : absl::StrSplit(absl::GetFlag(FLAGS_exclude_layers), ',', absl::SkipEmpty())) {
      c.add_exclude(std::string(e));
    }
  }
  if (given("qat_epochs")) c.mutable_qat()->set_epochs(absl::GetFlag(FLAGS_qat_epochs));
  if (given("lsq")) c.mutable_qat()->set_lsq(absl::GetFlag(FLAGS_lsq));
  if (given("max_drop")) c.mutable_mixed_precision()->set_max_drop(absl::GetFlag(FLAGS_max_drop));
  if (given("weight_only_bits")) c.mutable_weight_only()->set_bits(absl::GetFlag(FLAGS_weight_only_bits));
  RETURN_IF_ERROR(ValidateQuantizationConfig(c));
  return c;
}

absl::Status Run() {
  const std::string spec = absl::GetFlag(FLAGS_model);
  if (spec.empty()) return FieldError("--model", "required", "\"\"", "a TorchScript file or a zoo name");
  ASSIGN_OR_RETURN(QuantizationConfig config, ConfigFromFlags());
  const int threads = ConfigureThreads(absl::GetFlag(FLAGS_threads));
  const bool with_data = DataFlag("fashion_mnist") != kNoData;
  if (!with_data && config.weight_only().bits() == 0) {
    return FieldError("--data", "int8 quantization calibrates on data", Quoted(kNoData),
                      "a dataset (e.g. --data=fashion_mnist), or none with --weight_only_bits");
  }
  RETURN_IF_ERROR(SetQuantizedEngine(config.engine()));

  ASSIGN_OR_RETURN(ToolSubject subject, LoadToolSubject(spec, with_data, DataFlag("fashion_mnist"), DataDirFlag(),
                                                        absl::GetFlag(FLAGS_batch_size), absl::GetFlag(FLAGS_seed)));
  if (subject.job) {
    *subject.config.mutable_full_trainer() = FineTuneConfig(absl::GetFlag(FLAGS_lr), std::max(1, config.qat().epochs()),
                                                subject.job->train->num_batches(), absl::GetFlag(FLAGS_seed));
  }
  Model& model = subject.model();
  std::unique_ptr<Job>& job = subject.job;
  std::shared_ptr<ForwardPass>& fp = subject.forward_pass;
  TrainJob& tj = subject.config;
  model.Eval();
  const int runs = absl::GetFlag(FLAGS_latency_runs);
  ASSIGN_OR_RETURN(Measured before, MeasureModel(model, *fp, job.get(), tj.data(), threads, runs));

  QuantizeDeps deps;
  deps.forward_pass = fp.get();
  if (job) {
    deps.calibration = job->train.get();
    deps.evaluator = job->evaluator.get();
    deps.eval = job->eval.get();
    deps.loss = job->loss.get();
    deps.train = job->train.get();
    deps.trainer = &tj.full_trainer();
    deps.device = job->device;
  }
  ASSIGN_OR_RETURN(QuantizeResult r, Quantize(model, config, deps));
  for (const std::string& line : r.log) std::printf("%s\n", line.c_str());
  ASSIGN_OR_RETURN(Measured after, MeasureModel(r.model, *fp, job.get(), tj.data(), threads, runs));

  ASSIGN_OR_RETURN(const std::string out, SaveToolOutput(r.model, "quantize", spec, absl::GetFlag(FLAGS_out)));

  std::printf("\n%-4s %-28s %-16s %s\n", "#", "layer", "type", "quantized");
  for (size_t i = 0; i < r.layers.size(); ++i) {
    const QuantLayer& l = r.layers[i];
    std::printf("%-4zu %-28s %-16s %s\n", i, l.module_path.empty() ? "(root)" : l.module_path.c_str(),
                l.op_type.c_str(),
                l.selected ? (config.weight_only().bits() > 0 ? absl::StrCat("int", config.weight_only().bits(),
                                                                             " weights").c_str()
                                                              : "int8")
                           : absl::StrCat("fp32 (", l.reason, ")").c_str());
  }
  if (absl::GetFlag(FLAGS_show_ranges)) std::printf("\nranges:\n%s", r.ranges.c_str());
  if (!r.sensitivity.empty()) {
    std::printf("\nsensitivity (accuracy with only this layer in int8):\n");
    for (const LayerSensitivity& s : r.sensitivity) {
      std::printf("  %-4d %-28s %8.2f  drop %+.2f\n", s.layer, r.layers[s.layer].module_path.c_str(), s.metric,
                  s.drop);
    }
  }
  std::printf("\nengine %s\n%s", QuantizedEngineName(config.engine()).c_str(),
              FormatComparison(before, after, /*counts=*/false).c_str());
  std::printf("wrote %s\n", out.c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunTool(argc, argv, "quantize",
      "Quantizes a TorchScript model to int8 (real quantized kernels) or to 8/4-bit weights.\n"
      "  bazel run //tools:quantize -- --model=IN.pt [--config=quant.pbtxt] [--activation_observer=mse]\n"
      "      [--qat_epochs=1 --lsq] [--max_drop=0.3] [--weight_only_bits=4 --data=none] --out=OUT.pt",
      &slimfit::Run);
}
