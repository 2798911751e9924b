#pragma once
/// Exception types the `encore` executable maps to exit codes (ConfigError lives in config.h).

#include <cstdint>
#include <stdexcept>
#include <string>

namespace encore::core {

/// A data file that cannot be used; the message names the file and the byte offset or row:column.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A DataError about the byte at `offset` of the file or stream `source`: "SOURCE: offset N: MESSAGE".
inline DataError data_error_at(const std::string& source, std::uint64_t offset, const std::string& message) {
  return DataError(source + ": offset " + std::to_string(offset) + ": " + message);
}

/// A request that cannot be carried out as asked, before anything is done (a run directory that is
/// not empty, or in use by another process): a usage error, exit 2 from the `encore` executable.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Training produced a non-finite value; the message names the stage, epoch and step.
class NonFiniteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Training stopped at a step boundary because the process got SIGINT or SIGTERM (see
/// watch_for_interrupts); the message names the signal, stage, epoch and step.
class Interrupted : public std::runtime_error {
 public:
  /// Stopped by `signal_number`, with a message saying where.
  Interrupted(int signal_number, const std::string& message) : std::runtime_error(message), signal_number_(signal_number) {}
  /// The signal that stopped training (SIGINT, SIGTERM).
  int signal_number() const { return signal_number_; }

 private:
  int signal_number_;
};

}  // namespace encore::core
