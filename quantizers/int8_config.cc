// The QuantizationConfig: validation, layer selection, the quantized
// engine (quantizers/int8.h, int8_internal.h).
#include <ATen/Context.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/regex.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "quantizers/int8_internal.h"
#include "re2/re2.h"

namespace slimfit {
namespace int8_internal {

// op_types, module_regex, exclude, then keep_first / keep_last.
void SelectLayers(const QuantizationConfig& config, std::vector<QuantLayer>* layers) {
  std::vector<int> selected;
  for (size_t i = 0; i < layers->size(); ++i) {
    QuantLayer& l = (*layers)[i];
    l.selected = true;
    if (!config.op_types().empty() &&
        std::find(config.op_types().begin(), config.op_types().end(), l.op_type) == config.op_types().end()) {
      l.selected = false;
      l.reason = absl::StrCat("op type ", l.op_type, " not in op_types");
    } else if (!config.module_regex().empty() && !RE2::FullMatch(l.module_path, config.module_regex())) {
      l.selected = false;
      l.reason = "module_regex does not match";
    } else {
      for (const std::string& e : config.exclude()) {
        if (RE2::FullMatch(l.module_path, e)) {
          l.selected = false;
          l.reason = absl::StrCat("exclude '", e, "'");
          break;
        }
      }
    }
    if (l.selected) selected.push_back(static_cast<int>(i));
  }
  if (config.keep_first() && !selected.empty()) {
    (*layers)[selected.front()].selected = false;
    (*layers)[selected.front()].reason = "keep_first";
  }
  if (config.keep_last() && !selected.empty()) {
    (*layers)[selected.back()].selected = false;
    (*layers)[selected.back()].reason = "keep_last";
  }
}

}  // namespace int8_internal

namespace {

absl::Status CheckObserver(const ObserverConfig& c, const std::string& field) {
  ASSIGN_OR_RETURN(auto observer, MakeObserver(c, field));
  (void)observer;
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateQuantizationConfig(const QuantizationConfig& c) {
  if (c.has_activation()) {
    RETURN_IF_ERROR(CheckObserver(c.activation(), "activation"));
    if (c.activation().bits() != 0 && c.activation().bits() != 7 && c.activation().bits() != 8) {
      return FieldError("activation.bits", "int8 kernels take 8-bit activation codes", c.activation().bits(),
                        "8, or 7 (codes 0..127: no saturation on x86 CPUs without VNNI); 0 = 7 on onednn, x86 and "
                        "fbgemm, 8 on qnnpack");
    }
    if (c.activation().per_channel()) {
      return FieldError("activation.per_channel", "int8 kernels take one scale per activation tensor", "true", "false");
    }
  }
  if (c.has_weight()) RETURN_IF_ERROR(CheckObserver(c.weight(), "weight"));
  if (c.has_weight() && c.weight().per_channel() && c.weight().channel_axis() != 0) {
    return FieldError("weight.channel_axis", "conv and linear weights are quantized per output channel",
                      c.weight().channel_axis(), "0");
  }
  if (c.calibration_batches() < 0) {
    return FieldError("calibration_batches", "negative", c.calibration_batches(), ">= 0 (0 = 32)");
  }
  static const std::set<std::string> kTypes = {"Conv1d", "Conv2d", "DepthwiseConv2d", "Linear"};
  for (const std::string& t : c.op_types()) {
    if (!kTypes.count(t)) {
      return FieldError("op_types", "not a quantizable op type", Quoted(t), absl::StrJoin(kTypes, ", "));
    }
  }
  if (!c.module_regex().empty()) {
    ASSIGN_OR_RETURN(auto re, CompileUserRegex(c.module_regex(), "module_regex"));
    (void)re;
  }
  for (int i = 0; i < c.exclude_size(); ++i) {
    ASSIGN_OR_RETURN(auto re, CompileUserRegex(c.exclude(i), IndexedField("exclude", i)));
    (void)re;
  }
  if (c.mixed_precision().max_drop() < 0) {
    return FieldError("mixed_precision.max_drop", "negative", c.mixed_precision().max_drop(),
                      ">= 0 (metric units; 0 = off)");
  }
  if (c.mixed_precision().eval_batches() < 0) {
    return FieldError("mixed_precision.eval_batches", "negative", c.mixed_precision().eval_batches(), ">= 0");
  }
  if (c.mixed_precision().max_fp32_layers() < 0) {
    return FieldError("mixed_precision.max_fp32_layers", "negative", c.mixed_precision().max_fp32_layers(), ">= 0");
  }
  if (c.qat().epochs() < 0) return FieldError("qat.epochs", "negative", c.qat().epochs(), ">= 0");
  if (c.qat().freeze_observers_step() < 0) {
    return FieldError("qat.freeze_observers_step", "negative", c.qat().freeze_observers_step(), ">= 0");
  }
  if (c.qat().averaging_constant() < 0 || c.qat().averaging_constant() > 1) {
    return FieldError("qat.averaging_constant", "out of range", c.qat().averaging_constant(), "(0, 1] (0 = 0.01)");
  }
  if (c.weight_only().bits() != 0 && c.weight_only().bits() != 8 && c.weight_only().bits() != 4) {
    return FieldError("weight_only.bits", "not a supported width", c.weight_only().bits(), "8, 4 (0 = off)");
  }
  return absl::OkStatus();
}

std::string QuantizedEngineName(QuantizationConfig::Engine engine) {
  return absl::AsciiStrToLower(QuantizationConfig::Engine_Name(engine));
}

absl::StatusOr<QuantizationConfig::Engine> QuantizedEngineFromName(const std::string& field, const std::string& name) {
  QuantizationConfig::Engine engine;
  if (QuantizationConfig::Engine_Parse(absl::AsciiStrToUpper(name), &engine)) return engine;
  std::vector<std::string> names;
  for (int i = 0; i < QuantizationConfig::Engine_descriptor()->value_count(); ++i) {
    names.push_back(QuantizedEngineName(
        static_cast<QuantizationConfig::Engine>(QuantizationConfig::Engine_descriptor()->value(i)->number())));
  }
  return FieldError(field, "not a quantized engine", Quoted(name), absl::StrJoin(names, ", "));
}

absl::Status SetQuantizedEngine(QuantizationConfig::Engine engine) {
  at::QEngine want;
  switch (engine) {
    case QuantizationConfig::QNNPACK:
      want = at::QEngine::QNNPACK;
      break;
    case QuantizationConfig::X86:
      want = at::QEngine::X86;
      break;
    case QuantizationConfig::FBGEMM:
      want = at::QEngine::FBGEMM;
      break;
    default:
      want = at::QEngine::ONEDNN;
      break;
  }
  const auto& supported = at::globalContext().supportedQEngines();
  if (std::find(supported.begin(), supported.end(), want) == supported.end()) {
    std::vector<std::string> names;
    for (at::QEngine e : supported) names.push_back(c10::toString(e));
    return absl::FailedPreconditionError(absl::StrCat(
        "engine: ", c10::toString(want), " is not in this LibTorch; it has: ", absl::StrJoin(names, ", ")));
  }
  return TorchCall("setting the quantized engine", [&] { at::globalContext().setQEngine(want); });
}

}  // namespace slimfit
