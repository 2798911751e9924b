#include "encore/core/train_section.h"

namespace encore::core {

namespace {

void read_sgd(JsonReader& r, SgdOptions& s) {
  s.lr = r.get<double>("lr", s.lr, greater_than(0.0));
  s.momentum = r.get<double>("momentum", s.momentum, in_unit_interval_open_right());
  s.dampening = r.get<double>("dampening", s.dampening, in_unit_interval_open_right());
  s.weight_decay = r.get<double>("weight_decay", s.weight_decay, at_least(0.0));
  s.nesterov = r.get<bool>("nesterov", s.nesterov);
  if (s.nesterov && (s.momentum <= 0 || s.dampening != 0)) r.fail("nesterov", "needs momentum > 0 and dampening = 0");
  r.finish();
}

void read_adam(JsonReader& r, AdamOptions& s) {
  s.lr = r.get<double>("lr", s.lr, greater_than(0.0));
  const auto betas = r.get<std::vector<double>>("betas", {s.beta1, s.beta2});
  if (betas.size() != 2 || betas[0] < 0 || betas[0] >= 1 || betas[1] < 0 || betas[1] >= 1) {
    r.fail("betas", "must be two numbers in [0, 1), got " + describe_value(r.json()["betas"]));
  }
  s.beta1 = betas[0];
  s.beta2 = betas[1];
  s.eps = r.get<double>("eps", s.eps, greater_than(0.0));
  s.weight_decay = r.get<double>("weight_decay", s.weight_decay, at_least(0.0));
  s.amsgrad = r.get<bool>("amsgrad", s.amsgrad);
  r.finish();
}

Json adam_json(const OptimizerOptions& options) {
  const auto& s = dynamic_cast<const AdamOptions&>(options);
  return Json{{"lr", s.lr}, {"betas", {s.beta1, s.beta2}}, {"eps", s.eps}, {"weight_decay", s.weight_decay}, {"amsgrad", s.amsgrad}};
}

template <class Options>
std::shared_ptr<const OptimizerOptions> parse_adam(JsonReader& r) {
  auto options = std::make_shared<Options>();
  read_adam(r, *options);
  return options;
}

}  // namespace

void register_builtin_optimizers(OptimizerRegistry& registry) {
  registry.add("sgd", "stochastic gradient descent with momentum and optional Nesterov momentum",
               {[](JsonReader& r) -> std::shared_ptr<const OptimizerOptions> {
                  auto options = std::make_shared<SgdOptions>();
                  read_sgd(r, *options);
                  return options;
                },
                [](const OptimizerOptions& options) {
                  const auto& s = dynamic_cast<const SgdOptions&>(options);
                  return Json{{"lr", s.lr},
                              {"momentum", s.momentum},
                              {"dampening", s.dampening},
                              {"weight_decay", s.weight_decay},
                              {"nesterov", s.nesterov}};
                }});
  registry.add("adam", "Adam (L2 penalty added to the gradient when weight_decay > 0)", {parse_adam<AdamOptions>, adam_json});
  registry.add("adamw", "AdamW (decoupled weight decay)", {parse_adam<AdamWOptions>, adam_json});
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

ScheduleConfig parse_schedule(JsonReader r) {
  ScheduleConfig s;
  s.type = r.choice("type", {"constant", "step", "cosine"}, s.type);
  if (s.type == "step") {
    s.step_epochs = r.get<int>("step_epochs", s.step_epochs);
    if (s.step_epochs < 1) r.fail("step_epochs", "must be >= 1, got " + std::to_string(s.step_epochs));
    s.gamma = r.get<double>("gamma", s.gamma, greater_than(0.0));
  }
  if (s.type == "cosine") s.min_lr = r.get<double>("min_lr", s.min_lr, at_least(0.0));
  s.warmup_epochs = r.get<int>("warmup_epochs", s.warmup_epochs);
  if (s.warmup_epochs < 0) r.fail("warmup_epochs", "must be >= 0, got " + std::to_string(s.warmup_epochs));
  r.finish();
  return s;
}

Json to_json(const ScheduleConfig& s) {
  Json out{{"type", s.type}};
  if (s.type == "step") {
    out["step_epochs"] = s.step_epochs;
    out["gamma"] = s.gamma;
  }
  if (s.type == "cosine") out["min_lr"] = s.min_lr;
  out["warmup_epochs"] = s.warmup_epochs;
  return out;
}

TrainConfig parse_train_config(JsonReader r, const OptimizerRegistry& optimizers, const TrainConfig& defaults) {
  TrainConfig c = defaults;
  c.epochs = static_cast<int>(r.get<std::int64_t>("epochs", c.epochs, at_least(std::int64_t{0})));
  c.batch_size = r.get<std::int64_t>("batch_size", c.batch_size, at_least(std::int64_t{1}));
  if (auto o = r.optional_object("optimizer")) c.optimizer = parse_optimizer(*o, optimizers, defaults.optimizer->type());
  if (auto s = r.optional_object("schedule")) c.schedule = parse_schedule(*s);
  c.grad_clip_norm = r.get<double>("grad_clip_norm", c.grad_clip_norm, at_least(0.0));
  if (auto e = r.optional_object("early_stopping")) {
    EarlyStoppingConfig es;
    es.monitor = e->get<std::string>("monitor", es.monitor);
    es.mode = e->choice("mode", {"min", "max"}, es.mode);
    es.patience = static_cast<int>(e->get<std::int64_t>("patience", es.patience, at_least(std::int64_t{1})));
    es.min_delta = e->get<double>("min_delta", es.min_delta, at_least(0.0));
    es.restore_best = e->get<bool>("restore_best", es.restore_best);
    e->finish();
    c.early_stopping = es;
  }
  r.finish();
  return c;
}

Json to_json(const TrainConfig& c, const OptimizerRegistry& optimizers) {
  Json out{{"epochs", c.epochs},
           {"batch_size", c.batch_size},
           {"optimizer", to_json(*c.optimizer, optimizers)},
           {"schedule", to_json(c.schedule)},
           {"grad_clip_norm", c.grad_clip_norm}};
  if (c.early_stopping) {
    const auto& e = *c.early_stopping;
    out["early_stopping"] = Json{
        {"monitor", e.monitor}, {"mode", e.mode}, {"patience", e.patience}, {"min_delta", e.min_delta}, {"restore_best", e.restore_best}};
  } else {
    out["early_stopping"] = nullptr;
  }
  return out;
}

}  // namespace encore::core
