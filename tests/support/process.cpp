#include "support/process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

extern char** environ;

namespace encore::testing {

namespace fs = std::filesystem;

std::string encore_binary() {
  if (const char* path = std::getenv("ENCORE_BINARY")) return path;
  return (fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "apps" / "encore").string();
}

pid_t start_encore(const std::vector<std::string>& args, const fs::path& err_file, const std::vector<std::string>& extra_env,
                   const ProcessPlace& place) {
  std::vector<std::string> argv_strings{encore_binary()};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  // fork, not posix_spawn: a vfork-style child starts its peak-memory count from the parent's peak.
  const pid_t pid = fork();
  if (pid == 0) {
    const int err = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int out = place.out_file.empty() ? open("/dev/null", O_WRONLY) : open(place.out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(err, 2);
    dup2(out, 1);
    if (!place.working_directory.empty() && chdir(place.working_directory.c_str()) != 0) _exit(126);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  EXPECT_GT(pid, 0) << "cannot start " << argv[0];
  return pid;
}

ProcessOutcome outcome_of(int status, const rusage& usage, const fs::path& err_file) {
  std::ifstream in(err_file);
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return {code, err, usage.ru_maxrss};
}

ProcessOutcome wait_for_encore(pid_t pid, const fs::path& err_file) {
  if (pid <= 0) return {-1, "", 0};
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  return outcome_of(status, usage, err_file);
}

int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  EXPECT_TRUE(ok) << "cannot find a free port";
  return ok ? ntohs(address.sin_port) : 0;
}

}  // namespace encore::testing
