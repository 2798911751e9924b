#include "encore/core/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <optional>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

#include "encore/core/errors.h"

namespace encore::core {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail_writing(const std::string& what, const std::string& action, int error) {
  throw std::runtime_error(fmt::format("cannot write {}: {}: {}", what, action, std::strerror(error)));
}

void write_all(int fd, std::string_view bytes, const std::string& what) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const auto written = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) fail_writing(what, fmt::format("after {} of {} bytes", done, bytes.size()), errno);
    done += static_cast<std::size_t>(written);
  }
}

std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "is a directory";
  if (S_ISFIFO(mode)) return "is a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "is a character device";
  if (S_ISBLK(mode)) return "is a block device";
  if (S_ISSOCK(mode)) return "is a socket";
  return "is not a regular file";
}

fs::path unique_temporary_name(const fs::path& path) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return path.parent_path() / fmt::format(".{}.{}.{:x}.tmp", path.filename().string(), ::getpid(), rng());
}

void sync_directory(const fs::path& directory, const std::string& what) {
  const FileDescriptor fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0) fail_writing(what, "cannot sync its directory " + directory.string(), errno);
}

// The atomic replacement; `mode` gives the new file the permissions of the one it replaces.
void replace_atomically(const fs::path& path, std::string_view bytes, std::optional<mode_t> mode) {
  const fs::path directory = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  const fs::path temporary = unique_temporary_name(directory / path.filename());
  const auto what = path.string();
  {
    const FileDescriptor fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid()) fail_writing(what, "cannot create a file in " + directory.string(), errno);
    try {
      write_all(fd.get(), bytes, what);
      if (mode && ::fchmod(fd.get(), *mode) != 0) fail_writing(what, "cannot keep its permissions", errno);
      if (::fsync(fd.get()) != 0) fail_writing(what, "cannot flush it to disk", errno);
      if (::rename(temporary.c_str(), path.c_str()) != 0) fail_writing(what, "cannot rename the finished file into place", errno);
    } catch (...) {
      ::unlink(temporary.c_str());
      throw;
    }
  }
  sync_directory(directory, what);
}

// /dev/stdout, /dev/stderr, /dev/fd/N and /proc/self/fd/N name this process's own open files.
std::optional<int> own_descriptor(const fs::path& path) {
  const auto name = path.lexically_normal().string();
  if (name == "/dev/stdout") return 1;
  if (name == "/dev/stderr") return 2;
  for (const std::string prefix : {"/dev/fd/", "/proc/self/fd/"}) {
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const auto digits = name.substr(prefix.size());
    if (digits.size() < 6 && digits.find_first_not_of("0123456789") == std::string::npos) return std::stoi(digits);
  }
  return std::nullopt;
}

void write_to_socket(const fs::path& path, std::string_view bytes, const std::string& what) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.string().size() >= sizeof address.sun_path) fail_writing(what, "the socket's path is too long to connect to", ENAMETOOLONG);
  std::strcpy(address.sun_path, path.c_str());
  const FileDescriptor fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid() || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    fail_writing(what, "cannot connect to the socket", errno);
  }
  write_all(fd.get(), bytes, what);
}

}  // namespace

std::string regular_file_problem(const fs::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return errno == ENOENT ? "does not exist" : fmt::format("cannot be read: {}", std::strerror(errno));
  return S_ISREG(info.st_mode) ? "" : kind_of(info.st_mode);
}

std::string read_file(const fs::path& path, std::uint64_t max_bytes) {
  const auto problem = regular_file_problem(path);
  if (!problem.empty()) throw DataError(fmt::format("{}: {}", path.string(), problem));
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat info {};
  if (!fd.valid() || ::fstat(fd.get(), &info) != 0)
    throw DataError(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  const auto size = static_cast<std::uint64_t>(info.st_size);
  if (size > max_bytes) throw DataError(fmt::format("{}: file is {} bytes, more than the limit of {}", path.string(), size, max_bytes));
  std::string bytes(size, '\0');
  std::size_t done = 0;
  while (done < bytes.size()) {
    const auto got = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw data_error_at(path.string(), done, fmt::format("cannot read: {}", std::strerror(errno)));
    if (got == 0) throw data_error_at(path.string(), done, "the file shrank while it was read");
    done += static_cast<std::size_t>(got);
  }
  return bytes;
}

void write_file_atomically(const fs::path& path, std::string_view bytes) { replace_atomically(path, bytes, std::nullopt); }

void write_user_file(const std::string& target, std::string_view bytes, std::ostream& standard_output) {
  fs::path path = target;
  // Symbolic links are followed one at a time, so that a link to /dev/stdout is recognised.
  for (int hops = 0;; ++hops) {
    const auto own = target == "-" ? std::optional<int>(1) : own_descriptor(path);
    if (own == 1) {
      standard_output.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      standard_output.flush();
      if (!standard_output) throw std::runtime_error(fmt::format("cannot write {} to standard output", target));
      return;
    }
    if (own) return write_all(*own, bytes, target);
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0) {
      if (errno == ENOENT) return replace_atomically(path, bytes, std::nullopt);
      throw UsageError(fmt::format("{}: cannot be written: {}", target, std::strerror(errno)));
    }
    if (S_ISREG(info.st_mode)) return replace_atomically(path, bytes, info.st_mode & 07777);
    if (S_ISFIFO(info.st_mode) || S_ISCHR(info.st_mode)) {
      const FileDescriptor fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY));
      if (!fd.valid()) fail_writing(target, "cannot open " + path.string(), errno);
      return write_all(fd.get(), bytes, target);
    }
    if (S_ISSOCK(info.st_mode)) return write_to_socket(path, bytes, target);
    if (!S_ISLNK(info.st_mode)) {
      throw UsageError(fmt::format("{}{} {}; encore writes regular files, FIFOs, character devices and sockets, and replaces nothing else",
                                   target, path == target ? "" : " (a link to " + path.string() + ")", kind_of(info.st_mode)));
    }
    if (hops == 40) throw UsageError(fmt::format("{}: too many levels of symbolic links", target));
    const auto link = fs::read_symlink(path);
    path = link.is_absolute() ? link : path.parent_path() / link;
  }
}

void create_run_directory(const fs::path& dir) {
  std::error_code error;
  if (fs::exists(dir, error)) {
    if (!fs::is_directory(dir)) throw UsageError(fmt::format("run directory {} exists and is not a directory", dir.string()));
    if (!fs::is_empty(dir)) {
      throw UsageError(fmt::format(
          "run directory {} is not empty, and one run never writes over another: choose another directory, or empty it", dir.string()));
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

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace encore::core
