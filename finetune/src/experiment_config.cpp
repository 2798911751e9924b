#include "encore/finetune/experiment_config.h"

#include <fmt/format.h>

#include "encore/core/data_section.h"
#include "encore/core/runtime_section.h"

namespace encore::finetune {

namespace {

// With validation_fraction 0 there is no validation set: no stage that runs may monitor val/ metrics.
void check_monitors_have_validation(const ExperimentConfig& c) {
  if (c.data.validation_fraction > 0) return;
  std::vector<std::pair<std::string, const core::TrainConfig*>> stages;
  if (c.pretrain.runs_greedy()) {
    stages.emplace_back("/pretrain/greedy", &c.pretrain.greedy);
    for (std::size_t k = 0; k < c.pretrain.greedy_layers.size(); ++k) {
      stages.emplace_back(fmt::format("/pretrain/greedy/layers/{}", k), &c.pretrain.greedy_layers[k]);
    }
  }
  if (c.pretrain.runs_end_to_end()) stages.emplace_back("/pretrain/end_to_end", &c.pretrain.end_to_end);
  if (c.finetune) {
    for (std::size_t i = 0; i < c.finetune->phases.size(); ++i) {
      stages.emplace_back(fmt::format("/finetune/phases/{}", i), &c.finetune->phases[i].train);
    }
  }
  for (const auto& [path, train] : stages) {
    if (!train->early_stopping || train->early_stopping->monitor.rfind("val/", 0) != 0) continue;
    throw core::ConfigError(path + "/early_stopping/monitor",
                            fmt::format("monitors \"{}\", but /data/validation_fraction is 0: there is no validation set (hold "
                                        "out a fraction, or monitor a train/ metric)",
                                        train->early_stopping->monitor));
  }
}

}  // namespace

ExperimentConfig parse_experiment(const core::Json& json, const Components& components) {
  core::JsonReader r(json);
  ExperimentConfig c;
  c.name = r.get<std::string>("name", c.name);
  if (c.name.empty() || c.name.find('/') != std::string::npos || c.name == "." || c.name == "..") {
    r.fail("name", "must be a non-empty name without '/', got " + core::describe_value(json["name"]));
  }
  c.runtime = core::parse_runtime(r);
  c.data = core::parse_data_config(r.object("data"));
  c.model = models::parse_model_config(r.object("model"), components.models);
  const core::Json empty = core::Json::object();
  c.pretrain =
      models::parse_pretrain_config(r.has("pretrain") ? r.object("pretrain") : core::JsonReader(empty, "/pretrain"), components.optimizers);
  if (auto f = r.optional_object("finetune")) c.finetune = parse_finetune_config(*f, components.optimizers, components.heads);
  check_monitors_have_validation(c);
  r.finish();
  return c;
}

core::Json to_json(const ExperimentConfig& c, const Components& components) {
  core::Json out{{"name", c.name}};
  core::add_runtime_json(out, c.runtime);
  out["data"] = core::to_json(c.data);
  out["model"] = c.model.options;
  out["pretrain"] = models::to_json(c.pretrain, components.optimizers);
  out["finetune"] = c.finetune ? to_json(*c.finetune, components.optimizers) : core::Json(nullptr);
  return out;
}

ExperimentConfig load_experiment(const std::string& file, const std::vector<std::string>& overrides, const Components& components) {
  const core::Json raw = core::load_json_file(file);
  ExperimentConfig config = parse_experiment(raw, components);
  // Data files named in the config file are found next to it; those given with --set, from the
  // current directory, as a shell user expects.
  core::resolve_data_paths(config.data, std::filesystem::path(file).parent_path());
  if (!overrides.empty()) {
    // Overrides address the resolved config, where every setting exists with its default.
    core::Json resolved = to_json(config, components);
    for (const auto& assignment : overrides) core::apply_override(resolved, assignment);
    config = parse_experiment(resolved, components);
    core::resolve_data_paths(config.data, std::filesystem::current_path());
  }
  core::check_data_files(config.data);
  return config;
}

std::vector<std::string> config_differences(const core::Json& before, const core::Json& after) {
  const auto flat_before = before.flatten();
  const auto flat_after = after.flatten();
  std::vector<std::string> out;
  for (const auto& [key, value] : flat_before.items()) {
    if (!flat_after.contains(key) || flat_after.at(key) != value) out.push_back(key);
  }
  for (const auto& [key, value] : flat_after.items()) {
    if (!flat_before.contains(key)) out.push_back(key);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace encore::finetune
