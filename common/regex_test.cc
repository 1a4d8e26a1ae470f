#include "common/regex.h"

#include <string>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

TEST(RegexTest, MatchesWholeModulePaths) {
  ASSERT_OK_AND_ASSIGN(auto re, CompileUserRegex(R"(layer\d+\.b0\.conv\d)", "f"));
  EXPECT_TRUE(FullMatch(*re, "layer2.b0.conv1"));
  EXPECT_FALSE(FullMatch(*re, "layer2.b0.conv1.weight")) << "partial matches do not count";
  EXPECT_FALSE(FullMatch(*re, "xlayer2.b0.conv1"));
}

TEST(RegexTest, BadPatternNamesTheFieldAndPattern) {
  EXPECT_THAT(CompileUserRegex("conv(1", "pruning.layers[0].module_regex"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "pruning.layers[0].module_regex: not an RE2 regex (missing ): conv(1), got \"conv(1\""));
}

TEST(RegexTest, BackreferencesAreRefused) {
  // RE2 has no backreferences: the feature that makes other engines exponential.
  EXPECT_THAT(CompileUserRegex(R"((a)\1)", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid escape")));
}

TEST(RegexTest, PathologicalPatternStaysLinear) {
  // (a+)+$ against "aaaa...b" takes exponential time in backtracking engines.
  ASSERT_OK_AND_ASSIGN(auto re, CompileUserRegex("(a+)+$", "f"));
  const std::string text = std::string(100000, 'a') + "b";
  EXPECT_FALSE(FullMatch(*re, text));
  EXPECT_TRUE(RE2::PartialMatch(text, *re) == false);
}

}  // namespace
}  // namespace slimfit
