#include <fmt/format.h>
#include <fmt/ranges.h>

#include "encore/core/errors.h"

#include "encore/core/files.h"
#include "encore/core/runtime.h"
#include "encore/finetune/experiment.h"
#include "commands/commands.h"

namespace encore::apps {

int run_command(const RunArgs& args, std::ostream& out, std::ostream& err) {
  const auto components = finetune::builtin_components();
  const auto config = finetune::load_experiment(args.config.config_file, args.config.overrides, components);
  // Threads are set before the first tensor operation; the BLAS and its kernel are logged with them.
  const int threads = core::configure_threads(config.runtime.threads);
  err << fmt::format("encore {}: {} intra-op threads ({}), BLAS: {}\n", ENCORE_VERSION, threads,
                     config.runtime.threads > 0 ? "from config" : "all available cores", core::blas_description());
  // A kernel that computes wrong products must stop the run, not train on garbage.
  const double product_error = core::blas_product_error();
  err << fmt::format("matrix-product check against double precision: largest relative error {:.1e}\n", product_error);
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
      err << "resuming with a changed config, at: " << listed << "\n";
    }
  }
  options.log = &err;
  options.interactive = args.interactive;
  options.pretrain_only = args.pretrain_only;
  if (!args.pretrained_file.empty()) options.pretrained_file = args.pretrained_file;
  finetune::run_experiment(config, components, options);
  err << fmt::format("run directory: {}\n", options.run_dir.string());
  out << options.run_dir.string() << '\n';
  return 0;
}

}  // namespace encore::apps
