#pragma once
/// A scope in which some modules run in eval mode (batch normalisation with its running
/// statistics, which it then leaves unchanged; no dropout), whatever mode the rest is in.

#include <utility>
#include <vector>

#include <torch/nn/module.h>

namespace encore::core {

/// Puts modules in eval mode for its lifetime and gives each back the mode it had. The modules
/// must outlive it.
class EvalModeGuard {
 public:
  /// Switches `modules` to eval mode.
  explicit EvalModeGuard(std::vector<torch::nn::Module*> modules) : modules_(std::move(modules)) {
    for (auto* m : modules_) {
      was_training_.push_back(m->is_training());
      m->eval();
    }
  }
  /// Gives the modules back their modes.
  ~EvalModeGuard() {
    for (std::size_t i = 0; i < modules_.size(); ++i) modules_[i]->train(was_training_[i]);
  }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  std::vector<torch::nn::Module*> modules_;
  std::vector<bool> was_training_;
};

}  // namespace encore::core
