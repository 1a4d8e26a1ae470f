#include "common/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace slimfit {

int ConfigureThreads(int num_threads) {
  // OpenBLAS is reached through libblas.so.3 (Debian's alternatives); its
  // setter exists only when OpenBLAS is the provider.
  using SetThreads = void (*)(int);
  if (auto* set = reinterpret_cast<SetThreads>(
          ::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(1);
  }
  if (num_threads > 0) at::set_num_threads(num_threads);
  return at::get_num_threads();
}

}  // namespace slimfit
