#include "model/device.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>

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
    EXPECT_THAT(Resolve(bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "device: not a device, got \"" + bad + "\"; valid: cpu, cuda, cuda:<index>, auto"))
        << bad;
  }
}

// This test process sees no CUDA device on any machine: CUDA_VISIBLE_DEVICES
// is empty before anything looks (device_gpu_test covers a device that is
// there).
const bool kNoVisibleDevice = [] { return setenv("CUDA_VISIBLE_DEVICES", "", 1) == 0; }();

TEST(ResolveDeviceTest, CudaWithoutAVisibleDeviceSaysWhy) {
  ASSERT_TRUE(kNoVisibleDevice);
  const CudaAvailability& cuda = Cuda();
  // The library is loaded exactly when the LibTorch this runs on ships it.
  EXPECT_EQ(cuda.library_loaded, std::filesystem::exists(cuda.library)) << cuda.library << ": " << cuda.library_error;
  EXPECT_EQ(cuda.device_count, 0);
  const std::string why =
      cuda.library_loaded ? "no CUDA device is visible to this process" : "this LibTorch has no CUDA";
  for (const std::string name : {"cuda", "cuda:0", "CUDA:1"}) {
    EXPECT_THAT(Resolve(name), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("device: " + why))) << name;
    EXPECT_THAT(Resolve(name),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(", got \"" + name + "\"; valid: cpu, auto")));
  }
  EXPECT_THAT(Resolve("auto"), IsOkAndHolds(c10::Device(c10::kCPU)));
}

TEST(CheckDeviceNameTest, FormsOnlyWithoutLookingForCuda) {
  EXPECT_OK(CheckDeviceName("cuda:7"));
  EXPECT_OK(CheckDeviceName("auto"));
  EXPECT_THAT(CheckDeviceName("cuda:x"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a device")));
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

TEST(ModelOnDeviceTest, AMoveThatFailsLeavesTheModelWhereItWas) {
  Model m = testing::ScriptedTestModel("Plain", "def forward(self, x: Tensor) -> Tensor:\n    return x * self.w\n",
                                       {{"w", at::ones({3})}});
  EXPECT_THAT(ModelOnDevice::Enter(m, c10::Device(c10::kCUDA, 0)).status(), ::testing::Not(::slimfit::testing::IsOk()));
  EXPECT_THAT(ModelOnDevice::Enter(m, c10::Device(c10::kCUDA, 0)).status().message(),
              HasSubstr("moving model to cuda:0"));
  EXPECT_EQ(m.device(), c10::Device(c10::kCPU));
}

TEST(ModelOnDeviceTest, QuantizedModelsStayOnTheCpu) {
  Model plain = testing::ScriptedTestModel("Plain", "def forward(self, x: Tensor) -> Tensor:\n    return x * self.w\n",
                                           {{"w", at::ones({3})}});
  EXPECT_FALSE(CpuOnly(plain));

  torch::jit::Module m("__torch__.slimfit_test.HoldsQuantized");
  m.register_attribute("training", c10::BoolType::get(), false);
  m.register_buffer("q", at::quantize_per_tensor(at::ones({3}), 0.1, 0, at::kQInt8));
  m.define("def forward(self, x: Tensor) -> Tensor:\n    return x * self.q.dequantize()\n");
  Model quantized(m);
  EXPECT_TRUE(CpuOnly(quantized));
  // Asked for CUDA, it stays where its kernels are (no GPU needed to check:
  // nothing moves).
  ASSERT_OK_AND_ASSIGN(ModelOnDevice on, ModelOnDevice::Enter(quantized, c10::Device(c10::kCUDA, 0)));
  EXPECT_EQ(on.device(), c10::Device(c10::kCPU));
  EXPECT_EQ(quantized.device(), c10::Device(c10::kCPU));
}

}  // namespace
}  // namespace slimfit
