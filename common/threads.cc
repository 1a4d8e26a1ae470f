#include "common/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace slimfit {

int ConfigureThreads(int num_threads) {
  // A LibTorch built on OpenBLAS (Debian's, say; the wheel's carries MKL):
  // its setter exists only when OpenBLAS is loaded.
  using SetThreads = void (*)(int);
  if (auto* set = reinterpret_cast<SetThreads>(
          ::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(1);
  }
  if (num_threads > 0) at::set_num_threads(num_threads);
  return at::get_num_threads();
}

ScopedThreads::ScopedThreads(int num_threads) : before_(at::get_num_threads()) { ConfigureThreads(num_threads); }

ScopedThreads::~ScopedThreads() { at::set_num_threads(before_); }

}  // namespace slimfit
