#include "encore/core/files.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "encore/core/errors.h"
#include "support/support.h"

namespace {

namespace fs = std::filesystem;
using encore::core::write_user_file;

TEST(Files, RegularFileProblemSaysWhatThePathIsInstead) {
  encore::testing::TempDir dir;
  encore::testing::write_text(dir / "file", "x");
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  fs::create_symlink(dir / "file", dir / "link");
  EXPECT_EQ(encore::core::regular_file_problem(dir / "file"), "");
  EXPECT_EQ(encore::core::regular_file_problem(dir / "link"), "");
  EXPECT_EQ(encore::core::regular_file_problem(dir / "none"), "does not exist");
  EXPECT_EQ(encore::core::regular_file_problem(dir.path()), "is a directory");
  EXPECT_EQ(encore::core::regular_file_problem(dir / "fifo"), "is a FIFO (named pipe)");
  EXPECT_EQ(encore::core::regular_file_problem("/dev/null"), "is a character device");
  EXPECT_THROW_WITH(encore::core::read_file(dir / "fifo"), encore::core::DataError, "fifo: is a FIFO (named pipe)");
  EXPECT_THROW_WITH(encore::core::read_file(dir / "file", 0), encore::core::DataError, "file: file is 1 bytes, more than the limit of 0");
  EXPECT_EQ(encore::core::read_file(dir / "link"), "x");
}

TEST(Files, UserFileReplacesARegularFileAtomicallyKeepingItsPermissions) {
  encore::testing::TempDir dir;
  std::ostringstream out;
  encore::testing::write_text(dir / "out.csv", "old");
  ::chmod((dir / "out.csv").c_str(), 0640);
  write_user_file((dir / "out.csv").string(), "new", out);
  EXPECT_EQ(encore::core::read_file(dir / "out.csv"), "new");
  EXPECT_EQ(fs::status(dir / "out.csv").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  write_user_file((dir / "fresh.csv").string(), "made", out);
  EXPECT_EQ(encore::core::read_file(dir / "fresh.csv"), "made");
  EXPECT_EQ(encore::testing::list_tree(dir.path()), (std::vector<std::string>{"fresh.csv", "out.csv"}));  // no temporary left
  EXPECT_TRUE(out.str().empty());
}

TEST(Files, UserFileWritesThroughASymbolicLinkAndKeepsTheLink) {
  encore::testing::TempDir dir;
  std::ostringstream out;
  fs::create_directories(dir / "real");
  encore::testing::write_text(dir / "real" / "target.csv", "old");
  fs::create_symlink("real/target.csv", dir / "link.csv");
  fs::create_symlink(dir / "real" / "new.csv", dir / "dangling.csv");
  write_user_file((dir / "link.csv").string(), "through", out);
  write_user_file((dir / "dangling.csv").string(), "created", out);
  EXPECT_TRUE(fs::is_symlink(dir / "link.csv"));
  EXPECT_TRUE(fs::is_symlink(dir / "dangling.csv"));
  EXPECT_EQ(encore::core::read_file(dir / "real" / "target.csv"), "through");
  EXPECT_EQ(encore::core::read_file(dir / "real" / "new.csv"), "created");
}

TEST(Files, UserFileStreamsIntoFifosDevicesAndSocketsAndTreatsDashAsStandardOutput) {
  encore::testing::TempDir dir;
  std::ostringstream out;
  write_user_file("-", "to stdout", out);
  write_user_file("/dev/stdout", " and again", out);
  EXPECT_EQ(out.str(), "to stdout and again");
  write_user_file("/dev/null", "discarded", out);
  EXPECT_EQ(encore::core::regular_file_problem("/dev/null"), "is a character device");

  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  std::string from_fifo;
  std::thread reader([&] {
    std::ifstream in(dir / "fifo");
    from_fifo.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  });
  write_user_file((dir / "fifo").string(), "through a pipe", out);
  reader.join();
  EXPECT_EQ(from_fifo, "through a pipe");
  EXPECT_EQ(encore::core::regular_file_problem(dir / "fifo"), "is a FIFO (named pipe)");

  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const auto socket_path = (dir / "sock").string();
  ASSERT_LT(socket_path.size(), sizeof address.sun_path);
  std::copy(socket_path.begin(), socket_path.end(), address.sun_path);
  ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  std::string from_socket;
  std::thread receiver([&] {
    const int connection = ::accept(listener, nullptr, nullptr);
    char buffer[64];
    for (ssize_t got; (got = ::read(connection, buffer, sizeof buffer)) > 0;) from_socket.append(buffer, static_cast<std::size_t>(got));
    ::close(connection);
  });
  write_user_file(socket_path, "over a socket", out);
  receiver.join();
  ::close(listener);
  EXPECT_EQ(from_socket, "over a socket");
  EXPECT_EQ(encore::core::regular_file_problem(socket_path), "is a socket");
}

TEST(Files, UserFileRefusesADirectoryAndLeavesItAlone) {
  encore::testing::TempDir dir;
  std::ostringstream out;
  fs::create_directories(dir / "d");
  fs::create_symlink("d", dir / "to_d");
  EXPECT_THROW_WITH(write_user_file((dir / "d").string(), "x", out), encore::core::UsageError, "d is a directory; encore writes regular");
  EXPECT_THROW_WITH(write_user_file((dir / "to_d").string(), "x", out), encore::core::UsageError, "to_d (a link to ");
  EXPECT_TRUE(fs::is_directory(dir / "d"));
  EXPECT_TRUE(fs::is_empty(dir / "d"));
}

TEST(Files, AFullDiskIsReportedWithTheSystemsReason) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  std::ostringstream out;
  EXPECT_THROW_WITH(write_user_file("/dev/full", "x", out), std::runtime_error,
                    "cannot write /dev/full: after 0 of 1 bytes: No space left on device");
}

}  // namespace
