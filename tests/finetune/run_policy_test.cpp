#include "encore/finetune/run_policy.h"

#include <gtest/gtest.h>

#include <sstream>

#include <fmt/format.h>

#include "encore/core/config.h"
#include "encore/core/errors.h"
#include "support/support.h"

using namespace encore;

TEST(RunPolicy, AResumedRunMustKeepItsConfigUnlessAChangeIsAllowed) {
  encore::testing::TempDir dir;
  const finetune::RunDirectory run(dir / "run", true);
  std::ostringstream log;
  const core::Json started{{"seed", 1}, {"pretrain", {{"epochs", 2}}}};
  EXPECT_THROW_WITH(finetune::check_resumed_config(run, started, false, "c.json", log), core::UsageError, "it has no config.json");
  run.create();
  run.write_json(finetune::RunDirectory::kConfig, started);
  finetune::check_resumed_config(run, started, false, "c.json", log);
  EXPECT_EQ(log.str(), "");
  const core::Json changed{{"seed", 2}, {"pretrain", {{"epochs", 2}, {"lr", 0.1}}}};
  EXPECT_THROW_WITH(finetune::check_resumed_config(run, changed, false, "c.json", log), core::ConfigError,
                    "c.json: differs from the config " + run.file(finetune::RunDirectory::kConfig).string() +
                        " was started with, at: /pretrain/lr, /seed");
  finetune::check_resumed_config(run, changed, true, "c.json", log);
  EXPECT_EQ(log.str(), "resuming with a changed config, at: /pretrain/lr, /seed\n");
}

TEST(RunPolicy, ThreadsComeFromTheConfigAndTheProductCheckPassesOnThisBlas) {
  const encore::testing::IntraOpThreads restored_after(at::get_num_threads());
  std::ostringstream log;
  core::RuntimeConfig runtime;
  runtime.threads = 1;
  finetune::configure_run_threads(runtime, log);
  EXPECT_NE(log.str().find("1 intra-op threads (from config), BLAS: "), std::string::npos) << log.str();
  EXPECT_EQ(at::get_num_threads(), 1);
  finetune::check_matrix_products(log);
  EXPECT_NE(log.str().find("matrix-product check against double precision"), std::string::npos);
  // A process running alone has no ranks to compare.
  std::ostringstream quiet;
  finetune::check_ranks_agree(core::Json{{"seed", 1}}, "c.json", quiet);
  EXPECT_EQ(quiet.str(), "");
}

TEST(RunPolicy, MoreThreadsThanCoresIsAWarningThatSaysWhatToSet) {
  const encore::testing::IntraOpThreads restored_after(at::get_num_threads());
  std::ostringstream log;
  core::RuntimeConfig runtime;
  runtime.threads = core::available_cores() + 1;
  finetune::configure_run_threads(runtime, log);
  EXPECT_NE(log.str().find(fmt::format("warning: {} threads on the {} cores", runtime.threads, core::available_cores())), std::string::npos)
      << log.str();
  runtime.threads = core::available_cores();
  std::ostringstream quiet;
  finetune::configure_run_threads(runtime, quiet);
  EXPECT_EQ(quiet.str().find("warning"), std::string::npos) << quiet.str();
}
