// With //distributed:nccl linked (no GPU needed): tensors on a CUDA device
// are NCCL's, CPU tensors stay Gloo's and still reduce. The CUDA path runs
// in nccl_gpu_test (tagged gpu).
#include <ATen/ATen.h>

#include "common/status_matchers.h"
#include "distributed/launch.h"
#include "distributed/process_group.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

TEST(NcclTest, CudaTensorsAreNcclsAndCpuTensorsGloos) {
  ASSERT_OK_AND_ASSIGN(int port, FindFreePort());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ProcessGroup> group,
                       ProcessGroup::Connect({.rank = 0, .world_size = 1, .master_port = port, .timeout_seconds = 30}));
  EXPECT_EQ(group->BackendFor(c10::kCUDA), "nccl");
  EXPECT_EQ(group->BackendFor(c10::kCPU), "gloo");
  std::vector<at::Tensor> t{at::full({3}, 2.0), at::arange(4)};
  ASSERT_OK(group->AllReduceSum(t));
  EXPECT_TRUE(at::equal(t[0], at::full({3}, 2.0)));
  EXPECT_TRUE(at::equal(t[1], at::arange(4)));
}

}  // namespace
}  // namespace slimfit
