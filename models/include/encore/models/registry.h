#pragma once
/// Models built from config by type name.

#include <functional>
#include <string>

#include "encore/core/config.h"
#include "encore/core/registry.h"
#include "encore/models/model.h"

namespace encore::models {

/// How a model type is read from config and built. `parse` validates the `model` object and returns
/// it resolved (with its "type"); `build` makes the module for inputs of `input_dim` features.
struct ModelFactory {
  std::function<core::Json(core::JsonReader&)> parse;
  std::function<std::shared_ptr<AutoencoderModel>(const core::Json& resolved, std::int64_t input_dim)> build;
};

using ModelRegistry = core::Registry<ModelFactory>;

/// Adds `stacked_autoencoder`.
void register_builtin_models(ModelRegistry& registry);

/// The `model` section: a type name and its resolved options.
struct ModelConfig {
  std::string type;
  core::Json options;  // resolved, including "type"
};

ModelConfig parse_model_config(core::JsonReader reader, const ModelRegistry& registry);
std::shared_ptr<AutoencoderModel> build_model(const ModelConfig& config, const ModelRegistry& registry, std::int64_t input_dim);

}  // namespace encore::models
