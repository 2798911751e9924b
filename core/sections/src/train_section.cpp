#include "encore/core/train_section.h"

namespace encore::core {

void register_builtin_optimizers(OptimizerRegistry& registry) {
  add_optimizer<SgdOptions>(registry, "sgd", "stochastic gradient descent with momentum and optional Nesterov momentum");
  add_optimizer<AdamOptions>(registry, "adam", "Adam (L2 penalty added to the gradient when weight_decay > 0)");
  add_optimizer<AdamWOptions>(registry, "adamw", "AdamW (decoupled weight decay)");
}

std::shared_ptr<const OptimizerOptions> parse_optimizer(JsonReader reader, const OptimizerRegistry& registry,
                                                        const std::string& default_type) {
  const auto type = reader.choice("type", registry.names(), default_type);
  return registry.at(type).factory.parse(reader);
}

Json to_json(const OptimizerOptions& options, const OptimizerRegistry& registry) {
  Json out{{"type", options.type()}};
  out.update(registry.at(options.type()).factory.to_json(options));
  return out;
}

TrainConfig parse_train_config(JsonReader r, const OptimizerRegistry& optimizers, const TrainConfig& defaults) {
  TrainConfig c = defaults;
  if (auto o = r.optional_object("optimizer")) c.optimizer = parse_optimizer(*o, optimizers, defaults.optimizer->type());
  if (auto s = r.optional_object("schedule")) c.schedule = read_options<ScheduleConfig>(*s);
  if (auto e = r.optional_object("early_stopping")) c.early_stopping = read_options<EarlyStoppingConfig>(*e);
  return read_options(r, c);
}

Json to_json(const TrainConfig& c, const OptimizerRegistry& optimizers) {
  Json out = options_json(c);
  out["optimizer"] = to_json(*c.optimizer, optimizers);
  out["schedule"] = options_json(c.schedule);
  out["early_stopping"] = c.early_stopping ? options_json(*c.early_stopping) : Json(nullptr);
  return out;
}

}  // namespace encore::core
