#include "encore/finetune/run_directory.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "support/support.h"

using encore::finetune::RunDirectory;

TEST(RunDirectory, OnlyTheWritingProcessWritesAndEachFileIsWholeJsonWithANewline) {
  encore::testing::TempDir dir;
  const RunDirectory other_rank(dir / "run", /*writes=*/false);
  other_rank.create();
  other_rank.write_json(RunDirectory::kSummary, {{"accuracy", 0.5}});
  EXPECT_FALSE(std::filesystem::exists(dir / "run"));

  const RunDirectory rank0(dir / "run", /*writes=*/true);
  rank0.create();
  rank0.write_json(RunDirectory::kSummary, {{"accuracy", 0.5}});
  rank0.write_json(RunDirectory::kSplit, {{"sizes", {1, 2}}}, -1);
  EXPECT_EQ(encore::testing::read_bytes(rank0.file(RunDirectory::kSplit)),
            std::vector<unsigned char>({'{', '"', 's', 'i', 'z', 'e', 's', '"', ':', '[', '1', ',', '2', ']', '}', '\n'}));
  EXPECT_EQ(encore::core::load_json_file(rank0.file(RunDirectory::kSummary).string())["accuracy"], 0.5);
  EXPECT_EQ(encore::testing::list_tree(dir / "run"), (std::vector<std::string>{"split.json", "summary.json"}));
  rank0.remove(RunDirectory::kSplit);
  rank0.remove(RunDirectory::kMetrics);
  EXPECT_EQ(encore::testing::list_tree(dir / "run"), (std::vector<std::string>{"summary.json"}));
  // A directory holding a run is never reused for another.
  EXPECT_THROW_WITH(rank0.create(), encore::core::UsageError, "is not empty");
}

TEST(RunDirectory, ASecondProcessIsRefusedWhileTheFirstHoldsTheDirectory) {
  encore::testing::TempDir dir;
  RunDirectory first(dir / "run", true);
  first.create();
  first.lock();
  // flock locks belong to an open file: a second opening conflicts as another process's would.
  RunDirectory second(dir / "run", true);
  EXPECT_THROW_WITH(second.lock(), encore::core::UsageError,
                    fmt::format("{} is in use by another encore process (PID {})", (dir / "run").string(), ::getpid()));
  RunDirectory other_rank(dir / "run", false);
  other_rank.lock();
  {
    RunDirectory released(dir / "other", true);
    released.create();
    released.lock();
  }
  RunDirectory after(dir / "other", true);
  after.lock();
}
