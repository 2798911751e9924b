#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>

#include "encore/core/distributed.h"
#include "encore/core/errors.h"

#include "encore/core/files.h"
#include "encore/core/runtime.h"
#include "encore/finetune/experiment.h"
#include "commands/commands.h"

namespace encore::apps {

namespace {

// The process group lives as long as the command.
struct ProcessGroupScope {
  explicit ProcessGroupScope(const core::WorldInfo& world) {
    if (world.distributed()) core::set_process_group(std::make_shared<core::ProcessGroup>(world));
  }
  ~ProcessGroupScope() { core::set_process_group(nullptr); }
};

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
  // Threads are set before the first tensor operation; the BLAS and its kernel are logged with them.
  // Workers on one machine share its cores.
  const int threads = core::configure_threads(config.runtime.threads > 0 ? config.runtime.threads
                                                                         : std::max(1, core::available_cores() / world.local_world_size));
  const ProcessGroupScope group_scope(world);
  // Rank 0 logs; the others report errors only.
  std::ostream quiet(nullptr);
  std::ostream& log = core::is_main_process() ? err : quiet;
  log << fmt::format("encore {}: {} intra-op threads ({}), BLAS: {}\n", ENCORE_VERSION, threads,
                     config.runtime.threads > 0            ? "from config"
                     : world.local_world_size > 1 ? "the cores shared among this machine's workers"
                                                  : "all available cores",
                     core::blas_description());
  if (const auto& group = core::process_group()) {
    // Every rank must run the same experiment; a worker started with another config (or other
    // --set values) stops the run before anything trains.
    const auto configs = group->all_gather(finetune::to_json(config).dump());
    for (std::size_t r = 1; r < configs.size(); ++r) {
      const auto differences = finetune::config_differences(core::Json::parse(configs[0]), core::Json::parse(configs[r]));
      if (!differences.empty()) {
        throw core::ConfigError::in_file(args.config.config_file,
                                         fmt::format("rank {}'s resolved config differs from rank 0's at: {}", r, fmt::join(differences, ", ")));
      }
    }
    log << fmt::format("data parallel: {} processes (Gloo), store {}, timeout {} s; batch_size is the global batch\n", world.world_size,
                       world.store_address(), args.dist_timeout.count() / 1000.0);
  }
  // A kernel that computes wrong products must stop the run, not train on garbage.
  const double product_error = core::blas_product_error();
  log << fmt::format("matrix-product check against double precision: largest relative error {:.1e}\n", product_error);
  if (!(product_error < 1e-4)) {
    throw std::runtime_error(fmt::format("the BLAS kernel computes wrong matrix products (relative error {:.1e}); set ENCORE_BLAS_KERNEL "
                                         "to another kernel, or to \"openblas\" for OpenBLAS's own choice", product_error));
  }
  finetune::RunOptions options;
  options.run_dir = args.output_dir.empty() ? core::default_run_directory("runs", config.name) : std::filesystem::path(args.output_dir);
  if (!args.resume_dir.empty()) {
    options.run_dir = args.resume_dir;
    options.resume = true;
    const auto recorded_file = options.run_dir / "config.json";
    if (!std::filesystem::exists(recorded_file)) {
      throw core::DataError(fmt::format("cannot resume {}: it has no config.json (is it a run directory?)", options.run_dir.string()));
    }
    const auto recorded = core::load_json_file(recorded_file.string());
    const auto differences = finetune::config_differences(recorded, finetune::to_json(config));
    if (!differences.empty()) {
      const auto listed = fmt::format("{}", fmt::join(differences, ", "));
      if (!args.allow_config_change) {
        throw core::ConfigError::in_file(args.config.config_file,
                                         fmt::format("differs from the config {} was started with, at: {}; resume with the same config, or "
                                                     "pass --allow-config-change", recorded_file.string(), listed));
      }
      log << "resuming with a changed config, at: " << listed << "\n";
    }
  }
  options.log = &log;
  options.interactive = args.interactive;
  options.pretrain_only = args.pretrain_only;
  if (!args.pretrained_file.empty()) options.pretrained_file = args.pretrained_file;
  finetune::run_experiment(config, components, options);
  if (!core::is_main_process()) return 0;
  err << fmt::format("run directory: {}\n", options.run_dir.string());
  out << options.run_dir.string() << '\n';
  return 0;
}

}  // namespace encore::apps
