#include "common/torch_status.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include <algorithm>
#include <stdexcept>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::IsOkAndHolds;
using ::slimfit::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

TEST(TorchStatusTest, ShapeMismatchBecomesStatusWithTorchMessage) {
  absl::Status s = TorchCall("multiplying", [] {
    at::matmul(at::ones({2, 3}), at::ones({4, 5}));
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInternal,
                          AllOf(StartsWith("multiplying: "),
                                HasSubstr("cannot be multiplied"))));
}

TEST(TorchStatusTest, BacktraceIsNotInTheMessage) {
  absl::Status s = TorchCall("", [] { at::ones({2}).view({3}); });
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("frame #")));
}

TEST(TorchStatusTest, InterpreterErrorsKeepTheErrorAndTheInnermostFrame) {
  torch::jit::Module m("M");
  m.define(R"(
def forward(self, x):
    return self.conv(x)
def conv(self, x):
    return torch.conv2d(x, torch.zeros([8, 3, 3, 3]))
)");
  absl::Status s = TorchCall("running", [&] { m.forward({at::zeros({2, 1, 28, 28})}); });
  const std::string msg(s.message());
  EXPECT_THAT(msg, AllOf(StartsWith("running: RuntimeError: Given groups=1, weight of size [8, 3, 3, 3]"),
                         HasSubstr("to have 3 channels"), HasSubstr("(TorchScript File \"<string>\", line 5, in conv)")));
  EXPECT_THAT(msg, Not(HasSubstr("Traceback"))) << msg;
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 0) << msg;
}

TEST(TorchStatusTest, IndexErrorIsOutOfRange) {
  absl::Status s = TorchCall("indexing", [] { at::ones({2, 2}).select(0, 7); });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("indexing")));
}

TEST(TorchStatusTest, StdExceptionsAreMapped) {
  EXPECT_THAT(TorchCall("c", [] { throw std::invalid_argument("bad"); }),
              StatusIs(absl::StatusCode::kInvalidArgument, "c: bad"));
  EXPECT_THAT(TorchCall("c", [] { throw std::runtime_error("boom"); }),
              StatusIs(absl::StatusCode::kInternal, "c: boom"));
  EXPECT_THAT(TorchCall("c", [] { throw 42; }),
              StatusIs(absl::StatusCode::kUnknown, "c: unknown exception"));
}

TEST(TorchStatusTest, ValuesPassThrough) {
  auto r = TorchCallOr("sum", [] { return at::ones({3}).sum().item<float>(); });
  EXPECT_THAT(r, IsOkAndHolds(3.0f));
}

TEST(TorchStatusTest, StatusReturningCallablesAreFlattened) {
  auto ok = TorchCallOr("c", []() -> absl::StatusOr<int> { return 7; });
  EXPECT_THAT(ok, IsOkAndHolds(7));
  auto err = TorchCallOr("c", []() -> absl::StatusOr<int> { return absl::NotFoundError("x"); });
  EXPECT_THAT(err, StatusIs(absl::StatusCode::kNotFound, "c: x"));
  EXPECT_THAT(TorchCall("c", [] { return absl::DataLossError("y"); }),
              StatusIs(absl::StatusCode::kDataLoss, "c: y"));
  EXPECT_THAT(TorchCall("c", []() -> absl::Status { at::ones({2}).view({3}); return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("c: ")));
}

}  // namespace
}  // namespace slimfit
