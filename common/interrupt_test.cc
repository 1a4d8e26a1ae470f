#include "common/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace slimfit {
namespace {

TEST(Interrupt, FirstSignalSetsTheFlagAndTheProcessGoesOn) {
  InstallInterruptHandler();
  EXPECT_FALSE(InterruptRequested());
  ASSERT_EQ(::raise(SIGTERM), 0);  // would terminate the test without the handler
  EXPECT_TRUE(InterruptRequested());
  EXPECT_EQ(InterruptSignal(), SIGTERM);
  EXPECT_EQ(InterruptMessage(), "interrupted by SIGTERM");
  SetInterruptForTesting(0);
  EXPECT_FALSE(InterruptRequested());
}

TEST(InterruptDeathTest, SecondSigintEndsTheProcess) {
  EXPECT_EXIT(
      {
        InstallInterruptHandler();
        ::raise(SIGINT);
        if (!InterruptRequested()) ::_exit(3);
        ::raise(SIGINT);  // default action now
        ::_exit(4);
      },
      ::testing::KilledBySignal(SIGINT), "");
}

}  // namespace
}  // namespace slimfit
