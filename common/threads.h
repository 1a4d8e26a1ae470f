// File: common/threads.h
//
// One knob for CPU parallelism. LibTorch's intra-op pool and OpenBLAS each
// keep their own threads; on small machines two busy pools fight (on the
// 2-core reference machine, 2 intra-op threads made a CNN epoch ~3x slower
// than 1). ConfigureThreads sets both.
#ifndef SLIMFIT_COMMON_THREADS_H_
#define SLIMFIT_COMMON_THREADS_H_

namespace slimfit {

// Sets LibTorch's intra-op threads to `num_threads` (>= 1; 0 means "leave
// LibTorch's default") and OpenBLAS's to 1 when OpenBLAS is the loaded BLAS
// (its own threads cancel the gain here; matmuls already run inside the
// intra-op pool). Returns the intra-op thread count now in force.
int ConfigureThreads(int num_threads);

// ConfigureThreads(num_threads) for the guard's lifetime: the intra-op
// thread count in force before it comes back when the guard goes, whatever
// was set in between.
class ScopedThreads {
 public:
  explicit ScopedThreads(int num_threads);
  ~ScopedThreads();
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int before_;
};

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_THREADS_H_
