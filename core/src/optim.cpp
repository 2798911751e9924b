#include "encore/core/optim.h"

#include <torch/optim/sgd.h>

#include <cmath>

#include "encore/core/fused_adam.h"

namespace encore::core {

namespace {

struct SgdSettings {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
};

SgdSettings read_sgd(JsonReader& r) {
  SgdSettings s{};
  s.lr = r.get<double>("lr", 0.01, greater_than(0.0));
  s.momentum = r.get<double>("momentum", 0.9, in_unit_interval_open_right());
  s.dampening = r.get<double>("dampening", 0.0, in_unit_interval_open_right());
  s.weight_decay = r.get<double>("weight_decay", 0.0, at_least(0.0));
  s.nesterov = r.get<bool>("nesterov", false);
  if (s.nesterov && (s.momentum <= 0 || s.dampening != 0)) r.fail("nesterov", "needs momentum > 0 and dampening = 0");
  r.finish();
  return s;
}

struct AdamSettings {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad;
};

AdamSettings read_adam(JsonReader& r, double default_weight_decay) {
  AdamSettings s{};
  s.lr = r.get<double>("lr", 1e-3, greater_than(0.0));
  const auto betas = r.get<std::vector<double>>("betas", {0.9, 0.999});
  if (betas.size() != 2 || betas[0] < 0 || betas[0] >= 1 || betas[1] < 0 || betas[1] >= 1) {
    r.fail("betas", "must be two numbers in [0, 1), got " + describe_value(r.json()["betas"]));
  }
  s.beta1 = betas[0];
  s.beta2 = betas[1];
  s.eps = r.get<double>("eps", 1e-8, greater_than(0.0));
  s.weight_decay = r.get<double>("weight_decay", default_weight_decay, at_least(0.0));
  s.amsgrad = r.get<bool>("amsgrad", false);
  r.finish();
  return s;
}

Json adam_json(const std::string& type, const AdamSettings& s) {
  return Json{{"type", type}, {"lr", s.lr}, {"betas", {s.beta1, s.beta2}}, {"eps", s.eps},
              {"weight_decay", s.weight_decay}, {"amsgrad", s.amsgrad}};
}

}  // namespace

void register_builtin_optimizers(OptimizerRegistry& registry) {
  registry.add("sgd", "stochastic gradient descent with momentum and optional Nesterov momentum",
               {[](JsonReader& r) {
                  const auto s = read_sgd(r);
                  return Json{{"type", "sgd"}, {"lr", s.lr}, {"momentum", s.momentum}, {"dampening", s.dampening},
                              {"weight_decay", s.weight_decay}, {"nesterov", s.nesterov}};
                },
                [](std::vector<torch::Tensor> params, const Json& resolved) -> std::unique_ptr<torch::optim::Optimizer> {
                  JsonReader r(resolved);
                  r.has("type");
                  const auto s = read_sgd(r);
                  return std::make_unique<torch::optim::SGD>(
                      std::move(params),
                      torch::optim::SGDOptions(s.lr).momentum(s.momentum).dampening(s.dampening).weight_decay(s.weight_decay).nesterov(s.nesterov));
                }});
  registry.add("adam", "Adam (L2 penalty added to the gradient when weight_decay > 0)",
               {[](JsonReader& r) { return adam_json("adam", read_adam(r, 0.0)); },
                [](std::vector<torch::Tensor> params, const Json& resolved) -> std::unique_ptr<torch::optim::Optimizer> {
                  JsonReader r(resolved);
                  r.has("type");
                  const auto s = read_adam(r, 0.0);
                  return std::make_unique<FusedAdam>(
                      std::move(params), torch::optim::AdamOptions(s.lr).betas({s.beta1, s.beta2}).eps(s.eps).weight_decay(s.weight_decay).amsgrad(s.amsgrad));
                }});
  registry.add("adamw", "AdamW (decoupled weight decay)",
               {[](JsonReader& r) { return adam_json("adamw", read_adam(r, 0.01)); },
                [](std::vector<torch::Tensor> params, const Json& resolved) -> std::unique_ptr<torch::optim::Optimizer> {
                  JsonReader r(resolved);
                  r.has("type");
                  const auto s = read_adam(r, 0.01);
                  return std::make_unique<FusedAdamW>(
                      std::move(params), torch::optim::AdamWOptions(s.lr).betas({s.beta1, s.beta2}).eps(s.eps).weight_decay(s.weight_decay).amsgrad(s.amsgrad));
                }});
}

OptimizerConfig parse_optimizer(JsonReader reader, const OptimizerRegistry& registry, const std::string& default_type) {
  const auto type = reader.choice("type", registry.names(), default_type);
  OptimizerConfig config;
  config.type = type;
  config.options = registry.at(type).factory.parse(reader);
  return config;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerConfig& config, const OptimizerRegistry& registry,
                                                        std::vector<torch::Tensor> parameters) {
  return registry.at(config.type).factory.build(std::move(parameters), config.options);
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

double scheduled_lr(const ScheduleConfig& s, double base_lr, int epoch, int total_epochs) {
  if (epoch < s.warmup_epochs) return base_lr * (epoch + 1) / s.warmup_epochs;
  if (s.type == "step") return base_lr * std::pow(s.gamma, (epoch - s.warmup_epochs) / s.step_epochs);
  if (s.type == "cosine") {
    const int span = std::max(1, total_epochs - s.warmup_epochs - 1);
    const double progress = std::min(1.0, static_cast<double>(epoch - s.warmup_epochs) / span);
    return s.min_lr + (base_lr - s.min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  return base_lr;
}

}  // namespace encore::core
