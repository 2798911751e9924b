#pragma once
/// What differs between the LibTorch versions encore builds against (Debian's 1.13, the default,
/// and the current 2.x of PyPI's torch wheel), in one place: code elsewhere names these rather than
/// testing the version itself.

#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
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

/// Whether autocast (automatic mixed precision) is on for `device_type` in this thread.
bool autocast_enabled(c10::DeviceType device_type);

/// Autocast for `device_type` to `dtype` while it lives, as Python's `torch.autocast`: LibTorch's
/// eligible operations (the matrix products among them) run in `dtype`, precision-sensitive ones
/// (losses, reductions) in float32, and gradients reach float32 parameters. Restores the previous
/// state on destruction, so guards nest.
class AutocastGuard {
 public:
  /// Turns autocast on for `device_type` (CPU or CUDA) with `dtype` as its lower precision.
  AutocastGuard(c10::DeviceType device_type, c10::ScalarType dtype);
  /// Restores the enclosing state (and drops the weight casts cached by the outermost region).
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_type_;
  bool previous_enabled_;
  c10::ScalarType previous_dtype_;
};

}  // namespace encore::core::libtorch
