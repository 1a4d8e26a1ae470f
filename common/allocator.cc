#include "common/allocator.h"

#include <malloc.h>

#include <atomic>

namespace slimfit {
namespace {
std::atomic<int> state{0};  // 0 untouched, 1 tuned, 2 keep defaults
}  // namespace

bool TuneAllocatorForTensors() {
  int expected = 0;
  if (!state.compare_exchange_strong(expected, 1)) return state.load() == 1;
#ifdef __GLIBC__
  // 32 MiB is glibc's largest mmap threshold on 64-bit systems.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
#endif
  return true;
}

void KeepDefaultAllocator() {
  int expected = 0;
  state.compare_exchange_strong(expected, 2);
}

}  // namespace slimfit
