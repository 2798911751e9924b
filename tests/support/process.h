#pragma once
/// The `encore` executable as a separate process: the build tree's apps/encore next to the test
/// binary's tests/ directory (ENCORE_BINARY overrides).

#include <sys/resource.h>
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace encore::testing {

struct ProcessOutcome {
  /// Exit code, or -signal when killed.
  int code;
  std::string err;
  /// Peak resident memory in KiB.
  long peak_kib;
};

std::string encore_binary();

/// Where a started process runs and where its standard output goes (/dev/null when empty).
struct ProcessPlace {
  std::filesystem::path working_directory;
  std::filesystem::path out_file;
};

/// Starts encore with `args`: stderr to `err_file`, this process's environment plus `extra_env`
/// ("NAME=value"), in this process's directory with stdout discarded unless `place` says otherwise.
pid_t start_encore(const std::vector<std::string>& args, const std::filesystem::path& err_file,
                   const std::vector<std::string>& extra_env = {}, const ProcessPlace& place = {});

/// The outcome of a process that ended with `status` and `usage`, its stderr read from `err_file`.
ProcessOutcome outcome_of(int status, const rusage& usage, const std::filesystem::path& err_file);

/// Waits for a started process to end.
ProcessOutcome wait_for_encore(pid_t pid, const std::filesystem::path& err_file);

/// A TCP port on the loopback address that nothing listens on at the moment of asking.
int free_loopback_port();

}  // namespace encore::testing
