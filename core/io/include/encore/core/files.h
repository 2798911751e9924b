#pragma once
/// File-system helpers: whole-file reads that say what is wrong with a path, whole-file writes that
/// never leave a half-written file behind, and the one writer for files the user names.

#include <cstdint>
#include <filesystem>
#include <limits>
#include <ostream>
#include <string>
#include <string_view>

namespace encore::core {

/// What stands in the way of reading `path` as a file: empty for a regular file (or a link to
/// one); otherwise "does not exist", "is a directory", "is a FIFO (named pipe)", "is a character
/// device", "is a block device", "is a socket", or the OS's reason it cannot be inspected.
std::string regular_file_problem(const std::filesystem::path& path);

/// The whole of a regular file. A path that is not one, a file over `max_bytes`, and read errors
/// (with the OS's reason) are DataErrors naming the file.
std::string read_file(const std::filesystem::path& path, std::uint64_t max_bytes = std::numeric_limits<std::uint64_t>::max());

/// Writes `bytes` to a temporary file next to `path`, flushes it to disk and renames it over
/// `path`, so readers see the old file or the complete new one, never a partial one. Errors carry
/// the OS's reason (a full disk says so).
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

/// Writes a file the user named (predictions, and other outputs of commands): "-" is `standard_output`;
/// a symbolic link is followed and its target written; a regular file, or a new one, is replaced
/// atomically (keeping its permissions); a FIFO, a character device or a socket is written to
/// directly, as a stream; /dev/stdout, /dev/stderr and /dev/fd/N are this process's own streams.
/// Anything else (a directory, a block device) is a UsageError: a file that is not a regular file
/// is never replaced.
void write_user_file(const std::string& target, std::string_view bytes, std::ostream& standard_output);

/// A POSIX file descriptor, closed when the object goes (a negative one: an open() that failed).
class FileDescriptor {
 public:
  /// Takes ownership of `fd`.
  explicit FileDescriptor(int fd) : fd_(fd) {}
  /// Closes it.
  ~FileDescriptor();
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  /// The descriptor.
  int get() const { return fd_; }
  /// Whether the open succeeded.
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_;
};

/// Creates the run directory: it may not exist yet, or exist empty. A non-empty directory is refused
/// so that one run never overwrites another.
void create_run_directory(const std::filesystem::path& dir);

/// `runs/<name>/<UTC timestamp>` below `root`.
std::filesystem::path default_run_directory(const std::filesystem::path& root, const std::string& name);

/// An advisory lock (flock) on a lock file in a directory, held while the object lives, so that one
/// process at a time works there. The file keeps the holder's PID for the message others get; the
/// system releases the lock when the holder ends, however it ends.
class DirectoryLock {
 public:
  /// Takes the lock on `directory`/`name`, creating the file; a lock another process holds is a
  /// UsageError naming the directory and that process's PID.
  DirectoryLock(const std::filesystem::path& directory, const std::string& name);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int descriptor_ = -1;
};

}  // namespace encore::core
