#include "common/text_proto.h"

#include <string>

#include "common/files.h"
#include "common/status_matchers.h"
#include "common/testdata/test_config.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::slimfit::testing::TestConfig;
using ::slimfit::testing::TestLayer;
using ::testing::HasSubstr;

TEST(TextProtoTest, ParsesValidText) {
  TestConfig c;
  ASSERT_OK(ParseTextProto(R"pb(
    epochs: 3
    layers { name: "conv1" ratio: 0.5 kind: CONV }
    layers { name: "fc" kind: LINEAR }
  )pb", "inline", &c));
  EXPECT_EQ(c.epochs(), 3);
  ASSERT_EQ(c.layers_size(), 2);
  EXPECT_EQ(c.layers(0).name(), "conv1");
  EXPECT_FLOAT_EQ(c.layers(0).ratio(), 0.5f);
  EXPECT_EQ(c.layers(1).kind(), TestLayer::LINEAR);
}

TEST(TextProtoTest, UnknownFieldIsRejectedWithLineAndColumn) {
  TestConfig c;
  absl::Status s = ParseTextProto("epochs: 3\nlayers { nmae: \"x\" }\n",
                                  "fashion.pbtxt", &c);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("fashion.pbtxt:2:14:")));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("has no field named \"nmae\"")));
}

TEST(TextProtoTest, UnknownEnumValueIsRejected) {
  TestConfig c;
  EXPECT_THAT(ParseTextProto("layers { kind: CONVV }", "x.pbtxt", &c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("x.pbtxt:1:22: Unknown enumeration value of "
                                 "\"CONVV\"")));
}

TEST(TextProtoTest, SyntaxErrorsAreReported) {
  TestConfig c;
  EXPECT_THAT(ParseTextProto("epochs: three", "x.pbtxt", &c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("x.pbtxt:1:9: Expected integer")));
  EXPECT_THAT(ParseTextProto("layers { name: \"a\" ", "y.pbtxt", &c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("y.pbtxt:1:")));
}

TEST(TextProtoTest, MissingFileIsNotFound) {
  TestConfig c;
  EXPECT_THAT(ParseTextProtoFile("/no/such/experiment.pbtxt", &c),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("/no/such/experiment.pbtxt")));
}

TEST(TextProtoTest, FileErrorsNameTheFile) {
  const std::string path = testing::TempPath("bad.pbtxt");
  ASSERT_OK(WriteFileAtomically(path, "epochs: 1\n\n  bogus: 2\n"));
  TestConfig c;
  EXPECT_THAT(ParseTextProtoFile(path, &c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(path + ":3:8:")));
}

TEST(TextProtoTest, PrintsBackToParseableText) {
  TestConfig c;
  c.set_epochs(2);
  c.add_layers()->set_name("fc");
  TestConfig back;
  ASSERT_OK(ParseTextProto(ToTextProto(c), "printed", &back));
  EXPECT_EQ(back.epochs(), 2);
  EXPECT_EQ(back.layers(0).name(), "fc");
}

}  // namespace
}  // namespace slimfit
