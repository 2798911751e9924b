#pragma once
/// Models built from config by type name. A model type registers with add_model(): a typed options
/// struct that declares its fields (core/options.h) and a function that builds the module from the
/// options and the data's input width. The registry reads, checks and writes the config for it.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "encore/core/config.h"
#include "encore/core/options.h"
#include "encore/core/registry.h"
#include "encore/models/model.h"

namespace encore::models {

/// How a model type is read from config and built; made by add_model(). `parse` reads and checks the
/// `model` object (its "type" already read) and returns every option spelled out; `build` makes the
/// module from those for examples of `example_shape` (e.g. {784}, {28, 28}, {3, 32, 32}: rows of
/// their product of features); `options` describes the fields.
struct ModelFactory {
  /// Reads the `model` object.
  std::function<core::Json(core::JsonReader&)> parse;
  /// Builds the model.
  std::function<std::shared_ptr<AutoencoderModel>(const core::Json& resolved, const std::vector<std::int64_t>& example_shape)> build;
  /// The fields, for help texts.
  std::vector<core::OptionDescription> options;
};

/// The registry of model types (Components::models).
using ModelRegistry = core::Registry<ModelFactory>;

/// Features in a row of examples of `example_shape` (the product of its sides).
std::int64_t feature_count(const std::vector<std::int64_t>& example_shape);

/// Registers model type `name` with options of type `Options` (default-constructible, with a
/// `fields` member template; see core/options.h) and `build(const Options&, std::int64_t input_dim)`
/// returning a `std::shared_ptr<AutoencoderModel>` for rows of `input_dim` features, or, for a model
/// that needs the examples' shape (images), `build(const Options&, const std::vector<std::int64_t>&
/// example_shape)`. A core::OptionError thrown by `build` (for a check that needs the input) becomes
/// a ConfigError at `/model/<option>`.
template <class Options, class Build>
void add_model(ModelRegistry& registry, const std::string& name, std::string description, Build build) {
  ModelFactory factory;
  factory.parse = [](core::JsonReader& reader) { return core::options_json(core::read_options<Options>(reader)); };
  factory.build = [build](const core::Json& resolved, const std::vector<std::int64_t>& example_shape) -> std::shared_ptr<AutoencoderModel> {
    return core::build_from_options<Options>(resolved, "/model", [&](const Options& options) {
      if constexpr (std::is_invocable_v<const Build&, const Options&, const std::vector<std::int64_t>&>) {
        return build(options, example_shape);
      } else {
        return build(options, feature_count(example_shape));
      }
    });
  };
  factory.options = core::describe_options<Options>();
  registry.add(name, std::move(description), std::move(factory));
}

/// Adds `stacked_autoencoder`, `ladder_network`, `convolutional_autoencoder` and `variational_autoencoder`.
void register_builtin_models(ModelRegistry& registry);

/// The `model` section: a type name and its resolved options.
struct ModelConfig {
  /// The registered type name.
  std::string type;
  /// Every option of the type spelled out, and "type".
  core::Json options;
};

/// A model section from typed options, as C++ code fills an ExperimentConfig without JSON.
template <class Options>
ModelConfig model_config(const std::string& type, const Options& options) {
  core::check_options(options);
  ModelConfig config{type, core::options_json(options)};
  config.options["type"] = type;
  return config;
}

/// Reads the `model` section: "type" (default "stacked_autoencoder") and that type's options.
ModelConfig parse_model_config(core::JsonReader reader, const ModelRegistry& registry);
/// The model a section describes, for examples of `example_shape` (Dataset::example_shape(); {D} for
/// rows of D features). A configuration that does not fit them is a ConfigError at `/model/...`.
std::shared_ptr<AutoencoderModel> build_model(const ModelConfig& config, const ModelRegistry& registry,
                                              const std::vector<std::int64_t>& example_shape);

}  // namespace encore::models
