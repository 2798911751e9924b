#pragma once
/// Training sections of a config (`epochs`, `batch_size`, `optimizer`, `schedule`, ...) read into
/// TrainConfig and written back, and the optimizer registry that turns an `optimizer` object into
/// typed OptimizerOptions.

#include <functional>
#include <memory>
#include <string>

#include "encore/core/config.h"
#include "encore/core/optim.h"
#include "encore/core/registry.h"
#include "encore/core/trainer.h"

namespace encore::core {

/// How an optimizer's options are read from config and written back. `parse` checks a config object
/// (its "type" already read) and returns typed options; `to_json` spells every option out (without
/// "type") for the resolved config.
struct OptimizerFactory {
  /// Reads an optimizer object into typed options.
  std::function<std::shared_ptr<const OptimizerOptions>(JsonReader&)> parse;
  /// Writes typed options back as JSON.
  std::function<Json(const OptimizerOptions&)> to_json;
};

/// The registry of optimizers (Components::optimizers).
using OptimizerRegistry = Registry<OptimizerFactory>;

/// Adds sgd, adam and adamw.
void register_builtin_optimizers(OptimizerRegistry& registry);

/// Reads `{"type": "adam", "lr": ...}`; the type defaults to `default_type`.
std::shared_ptr<const OptimizerOptions> parse_optimizer(JsonReader reader, const OptimizerRegistry& registry,
                                                        const std::string& default_type = "adam");
/// The resolved `optimizer` object, "type" first.
Json to_json(const OptimizerOptions& options, const OptimizerRegistry& registry);

/// Reads a `schedule` object.
ScheduleConfig parse_schedule(JsonReader reader);
/// The resolved `schedule` object.
Json to_json(const ScheduleConfig& config);

/// Reads a training section; keys absent fall back to `defaults`.
TrainConfig parse_train_config(JsonReader reader, const OptimizerRegistry& optimizers, const TrainConfig& defaults);
/// The resolved training section.
Json to_json(const TrainConfig& config, const OptimizerRegistry& optimizers);

}  // namespace encore::core
