#include "common/interrupt.h"

#include <signal.h>

#include <atomic>

namespace slimfit {
namespace {

std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

void OnSignal(int sig) {
  g_signal.store(sig);
  // A second Ctrl-C: default action (terminate) for the impatient.
  if (sig == SIGINT) ::signal(SIGINT, SIG_DFL);
}

}  // namespace

void InstallInterruptHandler() {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // reads and writes in flight complete
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

bool InterruptRequested() { return g_signal.load() != 0; }

int InterruptSignal() { return g_signal.load(); }

std::string InterruptMessage() {
  const int sig = g_signal.load();
  return sig == SIGINT ? "interrupted by SIGINT" : sig == SIGTERM ? "interrupted by SIGTERM" : "interrupted";
}

void SetInterruptForTesting(int signal_number) { g_signal.store(signal_number); }

}  // namespace slimfit
