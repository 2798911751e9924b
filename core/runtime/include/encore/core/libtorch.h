#pragma once
/// What differs between the LibTorch versions encore builds against (Debian's 1.13, the default,
/// and the current 2.x of PyPI's torch wheel), in one place: code elsewhere names these rather than
/// testing the version itself.

#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include <torch/optim/optimizer.h>

namespace encore::core::libtorch {

/// torch::optim::Optimizer's map from a parameter to its state (keyed by a string in 1.13, by the
/// parameter's TensorImpl pointer in 2.x).
using OptimizerStates = std::remove_reference_t<decltype(std::declval<torch::optim::Optimizer&>().state())>;

/// The key of parameter `p` in OptimizerStates, as the LibTorch optimizers form it. (A template only
/// so that the branch of the other version is discarded.)
template <class States = OptimizerStates>
typename States::key_type optimizer_state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<typename States::key_type, std::string>) {
    // 1.13 keys by the pointer's text (c10::guts::to_string, gone in 2.x, streams it alike).
    std::ostringstream text;
    text << p.unsafeGetTensorImpl();
    return text.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

}  // namespace encore::core::libtorch
