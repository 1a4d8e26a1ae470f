// Cooperative interruption: a long run (the compression search, a training
// loop) stops at its next safe point when the user presses Ctrl-C, instead of
// dying mid-write.
//
//   InstallInterruptHandler();          // once, in main()
//   ...
//   if (InterruptRequested()) return absl::CancelledError(InterruptMessage());
//
// The first SIGINT or SIGTERM only sets a flag; a second SIGINT ends the
// process at once (the signal's default action), for a user who does not want
// to wait. Without InstallInterruptHandler the signals keep their default
// action and InterruptRequested() stays false. Async-signal-safe: the handler
// only stores to a lock-free atomic and resets a disposition.
#ifndef SLIMFIT_COMMON_INTERRUPT_H_
#define SLIMFIT_COMMON_INTERRUPT_H_

#include <string>

namespace slimfit {

void InstallInterruptHandler();

// Whether a SIGINT / SIGTERM arrived since the handler was installed.
bool InterruptRequested();

// The signal that arrived (SIGINT, SIGTERM), or 0.
int InterruptSignal();

// "interrupted by SIGINT" (or SIGTERM).
std::string InterruptMessage();

// Sets or clears the flag as a signal would (tests, and callers that stop a
// run for their own reasons).
void SetInterruptForTesting(int signal_number);

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_INTERRUPT_H_
