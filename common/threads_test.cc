#include "common/threads.h"

#include <ATen/Parallel.h>

#include "gtest/gtest.h"

namespace slimfit {
namespace {

TEST(ThreadsTest, SetsIntraOpThreads) {
  EXPECT_EQ(ConfigureThreads(1), 1);
  EXPECT_EQ(at::get_num_threads(), 1);
}

TEST(ThreadsTest, ZeroKeepsCurrentSetting) {
  ConfigureThreads(1);
  EXPECT_EQ(ConfigureThreads(0), 1);
}

TEST(ThreadsTest, ScopedThreadsRestoresTheCountInForceBeforeIt) {
  ConfigureThreads(1);
  {
    const ScopedThreads two(2);
    EXPECT_EQ(at::get_num_threads(), 2);
    at::set_num_threads(3);  // changed again inside the scope
  }
  EXPECT_EQ(at::get_num_threads(), 1);
}

}  // namespace
}  // namespace slimfit
