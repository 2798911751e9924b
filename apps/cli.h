#pragma once
/// The `encore` command line: argument parsing, calling the libraries, mapping errors to exit codes.

#include <ostream>
#include <string>
#include <vector>

namespace encore::apps {

/// Exit codes, documented in README.
enum ExitCode : int { kSuccess = 0, kRuntimeError = 1, kUsageError = 2, kNonFinite = 3 };

/// Runs the CLI on argv. `out` gets command output (check, list, help); `err` gets logs, progress
/// and error messages. Never throws.
int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

/// Convenience for tests: argv without the program name.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace encore::apps
