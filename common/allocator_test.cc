#include "common/allocator.h"

#include <malloc.h>

#include "gtest/gtest.h"

namespace slimfit {
namespace {

TEST(AllocatorTest, TuningIsIdempotentAndFreedBlocksStayInTheHeap) {
  EXPECT_TRUE(TuneAllocatorForTensors());
  EXPECT_TRUE(TuneAllocatorForTensors());
  // An 8 MiB block now comes from the heap (not mmap), and freeing it keeps
  // the memory (below the 1 GiB trim threshold).
  struct mallinfo2 before = mallinfo2();
  void* p = malloc(8 << 20);
  ASSERT_NE(p, nullptr);
  struct mallinfo2 during = mallinfo2();
  EXPECT_EQ(during.hblkhd, before.hblkhd) << "served by mmap";
  free(p);
  struct mallinfo2 after = mallinfo2();
  EXPECT_GE(after.arena, during.arena) << "the heap was trimmed";
}

TEST(AllocatorTest, KeepDefaultAfterTuningDoesNotUndo) {
  TuneAllocatorForTensors();
  KeepDefaultAllocator();
  EXPECT_TRUE(TuneAllocatorForTensors());
}

}  // namespace
}  // namespace slimfit
