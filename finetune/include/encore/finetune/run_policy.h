#pragma once
/// What every run does before it trains, whoever starts it: `encore run` and a C++ program calling
/// run_experiment get the same threads, the same BLAS gate and the same config checks.

#include <ostream>
#include <string>

#include "encore/core/json.h"
#include "encore/core/runtime.h"
#include "encore/finetune/run_directory.h"

namespace encore::finetune {

/// Sets the intra-op threads before the first tensor operation: the config's `threads`, else this
/// machine's cores shared among the run's workers on it. Logs the count, why, and the BLAS in use.
void configure_run_threads(const core::RuntimeConfig& runtime, std::ostream& log);

/// Stops a run whose BLAS kernel computes wrong matrix products (a relative error of 1e-4 or more
/// against double precision) before it trains on garbage; logs the error found.
void check_matrix_products(std::ostream& log);

/// Every rank of a data-parallel run must run the same resolved config: one started with another
/// config (or other --set values) stops the run before anything trains, with a ConfigError naming
/// `source` and the keys that differ. Nothing to do for a process running alone.
void check_ranks_agree(const core::Json& resolved, const std::string& source, std::ostream& log);

/// A resumed run's config against the one it was started with (its config.json): a difference is a
/// ConfigError naming `source` and the keys, unless `allow_change`, when it is logged.
void check_resumed_config(const RunDirectory& run, const core::Json& resolved, bool allow_change, const std::string& source,
                          std::ostream& log);

}  // namespace encore::finetune
