#pragma once
/// Everything an experiment looks up by name: optimizers, models and heads. Filled by
/// builtin_components(), extended by users through the registries' add().

#include <string>
#include <utility>
#include <vector>

#include "encore/core/train_section.h"
#include "encore/finetune/heads.h"
#include "encore/models/registry.h"

namespace encore::finetune {

/// The registries of an experiment.
struct Components {
  /// sgd, adam, adamw and the user's.
  core::OptimizerRegistry optimizers{"optimizer"};
  /// stacked_autoencoder and the user's.
  models::ModelRegistry models{"model"};
  /// one_vs_all, softmax and the user's.
  HeadRegistry heads{"head"};
};

/// Components with every built-in entry registered.
Components builtin_components();

/// Name and one-line description of each callback the experiment attaches.
std::vector<std::pair<std::string, std::string>> builtin_callbacks();

}  // namespace encore::finetune
