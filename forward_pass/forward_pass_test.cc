#include "forward_pass/forward_pass.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include "common/field_error.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/test_models.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// forward(a, b, c) = a * 2 + b.sum(1, keepdim) * 0 + c["x"]: three inputs, one a dict.
Model ThreeInputModel() {
  return testing::ScriptedTestModel("ThreeInputs", R"(
def forward(self, a: Tensor, b: Tensor, c: Dict[str, Tensor]) -> Tensor:
    return a * 2.0 + b.sum(1, keepdim=True) * 0.0 + c["x"]
)");
}

TEST(ForwardPassTest, DefaultPatternCallsModelWithFirstElement) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  ForwardPass fp;
  Batch batch{at::randn({3, 1, 28, 28}), at::zeros({3}, at::kLong)};
  ASSERT_OK_AND_ASSIGN(c10::IValue out, fp.Forward(m, batch, c10::kCPU));
  EXPECT_THAT(out.toTensor().sizes().vec(), ElementsAre(3, 10));
  ASSERT_OK_AND_ASSIGN(auto shapes, fp.GetModelInputShapes());
  EXPECT_THAT(shapes, ElementsAre(ElementsAre(1, 28, 28)));
}

TEST(ForwardPassTest, PatternReordersAndSkipsElements) {
  ASSERT_OK_AND_ASSIGN(InputPattern p, InputPattern::Parse("(1, 0, '_', 2)"));
  ForwardPass fp(p);
  c10::Dict<std::string, at::Tensor> dict;
  dict.insert("x", at::ones({2, 1}));
  at::Tensor a = at::full({2, 1}, 5.0), b = at::full({2, 3}, 7.0);
  Batch batch{b, a, at::zeros({2}, at::kLong), dict};
  ASSERT_OK_AND_ASSIGN(ModelInputs in, fp.ExtractModelInputs(batch));
  ASSERT_EQ(in.size(), 3u);
  EXPECT_TRUE(in[0].toTensor().equal(a));
  Model m = ThreeInputModel();
  ASSERT_OK_AND_ASSIGN(c10::IValue out, fp.ModelCall(m, in, c10::kCPU));
  EXPECT_TRUE(out.toTensor().equal(at::full({2, 1}, 11.0)));
}

TEST(ForwardPassTest, RandomInputsMatchStructureShapesAndIntRanges) {
  ASSERT_OK_AND_ASSIGN(InputPattern p, InputPattern::Parse("(0, 1, '_')"));
  ForwardPass fp(p);
  c10::Dict<std::string, at::Tensor> dict;
  dict.insert("ids", at::randint(3, 50, {4, 7}, at::kLong));
  dict.insert("mask", at::ones({4, 7}, at::kBool));
  std::vector<c10::IValue> pair = {at::randn({4, 2}), at::randn({4, 5, 5})};
  Batch batch{dict, c10::ivalue::Tuple::create(pair), at::zeros({4}, at::kLong)};
  ASSERT_OK(fp.InferFrom(batch));
  ASSERT_OK_AND_ASSIGN(ModelInputs fake, fp.CreateRandomModelInputs(9));
  ASSERT_EQ(fake.size(), 2u);
  auto d = fake[0].toGenericDict();
  at::Tensor ids = d.at("ids").toTensor();
  EXPECT_THAT(ids.sizes().vec(), ElementsAre(9, 7));
  EXPECT_EQ(ids.scalar_type(), at::kLong);
  EXPECT_GE(ids.min().item<int64_t>(), dict.at("ids").min().item<int64_t>());
  EXPECT_LE(ids.max().item<int64_t>(), dict.at("ids").max().item<int64_t>());
  EXPECT_EQ(d.at("mask").toTensor().scalar_type(), at::kBool);
  const auto& t = fake[1].toTupleRef().elements();
  EXPECT_THAT(t[1].toTensor().sizes().vec(), ElementsAre(9, 5, 5));
  ASSERT_OK_AND_ASSIGN(auto shapes, fp.GetModelInputShapes());
  EXPECT_THAT(shapes, ElementsAre(ElementsAre(7), ElementsAre(7), ElementsAre(2), ElementsAre(5, 5)));
}

TEST(ForwardPassTest, RandomInputsRunTheModel) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("mobilenetv2_small"));
  ForwardPass fp;
  ASSERT_OK(fp.InferFromMetadata(m.metadata()));
  ASSERT_OK_AND_ASSIGN(ModelInputs fake, fp.CreateRandomModelInputs(2));
  m.Eval();
  ASSERT_OK_AND_ASSIGN(c10::IValue out, fp.ModelCall(m, fake, c10::kCPU));
  EXPECT_THAT(out.toTensor().sizes().vec(), ElementsAre(2, 10));
}

TEST(ForwardPassTest, ErrorsAreClear) {
  ForwardPass fp;
  EXPECT_THAT(fp.CreateRandomModelInputs(2),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no batch seen yet")));
  EXPECT_THAT(fp.ExtractModelInputs(Batch{at::zeros({2, 3})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("input pattern (0, '_') has 2 entries but the batch has 1 element")));
  EXPECT_THAT(fp.InferFrom(Batch{c10::IValue("text"), at::zeros({1})}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batch[0]: a String is not a common input")));
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  EXPECT_THAT(fp.ModelCall(m, {at::zeros({2, 3})}, c10::kCPU),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("model forward")));
}

// A model whose input is a string: uncommon, so a subclass supplies inputs.
class TextForwardPass : public ForwardPass {
 public:
  TextForwardPass() : ForwardPass(InputPattern::Default(), /*expecting_common_inputs=*/false) {}
  absl::StatusOr<ModelInputs> CreateRandomModelInputs(int64_t batch_size) override {
    return ModelInputs{c10::IValue(std::string(static_cast<size_t>(batch_size), 'a'))};
  }
  absl::StatusOr<std::vector<std::vector<int64_t>>> GetModelInputShapes() override {
    return std::vector<std::vector<int64_t>>{{}};
  }
};

TEST(ForwardPassTest, SubclassHandlesUncommonInputs) {
  Model model = testing::ScriptedTestModel("Length", "def forward(self, s: str) -> int:\n    return len(s)\n");
  TextForwardPass fp;
  ASSERT_OK_AND_ASSIGN(ModelInputs in, fp.CreateRandomModelInputs(5));
  ASSERT_OK_AND_ASSIGN(c10::IValue out, fp.ModelCall(model, in, c10::kCPU));
  EXPECT_EQ(out.toInt(), 5);
  ASSERT_OK_AND_ASSIGN(ModelInputs extracted, fp.ExtractModelInputs(Batch{c10::IValue("xyz"), at::zeros({1})}));
  EXPECT_EQ(extracted[0].toStringRef(), "xyz");
  // The base class would have to infer: it says so.
  ForwardPass base(InputPattern::Default(), false);
  EXPECT_THAT(base.CreateRandomModelInputs(1),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("override CreateRandomModelInputs")));
}

TEST(ForwardPassTest, MakeFromConfig) {
  ForwardPassConfig c;
  c.set_input_pattern_text("(0, 0)");
  EXPECT_THAT(WithContext(MakeForwardPass(c).status(), AtField("forward_pass")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("forward_pass.input_pattern_text: model position 0 appears twice, got \"(0, 0)\"")));
}

}  // namespace
}  // namespace slimfit
