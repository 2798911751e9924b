#pragma once
/// File-system helpers: whole-file writes that never leave a half-written file behind.

#include <filesystem>
#include <functional>
#include <string>

namespace encore::core {

/// Writes a file by calling `write(temporary_path)`, then flushing it to disk and renaming it over
/// `path`, so readers see the old file or the complete new one, never a partial one.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(const std::filesystem::path&)>& write);

/// Writes text atomically.
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

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
  /// std::runtime_error naming the directory and that process's PID.
  DirectoryLock(const std::filesystem::path& directory, const std::string& name);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int descriptor_ = -1;
};

}  // namespace encore::core
