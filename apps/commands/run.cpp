#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>

#include "commands/commands.h"
#include "encore/core/distributed.h"
#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "encore/core/runtime.h"
#include "encore/finetune/experiment.h"

namespace encore::apps {

namespace {

// The process group lives as long as the command.
struct ProcessGroupScope {
  explicit ProcessGroupScope(const core::WorldInfo& world) {
    if (world.distributed()) core::set_process_group(std::make_shared<core::ProcessGroup>(world));
  }
  ~ProcessGroupScope() { core::set_process_group(nullptr); }
};

// The command that continues this run: the same one, with --resume DIR in place of --output-dir.
std::string resume_command(const RunArgs& args, const std::filesystem::path& run_dir) {
  std::vector<std::string> words{"encore"};
  for (std::size_t i = 1; i < args.argv.size(); ++i) {
    const auto& word = args.argv[i];
    if (word == "--output-dir" || word == "--resume") {
      ++i;
    } else if (word.rfind("--output-dir=", 0) != 0 && word.rfind("--resume=", 0) != 0) {
      words.push_back(word);
    }
  }
  words.push_back("--resume");
  words.push_back(run_dir.string());
  return fmt::format("{}", fmt::join(words, " "));
}

}  // namespace

int run_command(const RunArgs& args, std::ostream& out, std::ostream& err) {
  const bool started_by_nproc = std::getenv("ENCORE_NPROC_WORKER") != nullptr;
  const auto world = core::world_from_environment(args.dist_timeout);
  if (args.nproc > 1 && !started_by_nproc) {
    if (world.distributed()) {
      throw core::ConfigError("--nproc", "starts workers itself; under a launcher that sets WORLD_SIZE (torchrun), leave it out");
    }
    // Checked once here, so that a bad config stops before any worker starts.
    finetune::load_experiment(args.config.config_file, args.config.overrides, finetune::builtin_components());
    return launch_workers(args, err);
  }
  const auto components = finetune::builtin_components();
  const auto config = finetune::load_experiment(args.config.config_file, args.config.overrides, components);
  const ProcessGroupScope group_scope(world);
  // Rank 0 logs; the others report errors only.
  std::ostream quiet(nullptr);
  std::ostream& log = core::is_main_process() ? err : quiet;
  log << "encore " << ENCORE_VERSION << "\n";
  finetune::RunOptions options;
  options.run_dir = args.output_dir.empty() ? core::default_run_directory("runs", config.name) : std::filesystem::path(args.output_dir);
  if (!args.resume_dir.empty()) {
    options.run_dir = args.resume_dir;
    options.resume = true;
    options.allow_config_change = args.allow_config_change;
  }
  options.config_source = args.config.config_file;
  options.log = &log;
  options.interactive = args.interactive;
  options.pretrain_only = args.pretrain_only;
  if (!args.pretrained_file.empty()) options.pretrained_file = args.pretrained_file;
  // A data-parallel run keeps the default: ranks stopping at different steps would wait for each other.
  if (!world.distributed()) core::watch_for_interrupts();
  try {
    finetune::run_experiment(config, components, options);
  } catch (const core::Interrupted& e) {
    err << fmt::format("encore: interrupted by {}; {} keeps its checkpoints. Continue with:\n  {}\n", e.what(), options.run_dir.string(),
                       resume_command(args, options.run_dir));
    return 128 + e.signal_number();
  }
  if (!core::is_main_process()) return 0;
  err << fmt::format("run directory: {}\n", options.run_dir.string());
  out << options.run_dir.string() << '\n';
  return 0;
}

}  // namespace encore::apps
