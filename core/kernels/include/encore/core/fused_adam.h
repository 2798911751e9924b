#pragma once
/// Adam and AdamW whose update runs as one pass over each parameter's memory instead of the seven
/// tensor operations of LibTorch's versions. They keep LibTorch's parameter state and archive
/// format, so checkpoints move between them, and their results match LibTorch's to float rounding.
/// Float32 CPU parameters take the fused path; anything else (AMSGrad, other types or devices)
/// falls back to the LibTorch update.

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

namespace encore::core {

/// LibTorch's Adam with its update in one pass over each tensor (same results, fewer memory passes).
class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  /// One update of every parameter with a gradient.
  torch::Tensor step(LossClosure closure = nullptr) override;
};

/// LibTorch's AdamW with its update in one pass over each tensor.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  /// One update of every parameter with a gradient.
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace encore::core
