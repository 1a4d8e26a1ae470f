#include "distributed/launch.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"

namespace slimfit {
namespace {

std::atomic<int> g_forward_signal{0};

void RememberSignal(int sig) { g_forward_signal.store(sig); }

}  // namespace

absl::StatusOr<int> FindFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int e = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("finding a free port: ", std::strerror(e)));
  }
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

absl::StatusOr<std::vector<RankExit>> LaunchLocal(const std::vector<std::string>& argv, const LaunchOptions& o) {
  if (argv.empty()) return absl::InvalidArgumentError("launch: no command to run");
  if (o.nproc_per_node < 1) {
    return FieldError("nproc_per_node", "below 1", o.nproc_per_node, ">= 1");
  }
  if (o.nnodes < 1) return FieldError("nnodes", "below 1", o.nnodes, ">= 1");
  if (o.node_rank < 0 || o.node_rank >= o.nnodes) {
    return FieldError("node_rank", "not a node", o.node_rank, absl::StrCat("[0, nnodes = ", o.nnodes, ")"));
  }
  if (o.grace_seconds < 0) return FieldError("grace_seconds", "negative", o.grace_seconds, ">= 0");
  int port = o.master_port;
  if (port == 0) {
    if (o.nnodes > 1) {
      return FieldError("master_port", "required with nnodes > 1 (every node must use the same one)", 0, "[1, 65535]");
    }
    auto free_port = FindFreePort();
    if (!free_port.ok()) return free_port.status();
    port = *free_port;
  }
  if (port < 1 || port > 65535) {
    return FieldError("master_port", "out of range", port, "[1, 65535]");
  }
  const int world = o.nproc_per_node * o.nnodes;
  struct sigaction forward {}, old_int {}, old_term {};
  forward.sa_handler = &RememberSignal;
  sigemptyset(&forward.sa_mask);
  g_forward_signal.store(0);
  ::sigaction(SIGINT, &forward, &old_int);
  ::sigaction(SIGTERM, &forward, &old_term);

  std::vector<pid_t> pids;
  std::vector<RankExit> exits;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (int local = 0; local < o.nproc_per_node; ++local) {
    const int rank = o.node_rank * o.nproc_per_node + local;
    // The child's environment is made here: between fork and exec a child
    // of a threaded parent may only make async-signal-safe calls (no malloc).
    std::map<std::string, std::string> vars = o.env;
    vars["RANK"] = std::to_string(rank);
    vars["WORLD_SIZE"] = std::to_string(world);
    vars["LOCAL_RANK"] = std::to_string(local);
    vars["LOCAL_WORLD_SIZE"] = std::to_string(o.nproc_per_node);
    vars["MASTER_ADDR"] = o.master_addr;
    vars["MASTER_PORT"] = std::to_string(port);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry = *e;
      if (vars.count(entry.substr(0, entry.find('='))) == 0) env_strings.push_back(entry);
    }
    for (const auto& [k, v] : vars) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      for (pid_t p : pids) ::kill(p, SIGKILL);
      for (pid_t p : pids) ::waitpid(p, nullptr, 0);
      return absl::InternalError(absl::StrCat("launch: fork: ", std::strerror(errno)));
    }
    if (pid == 0) {
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::execvpe(args[0], args.data(), envp.data());
      static const char kCannot[] = "launch: cannot run the command\n";
      (void)!::write(2, kCannot, sizeof(kCannot) - 1);
      ::_exit(127);
    }
    pids.push_back(pid);
    exits.push_back(RankExit{rank, -1});
  }

  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> failed_at;
  bool termed = false, killed = false;
  int running = static_cast<int>(pids.size());
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (size_t i = 0; i < pids.size(); ++i) {
        if (pids[i] != pid) continue;
        exits[i].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        --running;
        if (exits[i].exit_code != 0 && !failed_at) {
          failed_at = Clock::now();
          std::fprintf(stderr, "launch: rank %d exited with %d; the others get %gs to stop\n", exits[i].rank,
                       exits[i].exit_code, o.grace_seconds);
        }
      }
      continue;
    }
    if (const int sig = g_forward_signal.exchange(0); sig != 0) {
      for (size_t i = 0; i < pids.size(); ++i) {
        if (exits[i].exit_code < 0) ::kill(pids[i], sig);
      }
    }
    if (failed_at) {
      const double waited = std::chrono::duration<double>(Clock::now() - *failed_at).count();
      const bool term = !termed && waited >= o.grace_seconds;
      const bool kill = !killed && waited >= o.grace_seconds + 10;
      if (term || kill) {
        for (size_t i = 0; i < pids.size(); ++i) {
          if (exits[i].exit_code < 0) ::kill(pids[i], kill ? SIGKILL : SIGTERM);
        }
        termed = true;
        killed = killed || kill;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return exits;
}

}  // namespace slimfit
