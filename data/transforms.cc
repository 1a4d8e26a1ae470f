#include "data/transforms.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {
namespace {

absl::StatusOr<at::Tensor> Field(Batch& batch, int field, const std::string& who) {
  if (field < 0 || field >= static_cast<int>(batch.size()) || !batch[field].isTensor()) {
    return absl::FailedPreconditionError(absl::StrCat(
        who, ": batch field ", field, " is not a tensor (the batch has ",
        batch.size(), " fields)"));
  }
  return batch[field].toTensor();
}

// [N, C, H, W] images, of a floating type when `need_float` (geometric
// transforms work on uint8 too).
absl::Status NeedImages(const at::Tensor& x, const std::string& who, bool need_float = true) {
  if (x.dim() != 4) {
    return absl::FailedPreconditionError(absl::StrCat(
        who, ": expects images shaped [N, C, H, W], got ", x.dim(), " dimensions"));
  }
  if (need_float && !at::isFloatingType(x.scalar_type())) {
    return absl::FailedPreconditionError(absl::StrCat(
        who, ": expects float images (list to_float first), got ", c10::toString(x.scalar_type())));
  }
  return absl::OkStatus();
}

// normalize's per-channel values fit [N, C, H, W] images: one, or one per channel.
absl::Status CheckMeans(size_t means, const at::Tensor& x) {
  if (means != 1 && static_cast<int64_t>(means) != x.size(1)) {
    return FieldErrorWithCode(absl::StatusCode::kFailedPrecondition, "normalize.mean",
                              absl::StrCat("does not fit images with ", x.size(1), " channels"),
                              absl::StrCat(means, " values"), absl::StrCat("1 or ", x.size(1), " values"));
  }
  return absl::OkStatus();
}

// x as float, times m: one pass for integer images (an integer tensor times
// a float is float).
template <typename M>
at::Tensor FloatTimes(const at::Tensor& x, const M& m) {
  return at::isFloatingType(x.scalar_type()) ? x.to(at::kFloat).mul_(m) : at::mul(x, m);
}

class ToFloat : public Transform {
 public:
  ToFloat(int field, float scale) : field_(field), scale_(scale) {}
  absl::Status Apply(Batch& batch, at::Generator&) const override {
    ASSIGN_OR_RETURN(at::Tensor x, Field(batch, field_, name()));
    return TorchCall(name(), [&] { batch[field_] = FloatTimes(x, scale_); });
  }
  std::string name() const override { return "to_float"; }
  int field() const { return field_; }
  float scale() const { return scale_; }

 private:
  int field_;
  float scale_;
};

class Normalize : public Transform {
 public:
  Normalize(int field, std::vector<float> mean, std::vector<float> std)
      : field_(field), mean_(std::move(mean)), std_(std::move(std)) {}
  absl::Status Apply(Batch& batch, at::Generator&) const override {
    ASSIGN_OR_RETURN(at::Tensor x, Field(batch, field_, name()));
    RETURN_IF_ERROR(NeedImages(x, name()));
    RETURN_IF_ERROR(CheckMeans(mean_.size(), x));
    return TorchCall(name(), [&] {
      const int64_t k = static_cast<int64_t>(mean_.size());
      at::Tensor mean = at::tensor(mean_).view({1, k, 1, 1}).to(x.scalar_type());
      at::Tensor inv_std = at::tensor(std_).reciprocal().view({1, k, 1, 1}).to(x.scalar_type());
      batch[field_] = (x - mean).mul_(inv_std);
    });
  }
  std::string name() const override { return "normalize"; }
  int field() const { return field_; }
  const std::vector<float>& mean() const { return mean_; }
  const std::vector<float>& std() const { return std_; }

 private:
  int field_;
  std::vector<float> mean_, std_;
};

class RandomCrop : public Transform {
 public:
  RandomCrop(int field, int64_t size, int64_t padding)
      : field_(field), size_(size), padding_(padding) {}
  absl::Status Apply(Batch& batch, at::Generator& gen) const override {
    ASSIGN_OR_RETURN(at::Tensor x, Field(batch, field_, name()));
    RETURN_IF_ERROR(NeedImages(x, name(), /*need_float=*/false));
    const int64_t ph = x.size(2) + 2 * padding_, pw = x.size(3) + 2 * padding_;
    if (size_ > ph || size_ > pw) {
      return FieldErrorWithCode(absl::StatusCode::kFailedPrecondition, "random_crop.size",
                                absl::StrCat("larger than the padded ", ph, "x", pw, " images"), absl::StrCat(size_),
                                absl::StrCat("<= ", std::min(ph, pw)));
    }
    return TorchCall(name(), [&] {
      const int64_t n = x.size(0);
      at::Tensor padded = padding_ > 0
                              ? at::constant_pad_nd(x, {padding_, padding_, padding_, padding_}, 0)
                              : x;
      // Gather windows with one advanced-indexing op: rows [N, S], cols [N, S].
      at::Tensor top = at::randint(0, ph - size_ + 1, {n, 1}, gen, at::kLong);
      at::Tensor left = at::randint(0, pw - size_ + 1, {n, 1}, gen, at::kLong);
      at::Tensor ar = at::arange(size_, at::kLong).view({1, size_});
      at::Tensor rows = (top + ar).view({n, 1, size_, 1});
      at::Tensor cols = (left + ar).view({n, 1, 1, size_});
      at::Tensor batch_idx = at::arange(n, at::kLong).view({n, 1, 1, 1});
      at::Tensor chan_idx = at::arange(x.size(1), at::kLong).view({1, x.size(1), 1, 1});
      batch[field_] = padded.index({batch_idx, chan_idx, rows, cols});
    });
  }
  std::string name() const override { return "random_crop"; }

 private:
  int field_;
  int64_t size_, padding_;
};

class RandomHorizontalFlip : public Transform {
 public:
  RandomHorizontalFlip(int field, double p) : field_(field), p_(p) {}
  absl::Status Apply(Batch& batch, at::Generator& gen) const override {
    ASSIGN_OR_RETURN(at::Tensor x, Field(batch, field_, name()));
    RETURN_IF_ERROR(NeedImages(x, name(), /*need_float=*/false));
    return TorchCall(name(), [&] {
      at::Tensor u = at::empty({x.size(0)}, at::kFloat);
      u.uniform_(0.0, 1.0, gen);
      // Only the chosen rows are flipped (copied); the rest stay as they are.
      at::Tensor rows = at::nonzero(u < p_).squeeze(1);
      if (rows.numel() == 0) return;
      at::Tensor out = x.clone();
      out.index_copy_(0, rows, x.index_select(0, rows).flip({3}));
      batch[field_] = out;
    });
  }
  std::string name() const override { return "random_horizontal_flip"; }

 private:
  int field_;
  double p_;
};

// to_float directly followed by normalize on the same field: uint8 images
// become normalized floats in two passes, x * (scale / std) + (-mean / std),
// instead of four. The same arithmetic up to float rounding.
class ToFloatNormalize : public Transform {
 public:
  ToFloatNormalize(const ToFloat& to_float, const Normalize& normalize) : field_(to_float.field()) {
    for (size_t i = 0; i < normalize.mean().size(); ++i) {
      a_.push_back(to_float.scale() / normalize.std()[i]);
      b_.push_back(-normalize.mean()[i] / normalize.std()[i]);
    }
  }
  absl::Status Apply(Batch& batch, at::Generator&) const override {
    ASSIGN_OR_RETURN(at::Tensor x, Field(batch, field_, name()));
    RETURN_IF_ERROR(NeedImages(x, name(), /*need_float=*/false));
    RETURN_IF_ERROR(CheckMeans(a_.size(), x));
    return TorchCall(name(), [&] {
      const int64_t k = static_cast<int64_t>(a_.size());
      batch[field_] = FloatTimes(x, at::tensor(a_).view({1, k, 1, 1})).add_(at::tensor(b_).view({1, k, 1, 1}));
    });
  }
  std::string name() const override { return "to_float+normalize"; }

 private:
  int field_;
  std::vector<float> a_, b_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Transform>> MakeTransform(const TransformConfig& config,
                                                         int field) {
  switch (config.transform_case()) {
    case TransformConfig::kToFloat: {
      const float scale = config.to_float().scale() == 0 ? 1.0f / 255.0f : config.to_float().scale();
      return std::make_unique<ToFloat>(field, scale);
    }
    case TransformConfig::kNormalize: {
      const auto& c = config.normalize();
      if (c.mean_size() == 0) return FieldError("normalize.mean", "empty", "[]", "one value per channel");
      if (c.mean_size() != c.std_size()) {
        return FieldError("normalize.std", "not one value per normalize.mean value",
                          absl::StrCat(c.std_size(), " values"), absl::StrCat(c.mean_size(), ", as normalize.mean"));
      }
      for (int i = 0; i < c.std_size(); ++i) {
        if (!(c.std(i) > 0)) return FieldError(IndexedField("normalize.std", i), "not positive", c.std(i), "> 0");
      }
      return std::make_unique<Normalize>(field, std::vector<float>(c.mean().begin(), c.mean().end()),
                                         std::vector<float>(c.std().begin(), c.std().end()));
    }
    case TransformConfig::kRandomCrop: {
      const auto& c = config.random_crop();
      if (c.size() < 1) return FieldError("random_crop.size", "required", c.size(), ">= 1");
      if (c.padding() < 0) return FieldError("random_crop.padding", "negative", c.padding(), ">= 0");
      return std::make_unique<RandomCrop>(field, c.size(), c.padding());
    }
    case TransformConfig::kRandomHorizontalFlip: {
      const bool has_p = config.random_horizontal_flip().p() != 0;
      const float p = has_p ? config.random_horizontal_flip().p() : 0.5f;
      if (!(p >= 0 && p <= 1)) {
        return FieldError("random_horizontal_flip.p", "out of range", p, "[0, 1] (0 = 0.5)");
      }
      return std::make_unique<RandomHorizontalFlip>(field, p);
    }
    case TransformConfig::TRANSFORM_NOT_SET:
      break;
  }
  return FieldError("", "no transform set", "", "to_float, normalize, random_crop, random_horizontal_flip");
}

absl::StatusOr<std::vector<std::shared_ptr<const Transform>>> MakeTransforms(
    const google::protobuf::RepeatedPtrField<TransformConfig>& configs, bool scale_uint8,
    const std::string& context) {
  std::vector<std::shared_ptr<const Transform>> out;
  bool has_to_float = false;
  for (const auto& c : configs) has_to_float |= c.has_to_float();
  // The implicit to_float goes where float is first needed (before the first
  // normalize, else last): crops and flips of uint8 are the same pixels as of
  // their float scaling, at a quarter of the memory traffic.
  int implicit_at = scale_uint8 && !has_to_float ? configs.size() : -1;
  for (int i = 0; implicit_at >= 0 && i < configs.size(); ++i) {
    if (configs.Get(i).has_normalize()) {
      implicit_at = i;
      break;
    }
  }
  for (int i = 0; i <= configs.size(); ++i) {
    if (i == implicit_at) out.push_back(std::make_shared<ToFloat>(0, 1.0f / 255.0f));
    if (i == configs.size()) break;
    ASSIGN_OR_RETURN(std::unique_ptr<Transform> t, MakeTransform(configs.Get(i)), AtField(IndexedField(context, i)));

    out.push_back(std::move(t));
  }
  // Fuse to_float → normalize pairs on the same field.
  std::vector<std::shared_ptr<const Transform>> fused;
  for (size_t i = 0; i < out.size(); ++i) {
    const auto* to_float = dynamic_cast<const ToFloat*>(out[i].get());
    const auto* normalize = i + 1 < out.size() ? dynamic_cast<const Normalize*>(out[i + 1].get()) : nullptr;
    if (to_float != nullptr && normalize != nullptr && to_float->field() == normalize->field()) {
      fused.push_back(std::make_shared<ToFloatNormalize>(*to_float, *normalize));
      ++i;
    } else {
      fused.push_back(out[i]);
    }
  }
  return fused;
}

}  // namespace slimfit
