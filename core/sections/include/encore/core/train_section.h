#pragma once
/// Training sections of a config (`epochs`, `batch_size`, `optimizer`, `schedule`, ...) read into
/// TrainConfig and written back, and the optimizer registry that turns an `optimizer` object into
/// typed OptimizerOptions.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "encore/core/config.h"
#include "encore/core/optim.h"
#include "encore/core/options.h"
#include "encore/core/registry.h"
#include "encore/core/trainer.h"

namespace encore::core {

/// How an optimizer's options are read from config and written back; made by add_optimizer().
struct OptimizerFactory {
  /// Reads an optimizer object (its "type" already read) into typed options.
  std::function<std::shared_ptr<const OptimizerOptions>(JsonReader&)> parse;
  /// Writes typed options back as JSON, every option spelled out (without "type").
  std::function<Json(const OptimizerOptions&)> to_json;
  /// The fields, for help texts.
  std::vector<OptionDescription> options;
};

/// The registry of optimizers (Components::optimizers).
using OptimizerRegistry = Registry<OptimizerFactory>;

/// Registers optimizer `name` with options of type `Options`: an OptimizerOptions whose type() is
/// `name`, default-constructible, with a `fields` member template (fields.h) and a build() that
/// makes the optimizer. encore reads, checks and writes its config object from the fields.
template <class Options>
void add_optimizer(OptimizerRegistry& registry, const std::string& name, std::string description) {
  OptimizerFactory factory;
  factory.parse = [](JsonReader& reader) -> std::shared_ptr<const OptimizerOptions> {
    return std::make_shared<Options>(read_options<Options>(reader));
  };
  factory.to_json = [](const OptimizerOptions& options) { return options_json(dynamic_cast<const Options&>(options)); };
  factory.options = describe_options<Options>();
  registry.add(name, std::move(description), std::move(factory));
}

/// Adds sgd, adam and adamw.
void register_builtin_optimizers(OptimizerRegistry& registry);

/// Reads `{"type": "adam", "lr": ...}`; the type defaults to `default_type`.
std::shared_ptr<const OptimizerOptions> parse_optimizer(JsonReader reader, const OptimizerRegistry& registry,
                                                        const std::string& default_type = "adam");
/// The resolved `optimizer` object, "type" first.
Json to_json(const OptimizerOptions& options, const OptimizerRegistry& registry);

/// Reads a training section; keys absent fall back to `defaults`.
TrainConfig parse_train_config(JsonReader reader, const OptimizerRegistry& optimizers, const TrainConfig& defaults);
/// The resolved training section.
Json to_json(const TrainConfig& config, const OptimizerRegistry& optimizers);

}  // namespace encore::core
