#pragma once
/// Optimizers built from typed options (SGD with momentum/Nesterov, Adam, AdamW) and learning-rate
/// schedules (constant, step, cosine) as pure functions of the epoch. train_section.h reads both
/// from a config; C++ code fills them directly.

#include <memory>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>

#include "encore/core/fields.h"

namespace encore::core {

/// An optimizer's options, typed: parsed once from a config by the optimizer registry
/// (train_section.h) or set in C++, they build the optimizer. A user's own optimizer derives its
/// options from this class and registers a factory for them; the Trainer needs nothing else.
class OptimizerOptions {
 public:
  virtual ~OptimizerOptions() = default;
  /// The name the optimizer is registered under ("adam").
  virtual std::string type() const = 0;
  /// The optimizer over `parameters` (which may be empty: groups can be added afterwards).
  virtual std::unique_ptr<torch::optim::Optimizer> build(std::vector<torch::Tensor> parameters) const = 0;
};

/// Stochastic gradient descent with momentum and optional Nesterov momentum.
struct SgdOptions : OptimizerOptions {
  /// Learning rate.
  double lr = 0.01;
  /// Momentum factor.
  double momentum = 0.9;
  /// Dampening of the momentum.
  double dampening = 0.0;
  /// L2 penalty added to the gradient.
  double weight_decay = 0.0;
  /// Nesterov momentum (needs momentum > 0 and dampening 0).
  bool nesterov = false;

  /// The fields a config sets (fields.h).
  template <class Fields>
  void fields(Fields& f) {
    f("lr", lr, "learning rate", greater_than(0.0));
    f("momentum", momentum, "momentum factor", in_unit_interval_open_right());
    f("dampening", dampening, "dampening of the momentum", in_unit_interval_open_right());
    f("weight_decay", weight_decay, "L2 penalty added to the gradient", at_least(0.0));
    f("nesterov", nesterov, "Nesterov momentum");
  }
  /// Nesterov momentum needs momentum and no dampening; throws OptionError.
  void check() const;
  std::string type() const override { return "sgd"; }
  /// Checks the options (OptionError) and builds LibTorch's SGD.
  std::unique_ptr<torch::optim::Optimizer> build(std::vector<torch::Tensor> parameters) const override;
};

/// Adam with an L2 penalty added to the gradient when weight_decay > 0, as encore's fused update
/// (fused_adam.h).
struct AdamOptions : OptimizerOptions {
  /// Learning rate.
  double lr = 1e-3;
  /// Decays of the first- and second-moment averages.
  std::vector<double> betas{0.9, 0.999};
  /// Added to the denominator for stability.
  double eps = 1e-8;
  /// L2 penalty added to the gradient (AdamW: decoupled decay).
  double weight_decay = 0.0;
  /// Use the maximum of past second moments (AMSGrad).
  bool amsgrad = false;

  /// The fields a config sets (fields.h).
  template <class Fields>
  void fields(Fields& f) {
    f("lr", lr, "learning rate", greater_than(0.0));
    f("betas", betas, "decays of the first- and second-moment averages", in_unit_interval_open_right());
    f("eps", eps, "added to the denominator for stability", greater_than(0.0));
    f("weight_decay", weight_decay, "L2 penalty (adamw: decoupled weight decay)", at_least(0.0));
    f("amsgrad", amsgrad, "use the maximum of past second moments");
  }
  /// Two betas; throws OptionError.
  void check() const;
  std::string type() const override { return "adam"; }
  /// Checks the options (OptionError) and builds encore's FusedAdam.
  std::unique_ptr<torch::optim::Optimizer> build(std::vector<torch::Tensor> parameters) const override;
};

/// AdamW: Adam with decoupled weight decay (0.01 unless set).
struct AdamWOptions : AdamOptions {
  AdamWOptions() { weight_decay = 0.01; }
  std::string type() const override { return "adamw"; }
  /// Checks the options (OptionError) and builds encore's FusedAdamW.
  std::unique_ptr<torch::optim::Optimizer> build(std::vector<torch::Tensor> parameters) const override;
};

/// A learning-rate schedule over epochs.
struct ScheduleConfig {
  /// "constant", "step" (multiply by gamma every step_epochs) or "cosine" (half a cosine from lr
  /// towards min_lr, which it would reach at the epoch after the last).
  std::string type = "constant";
  /// "step": epochs between multiplications by gamma.
  int step_epochs = 10;
  /// "step": the factor.
  double gamma = 0.1;
  /// "cosine": the rate the curve approaches.
  double min_lr = 0.0;
  /// Linear warm-up from lr/warmup_epochs over the first epochs.
  int warmup_epochs = 0;

  /// The fields of a config's `schedule` object (fields.h).
  template <class Fields>
  void fields(Fields& f) {
    static const Choices<std::string> types{{"constant", "constant"}, {"step", "step"}, {"cosine", "cosine"}};
    f("type", type, "constant, step (times gamma every step_epochs) or cosine (towards min_lr)", types);
    f("step_epochs", step_epochs, "step: epochs between multiplications by gamma", at_least(1));
    f("gamma", gamma, "step: the factor", greater_than(0.0));
    f("min_lr", min_lr, "cosine: the rate the curve approaches", at_least(0.0));
    f("warmup_epochs", warmup_epochs, "linear warm-up over the first epochs", at_least(0));
  }
};

/// The learning rate for an epoch (0-based) of `total_epochs`, from the base rate.
double scheduled_lr(const ScheduleConfig& schedule, double base_lr, int epoch, int total_epochs);

}  // namespace encore::core
