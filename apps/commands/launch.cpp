// `--nproc N`: this process starts N workers, itself re-executed with torchrun's variables set, and
// waits for them.
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "cli.h"
#include "commands/commands.h"
#include "encore/core/errors.h"

extern char** environ;

namespace encore::apps {

namespace {

namespace fs = std::filesystem;

constexpr int kMaxWorkers = 256;
std::atomic<pid_t> worker_pids[kMaxWorkers];
std::atomic<int> worker_count{0};

// A launcher told to stop (Ctrl-C, a scheduler's SIGTERM) passes it on to its workers.
void forward_signal(int signal_number) {
  for (int i = 0; i < worker_count.load(); ++i) {
    const pid_t pid = worker_pids[i].load();
    if (pid > 0) ::kill(pid, signal_number);
  }
}

pid_t start_worker(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = argv;
  std::vector<char*> args;
  for (auto& s : argv_strings) args.push_back(s.data());
  args.push_back(nullptr);
  const pid_t launcher = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // A launcher killed outright (SIGKILL cannot be forwarded) takes its workers with it, also
    // one that died before the request.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != launcher) ::_exit(kRuntimeError);
    ::execve("/proc/self/exe", args.data(), envp.data());
    ::_exit(127);
  }
  if (pid < 0) throw std::runtime_error(fmt::format("cannot start a worker process: {}", std::strerror(errno)));
  return pid;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)));
  return fmt::format("exited with code {}", WEXITSTATUS(status));
}

// What every worker's environment shares: the world's size and where the workers meet. Local runs
// rendezvous through a file (a c10d FileStore, created in `store_dir`): no port is opened for the
// store, and Gloo listens on the loopback address only. --master-addr asks for a TCPStore there.
std::vector<std::string> shared_environment(const RunArgs& args, std::string& store_dir) {
  std::vector<std::string> env{fmt::format("WORLD_SIZE={}", args.nproc), fmt::format("LOCAL_WORLD_SIZE={}", args.nproc),
                               "ENCORE_NPROC_WORKER=1"};
  if (args.master_addr.empty()) {
    char pattern[] = "/tmp/encore-store-XXXXXX";
    if (::mkdtemp(pattern) == nullptr)
      throw std::runtime_error(fmt::format("cannot create a store directory in /tmp: {}", std::strerror(errno)));
    store_dir = pattern;
    env.push_back("ENCORE_STORE_FILE=" + store_dir + "/store");
  } else {
    env.push_back("MASTER_ADDR=" + args.master_addr);
    env.push_back(fmt::format("MASTER_PORT={}", args.master_port));
  }
  return env;
}

// Waits for every worker; returns the wait status of the first that failed (nullopt when none did).
// Every worker ends by itself: a lost rank makes the others fail within twice their timeout. The
// launcher only stops stragglers well past that.
std::optional<int> wait_for_workers(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout, std::ostream& err) {
  const int n = static_cast<int>(pids.size());
  std::optional<int> failure_status;
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  int running = n;
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      const auto found = std::find(pids.begin(), pids.end(), pid);
      if (found == pids.end()) continue;
      const int rank = static_cast<int>(found - pids.begin());
      worker_pids[rank] = 0;
      --running;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && !failure_status) {
        failure_status = status;
        err << fmt::format("encore: rank {} of {} {}\n", rank, n, describe_status(status));
        kill_at = std::chrono::steady_clock::now() + 2 * timeout + std::chrono::seconds(30);
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;
    if (kill_at && std::chrono::steady_clock::now() > *kill_at) {
      err << "encore: stopping the workers still running long after a rank failed\n";
      forward_signal(SIGKILL);
      kill_at.reset();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return failure_status;
}

}  // namespace

int launch_workers(const RunArgs& args, std::ostream& err) {
  const int n = args.nproc;
  if (n > kMaxWorkers) throw core::UsageError(fmt::format("--nproc is at most {}, got {}", kMaxWorkers, n));
  std::string store_dir;
  const auto shared_env = shared_environment(args, store_dir);
  struct sigaction action {};
  action.sa_handler = forward_signal;
  ::sigemptyset(&action.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  ::sigaction(SIGINT, &action, &old_int);
  ::sigaction(SIGTERM, &action, &old_term);

  std::vector<pid_t> pids;
  for (int rank = 0; rank < n; ++rank) {
    auto env = shared_env;
    env.push_back(fmt::format("RANK={}", rank));
    env.push_back(fmt::format("LOCAL_RANK={}", rank));
    pids.push_back(start_worker(args.argv, env));
    worker_pids[rank] = pids.back();
    worker_count = rank + 1;
  }
  const auto failure_status = wait_for_workers(pids, args.dist_timeout, err);
  worker_count = 0;
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (!store_dir.empty()) {
    std::error_code ignored;
    fs::remove_all(store_dir, ignored);
  }
  if (!failure_status) return kSuccess;
  if (WIFEXITED(*failure_status)) return WEXITSTATUS(*failure_status);
  return kRuntimeError;
}

}  // namespace encore::apps
