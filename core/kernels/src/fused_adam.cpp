#include "encore/core/fused_adam.h"

#include <torch/torch.h>

#include <cmath>

#include "encore/core/libtorch.h"
#include "encore/core/ops.h"
#include "kernels.h"

namespace encore::core {

namespace {

// The update walks the storage in blocks of whole rows (dim 0), so the parameter must be dense with
// dim 0 outermost (contiguous, or channels-last as convolution kernels are), and its gradient and
// moments laid out as it is.
bool fusable(const torch::Tensor& p) {
  const auto& g = p.grad();
  const bool rows_outermost = p.is_contiguous() || (p.dim() == 4 && p.is_contiguous(torch::MemoryFormat::ChannelsLast));
  return cpu_kernel_takes(p) && rows_outermost && g.scalar_type() == torch::kFloat32 && !g.is_sparse() && g.strides() == p.strides();
}

template <class Options>
bool all_fusable(const std::vector<torch::optim::OptimizerParamGroup>& groups) {
  for (const auto& group : groups) {
    if (static_cast<const Options&>(group.options()).amsgrad()) return false;
    for (const auto& p : group.params()) {
      if (p.grad().defined() && !fusable(p)) return false;
    }
  }
  return true;
}

template <class Options, class State, bool kDecoupled>
void fused_step(std::vector<torch::optim::OptimizerParamGroup>& groups, libtorch::OptimizerStates& states) {
  torch::NoGradGuard no_grad;
  for (auto& group : groups) {
    const auto& options = static_cast<const Options&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = states[libtorch::optimizer_state_key(p)];
      const bool first_update = !slot;
      if (first_update) {
        // Left unwritten: the first update starts the moments at zero without reading them, and
        // each thread's first write to its block maps that block's pages (in parallel, where a
        // zero fill here would map them all on this thread).
        auto fresh = std::make_unique<State>();
        fresh->step(0);
        fresh->exp_avg(torch::empty_like(p));
        fresh->exp_avg_sq(torch::empty_like(p));
        slot = std::move(fresh);
      }
      auto& state = static_cast<State&>(*slot);
      state.step(state.step() + 1);
      const auto [beta1, beta2] = options.betas();
      const double correction1 = 1 - std::pow(beta1, static_cast<double>(state.step()));
      const double correction2 = 1 - std::pow(beta2, static_cast<double>(state.step()));
      const double decay = options.weight_decay();
      kernels::AdamCoefficients c{static_cast<float>(beta1),
                                  static_cast<float>(beta2),
                                  static_cast<float>(options.eps()),
                                  static_cast<float>(options.lr() / correction1),
                                  static_cast<float>(1.0 / std::sqrt(correction2)),
                                  kDecoupled ? 0.0f : static_cast<float>(decay),
                                  kDecoupled ? static_cast<float>(1.0 - options.lr() * decay) : 1.0f,
                                  first_update};
      auto* param = p.data_ptr<float>();
      const auto* grad = p.grad().data_ptr<float>();
      auto* mean = state.exp_avg().template data_ptr<float>();
      auto* square = state.exp_avg_sq().template data_ptr<float>();
      // Split as linear() splits the weight, so each block is updated by the thread whose core
      // computed its gradient (and holds it in cache).
      const auto rows = p.dim() > 0 ? p.size(0) : 1;
      const auto row_size = rows > 0 ? p.numel() / rows : 0;
      for_each_owned_rows(rows, row_size, [&](std::int64_t, std::int64_t first, std::int64_t end) {
        const auto begin = first * row_size;
        kernels::adam_update(param + begin, grad + begin, mean + begin, square + begin, (end - first) * row_size, c);
      });
    }
  }
}

// Runs the closure, then the fused update when every parameter allows it, else the base class's.
template <class Options, class State, bool kDecoupled, class Base>
torch::Tensor step_with(torch::optim::Optimizer::LossClosure& closure, std::vector<torch::optim::OptimizerParamGroup>& groups,
                        libtorch::OptimizerStates& states, Base&& base_step) {
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  if (all_fusable<Options>(groups)) {
    fused_step<Options, State, kDecoupled>(groups, states);
  } else {
    base_step();
  }
  return loss;
}

}  // namespace

torch::Tensor FusedAdam::step(LossClosure closure) {
  return step_with<torch::optim::AdamOptions, torch::optim::AdamParamState, false>(closure, param_groups_, state_,
                                                                                   [this] { torch::optim::Adam::step(); });
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  return step_with<torch::optim::AdamWOptions, torch::optim::AdamWParamState, true>(closure, param_groups_, state_,
                                                                                    [this] { torch::optim::AdamW::step(); });
}

}  // namespace encore::core
