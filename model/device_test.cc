#include "model/device.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/status_matchers.h"
#include "model/test_models.h"

namespace slimfit {
namespace {

using ::slimfit::testing::IsOkAndHolds;
using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

// ResolveDevice as the experiment roots it.
absl::StatusOr<c10::Device> Resolve(const std::string& name) {
  ASSIGN_OR_RETURN(c10::Device d, ResolveDevice(name), AtField("device"));
  return d;
}

TEST(ResolveDeviceTest, CpuNames) {
  EXPECT_THAT(Resolve(""), IsOkAndHolds(c10::Device(c10::kCPU)));
  EXPECT_THAT(Resolve("cpu"), IsOkAndHolds(c10::Device(c10::kCPU)));
  EXPECT_THAT(Resolve(" CPU "), IsOkAndHolds(c10::Device(c10::kCPU)));
}

TEST(ResolveDeviceTest, NamesThatAreNoDeviceSayWhatIsValid) {
  for (const std::string bad : {"tpu", "cuda:x", "cuda:", "cuda:-1", "cuda:1x", "gpu"}) {
    EXPECT_THAT(Resolve(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                       "device: not a device, got \"" + bad + "\"; valid: cpu, cuda, cuda:<index>, auto"))
        << bad;
  }
}

// What this process has of CUDA decides what "cuda" and "auto" give; both
// outcomes are asserted, derived from Cuda().
TEST(ResolveDeviceTest, CudaWhereThisProcessHasIt) {
  const CudaAvailability& cuda = Cuda();
  // The library is loaded exactly when the LibTorch this runs on ships it.
  EXPECT_EQ(cuda.library_loaded, std::filesystem::exists(cuda.library)) << cuda.library << ": " << cuda.library_error;
  if (cuda.device_count > 0) {
    EXPECT_THAT(Resolve("cuda"), IsOkAndHolds(c10::Device(c10::kCUDA, 0)));
    EXPECT_THAT(Resolve("auto"), IsOkAndHolds(c10::Device(c10::kCUDA, 0)));
  } else {
    EXPECT_THAT(Resolve("cuda"), StatusIs(absl::StatusCode::kFailedPrecondition,
                                          HasSubstr(", got \"cuda\"; valid: cpu, auto")));
    EXPECT_THAT(Resolve("auto"), IsOkAndHolds(c10::Device(c10::kCPU)));
    const std::string why =
        cuda.library_loaded ? "no CUDA device is visible to this process" : "this LibTorch has no CUDA";
    EXPECT_THAT(Resolve("cuda:0"), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("device: " + why)));
  }
  // One past the last device is never there.
  const std::string past = "cuda:" + std::to_string(cuda.device_count);
  EXPECT_THAT(Resolve(past), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("device: ")));
}

TEST(DeviceNameTest, RoundTrips) {
  EXPECT_EQ(DeviceName(c10::Device(c10::kCPU)), "cpu");
  EXPECT_EQ(DeviceName(c10::Device(c10::kCUDA)), "cuda:0");
  EXPECT_EQ(DeviceName(c10::Device(c10::kCUDA, 3)), "cuda:3");
}

TEST(ModelOnDeviceTest, SameDeviceMovesNothing) {
  Model m = testing::ScriptedTestModel("Linear", "def forward(self, x: Tensor) -> Tensor:\n    return x @ self.w\n",
                                       {{"w", at::ones({4, 3})}});
  const at::Tensor w = m.NamedParameters().front().second;
  {
    ASSERT_OK_AND_ASSIGN(ModelOnDevice on, ModelOnDevice::Enter(m, c10::kCPU));
    EXPECT_EQ(m.device(), c10::Device(c10::kCPU));
    EXPECT_OK(on.Leave());
    EXPECT_OK(on.Leave());  // a second Leave does nothing
  }
  EXPECT_TRUE(m.NamedParameters().front().second.is_same(w));
}

}  // namespace
}  // namespace slimfit
