#include "forward_pass/input_pattern.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(InputPatternTest, DefaultIsFirstElementOnly) {
  InputPattern p = InputPattern::Default();
  EXPECT_THAT(p.model_positions(), ElementsAre(0));
  EXPECT_THAT(p.ignored(), ElementsAre(1));
  EXPECT_EQ(p.ToString(), "(0, '_')");
}

TEST(InputPatternTest, ParsesNeutrinoTextForms) {
  ASSERT_OK_AND_ASSIGN(InputPattern p, InputPattern::Parse("(1, 0, '_', 2)"));
  EXPECT_THAT(p.model_positions(), ElementsAre(1, 0, 3));
  EXPECT_THAT(p.ignored(), ElementsAre(2));
  EXPECT_EQ(p.arity(), 4u);
  ASSERT_OK_AND_ASSIGN(p, InputPattern::Parse(" ( 0 , \"_\" ) "));
  EXPECT_THAT(p.model_positions(), ElementsAre(0));
  ASSERT_OK_AND_ASSIGN(p, InputPattern::Parse("(0,)"));
  EXPECT_EQ(p.ToString(), "(0,)");
  ASSERT_OK_AND_ASSIGN(p, InputPattern::Parse("(_, 0)"));
  EXPECT_THAT(p.model_positions(), ElementsAre(1));
}

TEST(InputPatternTest, ListAndConfigForms) {
  ASSERT_OK_AND_ASSIGN(InputPattern p, InputPattern::FromList({"1", "0", "_", "2"}));
  EXPECT_THAT(p.model_positions(), ElementsAre(1, 0, 3));
  ForwardPassConfig c;
  ASSERT_OK_AND_ASSIGN(p, InputPattern::FromConfig(c));
  EXPECT_EQ(p.ToString(), "(0, '_')");
  c.set_input_pattern_text("(0, 1, '_')");
  ASSERT_OK_AND_ASSIGN(p, InputPattern::FromConfig(c));
  EXPECT_THAT(p.model_positions(), ElementsAre(0, 1));
  c.add_input_pattern("0");
  EXPECT_THAT(InputPattern::FromConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "input_pattern: set beside input_pattern_text, got [0]; valid: one of input_pattern_text, "
                       "input_pattern"));
  c.clear_input_pattern();
  c.set_input_pattern_text("(0, 0)");
  EXPECT_THAT(InputPattern::FromConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("input_pattern_text: model position 0 appears twice, got \"(0, 0)\"")));
}

TEST(InputPatternTest, BadPatternsQuoteThePattern) {
  EXPECT_THAT(InputPattern::Parse("0, '_'"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "not a parenthesised tuple such as (0, '_'), got \"0, '_'\"; valid: a tuple with one entry per "
                       "batch element: its model position or '_'"));
  EXPECT_THAT(InputPattern::Parse("(0, x)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "entry \"x\" is neither an integer nor '_', got \"(0, x)\"; valid: a tuple with one entry per "
                       "batch element: its model position or '_'"));
  EXPECT_THAT(InputPattern::Parse("(0, 0, '_')"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "model position 0 appears twice, got \"(0, 0, '_')\"; valid: a tuple with one entry per batch "
                       "element: its model position or '_'"));
  EXPECT_THAT(InputPattern::Parse("('_', '_')"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no entry goes to the model")));
  EXPECT_THAT(InputPattern::Parse("(0, 2)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model position 2 is out of range: with 2 model inputs, positions are 0..1")));
  EXPECT_THAT(InputPattern::Parse("(-1, 0)"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("-1 is negative")));
  EXPECT_THAT(InputPattern::Parse("()"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty, got \"()\"")));
  EXPECT_THAT(InputPattern::FromList({"0", "zero"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got [0, zero]")));
}

TEST(InputPatternTest, ArityMismatchQuotesPatternAndBatchArity) {
  ASSERT_OK_AND_ASSIGN(InputPattern p, InputPattern::Parse("(1, 0, '_', 2)"));
  EXPECT_OK(p.ValidateFor(4));
  EXPECT_THAT(p.ValidateFor(2),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("input pattern (1, 0, '_', 2) has 4 entries but the batch has 2 elements")));
}

}  // namespace
}  // namespace slimfit
