#include "encore/finetune/run_policy.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "encore/core/config.h"
#include "encore/core/distributed.h"
#include "encore/core/errors.h"
#include "encore/finetune/experiment_config.h"

namespace encore::finetune {

void configure_run_threads(const core::RuntimeConfig& runtime, std::ostream& log) {
  const auto& group = core::process_group();
  const int workers_here = group ? group->world().local_world_size : 1;
  const int threads = core::configure_threads(runtime.threads > 0 ? runtime.threads : std::max(1, core::available_cores() / workers_here));
  log << fmt::format("{} intra-op threads ({}), BLAS: {}\n", threads,
                     runtime.threads > 0 ? "from config"
                     : workers_here > 1  ? "the cores shared among this machine's workers"
                                         : "all available cores",
                     core::blas_description());
  if (threads > core::available_cores()) {
    log << fmt::format(
        "warning: {} threads on the {} cores this process may use: the extra threads wait on each other and slow "
        "the run down (set threads to at most {}, or 0 for one per core)\n",
        threads, core::available_cores(), core::available_cores());
  }
}

void check_matrix_products(std::ostream& log) {
  const double product_error = core::blas_product_error();
  log << fmt::format("matrix-product check against double precision: largest relative error {:.1e}\n", product_error);
  if (!(product_error < 1e-4)) {
    throw std::runtime_error(
        fmt::format("the BLAS kernel computes wrong matrix products (relative error {:.1e}); set ENCORE_BLAS_KERNEL "
                    "to another kernel, or to \"openblas\" for OpenBLAS's own choice",
                    product_error));
  }
}

void check_ranks_agree(const core::Json& resolved, const std::string& source, std::ostream& log) {
  const auto& group = core::process_group();
  if (!group) return;
  const auto configs = group->all_gather(resolved.dump());
  for (std::size_t r = 1; r < configs.size(); ++r) {
    const auto differences = config_differences(core::Json::parse(configs[0]), core::Json::parse(configs[r]));
    if (!differences.empty()) {
      throw core::ConfigError::in_file(
          source, fmt::format("rank {}'s resolved config differs from rank 0's at: {}", r, fmt::join(differences, ", ")));
    }
  }
  const auto& world = group->world();
  log << fmt::format("data parallel: {} processes (Gloo), store {}, timeout {} s; batch_size is the global batch\n", world.world_size,
                     world.store_address(), static_cast<double>(world.timeout.count()) / 1000.0);
}

void check_resumed_config(const RunDirectory& run, const core::Json& resolved, bool allow_change, const std::string& source,
                          std::ostream& log) {
  const auto recorded_file = run.file(RunDirectory::kConfig);
  if (!std::filesystem::exists(recorded_file)) {
    throw core::UsageError(
        fmt::format("cannot resume {}: it has no {} (is it a run directory?)", run.path().string(), RunDirectory::kConfig));
  }
  const auto differences = config_differences(core::load_json_file(recorded_file.string()), resolved);
  if (differences.empty()) return;
  const auto listed = fmt::format("{}", fmt::join(differences, ", "));
  if (!allow_change) {
    throw core::ConfigError::in_file(source,
                                     fmt::format("differs from the config {} was started with, at: {}; resume with the same config, or "
                                                 "pass --allow-config-change",
                                                 recorded_file.string(), listed));
  }
  log << "resuming with a changed config, at: " << listed << "\n";
}

}  // namespace encore::finetune
