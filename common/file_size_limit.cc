#include "common/file_size_limit.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"

namespace slimfit {

absl::Status RunWithFileSizeLimit(uint64_t limit_bytes, const std::function<absl::Status()>& fn) {
  int fds[2];
  if (::pipe(fds) != 0) return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    ::close(fds[0]);
    ::signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG instead
    struct rlimit lim = {limit_bytes, limit_bytes};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(3);
    absl::Status s = fn();
    const std::string report = absl::StrCat(static_cast<int>(s.code()), "\n", s.message());
    (void)WriteFully(fds[1], report.data(), report.size());  // (a lost report reads as Internal)
    ::close(fds[1]);
    _exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(wstatus)) {
    return absl::InternalError(absl::StrCat("the child died of signal ", WTERMSIG(wstatus)));
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return absl::InternalError(absl::StrCat("the child exited with ", WEXITSTATUS(wstatus)));
  }
  std::pair<std::string, std::string> parts = absl::StrSplit(out, absl::MaxSplits('\n', 1));
  int code = 0;
  if (!absl::SimpleAtoi(parts.first, &code)) {
    return absl::InternalError(absl::StrCat("the child reported \"", out, "\""));
  }
  return absl::Status(static_cast<absl::StatusCode>(code), parts.second);
}

}  // namespace slimfit
