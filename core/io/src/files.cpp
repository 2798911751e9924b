#include "encore/core/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

#include "encore/core/errors.h"

namespace encore::core {

namespace fs = std::filesystem;

namespace {

void sync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open {} to sync it", path.string()));
  const int result = ::fsync(fd);
  ::close(fd);
  if (result != 0) throw std::runtime_error(fmt::format("cannot sync {} to disk", path.string()));
}

fs::path unique_temporary_name(const fs::path& path) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return path.parent_path() / fmt::format(".{}.{}.{:x}.tmp", path.filename().string(), ::getpid(), rng());
}

}  // namespace

void write_file_atomically(const fs::path& path, const std::function<void(const fs::path&)>& write) {
  const fs::path directory = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  const fs::path temporary = unique_temporary_name(directory / path.filename());
  try {
    write(temporary);
    sync_path(temporary, false);
    fs::rename(temporary, path);
  } catch (...) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw;
  }
  sync_path(directory, true);
}

void write_text_atomically(const fs::path& path, const std::string& text) {
  write_file_atomically(path, [&](const fs::path& temporary) {
    std::ofstream out(temporary, std::ios::binary);
    out << text;
    out.flush();
    if (!out) throw std::runtime_error(fmt::format("cannot write {}", temporary.string()));
  });
}

void create_run_directory(const fs::path& dir) {
  std::error_code error;
  if (fs::exists(dir, error)) {
    if (!fs::is_directory(dir)) throw UsageError(fmt::format("run directory {} exists and is not a directory", dir.string()));
    if (!fs::is_empty(dir)) {
      throw UsageError(fmt::format("run directory {} is not empty; choose another --output-dir or remove it", dir.string()));
    }
    return;
  }
  fs::create_directories(dir, error);
  if (error) throw std::runtime_error(fmt::format("cannot create run directory {}: {}", dir.string(), error.message()));
}

fs::path default_run_directory(const fs::path& root, const std::string& name) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &utc);
  fs::path dir = root / name / stamp;
  // Two runs started in the same second get distinct directories.
  for (int suffix = 1; fs::exists(dir); ++suffix) dir = root / name / fmt::format("{}-{}", stamp, suffix);
  return dir;
}

DirectoryLock::DirectoryLock(const fs::path& directory, const std::string& name) {
  const auto file = directory / name;
  descriptor_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (descriptor_ < 0) throw std::runtime_error(fmt::format("cannot open the lock file {}: {}", file.string(), std::strerror(errno)));
  if (::flock(descriptor_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    std::string holder(32, '\0');
    const auto read = ::pread(descriptor_, holder.data(), holder.size(), 0);
    holder.resize(read > 0 ? static_cast<std::size_t>(read) : 0);
    holder.erase(holder.find_last_not_of(" \n") + 1);
    ::close(descriptor_);
    if (error == EWOULDBLOCK) {
      throw UsageError(fmt::format("{} is in use by another encore process (PID {}); wait for it to end, or stop it first",
                                   directory.string(), holder.empty() ? "unknown" : holder));
    }
    throw std::runtime_error(fmt::format("cannot lock {}: {}", file.string(), std::strerror(error)));
  }
  const auto pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(descriptor_, 0) != 0 || ::pwrite(descriptor_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int error = errno;
    ::close(descriptor_);
    throw std::runtime_error(fmt::format("cannot write to the lock file {}: {}", file.string(), std::strerror(error)));
  }
}

DirectoryLock::~DirectoryLock() {
  if (descriptor_ >= 0) ::close(descriptor_);
}

}  // namespace encore::core
