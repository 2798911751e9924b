#pragma once
/// Optimizers (SGD with momentum/Nesterov, Adam, AdamW) built by name from config, and learning-rate
/// schedules (constant, step, cosine) as pure functions of the epoch.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>

#include "encore/core/config.h"
#include "encore/core/registry.h"

namespace encore::core {

/// How an optimizer is read from config and built. `parse` validates a config object and returns
/// its resolved form (every option spelled out); `build` makes the optimizer from resolved options.
struct OptimizerFactory {
  std::function<Json(JsonReader&)> parse;
  std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::Tensor>, const Json&)> build;
};

using OptimizerRegistry = Registry<OptimizerFactory>;

/// Adds sgd, adam and adamw.
void register_builtin_optimizers(OptimizerRegistry& registry);

/// An optimizer choice from config: its type and resolved options.
struct OptimizerConfig {
  std::string type;
  Json options;  // resolved, including "type"
};

/// Reads `{"type": "adam", "lr": ...}`; the type defaults to `default_type`.
OptimizerConfig parse_optimizer(JsonReader reader, const OptimizerRegistry& registry, const std::string& default_type = "adam");

/// Builds the optimizer over `parameters` (which may be empty: groups can be added afterwards).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerConfig& config, const OptimizerRegistry& registry,
                                                        std::vector<torch::Tensor> parameters);

/// A learning-rate schedule over epochs.
struct ScheduleConfig {
  /// "constant", "step" (multiply by gamma every step_epochs) or "cosine" (to min_lr at the last epoch).
  std::string type = "constant";
  int step_epochs = 10;
  double gamma = 0.1;
  double min_lr = 0.0;
  /// Linear warm-up from lr/warmup_epochs over the first epochs.
  int warmup_epochs = 0;
};

ScheduleConfig parse_schedule(JsonReader reader);
Json to_json(const ScheduleConfig& config);

/// The learning rate for an epoch (0-based) of `total_epochs`, from the base rate.
double scheduled_lr(const ScheduleConfig& schedule, double base_lr, int epoch, int total_epochs);

}  // namespace encore::core
