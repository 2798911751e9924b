#include "encore/core/optim.h"

#include <torch/optim/sgd.h>

#include <cmath>

#include "encore/core/fused_adam.h"

namespace encore::core {

void SgdOptions::check() const {
  if (nesterov && (momentum <= 0 || dampening != 0)) throw OptionError("nesterov", "needs momentum > 0 and dampening = 0");
}

void AdamOptions::check() const {
  if (betas.size() != 2) throw OptionError("betas", "must be two numbers in [0, 1), got " + describe_value(Json(betas)));
}

std::unique_ptr<torch::optim::Optimizer> SgdOptions::build(std::vector<torch::Tensor> parameters) const {
  check_options(*this);
  return std::make_unique<torch::optim::SGD>(
      std::move(parameters),
      torch::optim::SGDOptions(lr).momentum(momentum).dampening(dampening).weight_decay(weight_decay).nesterov(nesterov));
}

std::unique_ptr<torch::optim::Optimizer> AdamOptions::build(std::vector<torch::Tensor> parameters) const {
  check_options(*this);
  return std::make_unique<FusedAdam>(
      std::move(parameters),
      torch::optim::AdamOptions(lr).betas({betas[0], betas[1]}).eps(eps).weight_decay(weight_decay).amsgrad(amsgrad));
}

std::unique_ptr<torch::optim::Optimizer> AdamWOptions::build(std::vector<torch::Tensor> parameters) const {
  check_options(*this);
  return std::make_unique<FusedAdamW>(
      std::move(parameters),
      torch::optim::AdamWOptions(lr).betas({betas[0], betas[1]}).eps(eps).weight_decay(weight_decay).amsgrad(amsgrad));
}

double scheduled_lr(const ScheduleConfig& s, double base_lr, int epoch, int total_epochs) {
  if (epoch < s.warmup_epochs) return base_lr * (epoch + 1) / s.warmup_epochs;
  if (s.type == "step") return base_lr * std::pow(s.gamma, (epoch - s.warmup_epochs) / s.step_epochs);
  if (s.type == "cosine") {
    // Half a cosine over the epochs after warm-up, reaching min_lr only after the last one: every
    // epoch trains (with min_lr 0, a last epoch at min_lr would change nothing).
    const int span = std::max(1, total_epochs - s.warmup_epochs);
    const double progress = std::min(1.0, static_cast<double>(epoch - s.warmup_epochs) / span);
    return s.min_lr + (base_lr - s.min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  return base_lr;
}

}  // namespace encore::core
