// NCCL on CUDA tensors (tagged gpu: fails, never skips, without a device).
// One rank on one GPU: the collectives run through NCCL, in place, on the
// device. Two ranks on two GPUs (tagged gpu and multi_gpu): sums, maxima and
// broadcasts across them.
#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "distributed/launch.h"
#include "distributed/process_group.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

int Devices() { return at::hasCUDA() ? static_cast<int>(at::getNumGPUs()) : 0; }

TEST(NcclGpuTest, OneRankReducesCudaTensorsInPlace) {
  ASSERT_GE(Devices(), 1) << "this test needs a CUDA device (tag gpu)";
  ASSERT_OK_AND_ASSIGN(int port, FindFreePort());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ProcessGroup> group,
                       ProcessGroup::Connect({.rank = 0, .world_size = 1, .master_port = port, .timeout_seconds = 60}));
  ASSERT_EQ(group->BackendFor(c10::kCUDA), "nccl");
  const at::Device cuda("cuda:0");
  std::vector<at::Tensor> t{at::arange(6, at::TensorOptions().dtype(at::kFloat).device(cuda)), at::full({2}, 3.0)};
  const void* where = t[0].data_ptr();
  ASSERT_OK(group->AllReduceSum(t));
  ASSERT_OK(group->AllReduceMax(t));
  ASSERT_OK(group->Broadcast(t, 0));
  EXPECT_EQ(t[0].data_ptr(), where) << "in place, on the device";
  EXPECT_TRUE(t[0].is_cuda());
  EXPECT_TRUE(at::equal(t[0].cpu(), at::arange(6, at::kFloat)));
  EXPECT_TRUE(at::equal(t[1], at::full({2}, 3.0)));
}

TEST(NcclMultiGpuTest, TwoRanksOnTwoGpus) {
  ASSERT_GE(Devices(), 2) << "this test needs two CUDA devices (tags gpu, multi_gpu)";
  ASSERT_OK_AND_ASSIGN(int port, FindFreePort());
  std::vector<std::string> results(2);
  auto rank = [&](int r) {
    auto group = ProcessGroup::Connect({.rank = r, .world_size = 2, .master_port = port, .timeout_seconds = 60});
    if (!group.ok()) {
      results[r] = group.status().ToString();
      return;
    }
    const at::Device cuda(c10::kCUDA, static_cast<c10::DeviceIndex>(r));
    std::vector<at::Tensor> t{at::full({4}, r + 1.0, at::TensorOptions().device(cuda))};
    absl::Status s = (*group)->AllReduceSum(t);
    const float sum = s.ok() ? t[0][0].item<float>() : -1;
    std::vector<at::Tensor> m{at::full({1}, 10.0 * r, at::TensorOptions().device(cuda))};
    if (s.ok()) s = (*group)->AllReduceMax(m);
    std::vector<at::Tensor> b{at::full({1}, r == 1 ? 7.0 : 0.0, at::TensorOptions().device(cuda))};
    if (s.ok()) s = (*group)->Broadcast(b, 1);
    results[r] = s.ok() ? absl::StrCat("sum ", sum, " max ", m[0].item<float>(), " broadcast ", b[0].item<float>())
                        : s.ToString();
  };
  std::thread r0(rank, 0), r1(rank, 1);
  r0.join();
  r1.join();
  for (int r : {0, 1}) EXPECT_EQ(results[r], "sum 3 max 10 broadcast 7") << "rank " << r;
}

}  // namespace
}  // namespace slimfit
