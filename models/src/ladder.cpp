#include "encore/models/ladder.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <cmath>

#include "encore/core/ops.h"

namespace encore::models {

namespace {

// As LibTorch's batch normalisation: keeps the deviation of a constant unit away from 0.
constexpr double kVarianceEpsilon = 1e-5;

struct BatchNormalised {
  torch::Tensor value, mean, deviation;
};

BatchNormalised normalise_with_batch_statistics(const torch::Tensor& pre) {
  const auto mean = pre.mean(0);
  const auto deviation = (pre.var(0, /*unbiased=*/false) + kVarianceEpsilon).sqrt();
  return {(pre - mean) / deviation, mean, deviation};
}

}  // namespace

torch::Tensor ladder_combinator(const torch::Tensor& a, const torch::Tensor& noisy, const torch::Tensor& from_above) {
  const auto& u = from_above;
  const auto mu = a[0] * torch::sigmoid(a[1] * u + a[2]) + a[3] * u + a[4];
  const auto v = a[5] * torch::sigmoid(a[6] * u + a[7]) + a[8] * u + a[9];
  return (noisy - mu) * v + mu;
}

void LadderNetworkOptions::check() const {
  if (hidden_dims_.empty()) throw core::OptionError("hidden_dims", "must list at least one layer");
}

LadderNetworkImpl::LadderNetworkImpl(const LadderNetworkOptions& options_) : options(options_) { reset(); }

void LadderNetworkImpl::reset() {
  core::check_options(options);
  for (auto* list : {&weights_, &betas_, &gammas_, &combinators_, &decoder_weights_, &running_means_, &running_vars_}) list->clear();
  std::vector<std::int64_t> widths{options.input_dim()};
  widths.insert(widths.end(), options.hidden_dims().begin(), options.hidden_dims().end());
  for (std::size_t l = 0; l < widths.size(); ++l) {
    // The paper's initial combinator: the estimate starts at 0 and learns how much of the lateral
    // (noisy) activation to keep as a function of the signal from above.
    auto combinator = torch::zeros({10, widths[l]});
    combinator[1].fill_(1);
    combinator[6].fill_(1);
    combinators_.push_back(register_parameter(fmt::format("combinator{}", l), combinator));
    if (l == 0) continue;
    const auto below = widths[l - 1];
    const auto width = widths[l];
    // Batch normalisation follows every product, so the weights' scale only sets where training starts.
    weights_.push_back(
        register_parameter(fmt::format("weight{}", l), torch::randn({width, below}) / std::sqrt(static_cast<double>(below))));
    betas_.push_back(register_parameter(fmt::format("beta{}", l), torch::zeros({width})));
    gammas_.push_back(register_parameter(fmt::format("gamma{}", l), torch::ones({width})));
    decoder_weights_.push_back(
        register_parameter(fmt::format("decoder_weight{}", l), torch::randn({below, width}) / std::sqrt(static_cast<double>(width))));
    running_means_.push_back(register_buffer(fmt::format("running_mean{}", l), torch::zeros({width})));
    running_vars_.push_back(register_buffer(fmt::format("running_var{}", l), torch::ones({width})));
  }
}

void LadderNetworkImpl::pretty_print(std::ostream& stream) const {
  stream << "encore::models::LadderNetwork(" << options.input_dim();
  for (auto d : options.hidden_dims()) stream << "-" << d;
  stream << ", activation=" << activation_name(options.activation()) << ", top_activation=" << activation_name(options.top_activation())
         << ", noise=" << options.noise() << ")";
}

LadderNetworkImpl::Pass LadderNetworkImpl::up(const torch::Tensor& x, bool batch_statistics, bool update_running, double noise) {
  const auto add_noise = [noise](const torch::Tensor& t) { return noise > 0 ? t + torch::randn_like(t) * noise : t; };
  Pass pass;
  auto h = add_noise(x);
  pass.normalised.push_back(h);
  pass.mean.emplace_back();
  pass.deviation.emplace_back();
  for (int l = 1; l <= depth(); ++l) {
    const auto i = static_cast<std::size_t>(l - 1);
    const auto pre = core::linear(h, weights_[i], torch::Tensor());
    torch::Tensor z;
    if (batch_statistics) {
      auto normalised = normalise_with_batch_statistics(pre);
      if (update_running) {
        torch::NoGradGuard no_grad;
        const double m = options.batch_norm_momentum();
        running_means_[i].mul_(1 - m).add_(normalised.mean.detach(), m);
        running_vars_[i].mul_(1 - m).add_(pre.detach().var(0, /*unbiased=*/pre.size(0) > 1), m);
      }
      z = normalised.value;
      pass.mean.push_back(normalised.mean);
      pass.deviation.push_back(normalised.deviation);
    } else {
      z = (pre - running_means_[i]) / (running_vars_[i] + kVarianceEpsilon).sqrt();
      pass.mean.emplace_back();
      pass.deviation.emplace_back();
    }
    z = add_noise(z);
    pass.normalised.push_back(z);
    h = core::activate(l == depth() ? options.top_activation() : options.activation(), gammas_[i] * (z + betas_[i]));
  }
  pass.top = h;
  return pass;
}

std::vector<torch::Tensor> LadderNetworkImpl::down(const Pass& noisy, int lowest) {
  std::vector<torch::Tensor> estimates(static_cast<std::size_t>(depth() + 1));
  // The top level's signal from above is the noisy top itself; below, the estimate of the level
  // above mapped down by the decoder's weight. Both are batch normalised, as in the paper.
  auto from_above = normalise_with_batch_statistics(noisy.top).value;
  for (int l = depth(); l >= lowest; --l) {
    const auto i = static_cast<std::size_t>(l);
    if (l < depth())
      from_above = normalise_with_batch_statistics(core::linear(estimates[i + 1], decoder_weights_[i], torch::Tensor())).value;
    estimates[i] = ladder_combinator(combinators_[i], noisy.normalised[i], from_above);
  }
  return estimates;
}

torch::Tensor LadderNetworkImpl::encode(const torch::Tensor& x) {
  if (!is_training()) return up(x, false, false, 0.0).top;
  {
    torch::NoGradGuard no_grad;
    up(x, true, true, 0.0);
  }
  return up(x, true, false, options.noise()).top;
}

torch::Tensor LadderNetworkImpl::forward(const torch::Tensor& x) {
  const auto noisy = is_training() ? up(x, true, false, options.noise()) : up(x, false, false, 0.0);
  return down(noisy, 0).front();
}

torch::Tensor LadderNetworkImpl::denoising_cost(const torch::Tensor& x, const std::vector<double>& weights, ReconstructionLoss /*loss*/) {
  TORCH_CHECK(weights.size() == static_cast<std::size_t>(denoising_levels()), "ladder network: ", weights.size(), " weights for ",
              denoising_levels(), " levels");
  int lowest = 0;
  while (lowest < depth() && weights[static_cast<std::size_t>(lowest)] == 0) ++lowest;
  TORCH_CHECK(weights[static_cast<std::size_t>(lowest)] > 0, "ladder network: every level's weight is 0");
  Pass clean;
  {
    torch::NoGradGuard no_grad;
    clean = up(x, true, is_training(), 0.0);
  }
  const auto noisy = up(x, true, false, is_training() ? options.noise() : 0.0);
  const auto estimates = down(noisy, lowest);
  torch::Tensor cost;
  for (int l = lowest; l <= depth(); ++l) {
    const auto i = static_cast<std::size_t>(l);
    if (weights[i] == 0) continue;
    // The input is compared as it is; a layer's estimate is normalised as its clean target was.
    const auto estimate = l == 0 ? estimates[i] : (estimates[i] - clean.mean[i]) / clean.deviation[i];
    const auto term = weights[i] * (estimate - clean.normalised[i]).pow(2).mean();
    cost = cost.defined() ? cost + term : term;
  }
  return cost;
}

std::string LadderNetworkImpl::torchscript() const {
  // The clean path in eval mode: every level's normalised pre-activation z{l} (z0 the input), and h
  // the layer's activation.
  std::string up = "    z0 = x\n    h = x\n";
  for (int l = 1; l <= depth(); ++l) {
    up += fmt::format("    z{} = (torch.linear(h, self.weight{}) - self.running_mean{}) / torch.sqrt(self.running_var{} + {})\n", l, l, l,
                      l, kVarianceEpsilon);
    up += fmt::format("    h = {}\n", core::activation_script(l == depth() ? options.top_activation() : options.activation(),
                                                              fmt::format("self.gamma{} * (z{} + self.beta{})", l, l, l)));
  }
  std::string code = fmt::format(
      "def ladder_normalised(self, t: Tensor) -> Tensor:\n"
      "    return (t - t.mean(0)) / torch.sqrt(t.var(0, unbiased=False) + {})\n\n"
      "def ladder_combined(self, a: Tensor, noisy: Tensor, u: Tensor) -> Tensor:\n"
      "    mu = a[0] * torch.sigmoid(a[1] * u + a[2]) + a[3] * u + a[4]\n"
      "    v = a[5] * torch.sigmoid(a[6] * u + a[7]) + a[8] * u + a[9]\n"
      "    return (noisy - mu) * v + mu\n\n",
      kVarianceEpsilon);
  code += "def code_of(self, x: Tensor, depth: int) -> Tensor:\n" + up + "    return h\n\n";
  // The decoder, as down(): the top's signal is the top itself, each level's the estimate above
  // through the decoder's weight, both normalised with their batch statistics.
  code += "def reconstruction_of(self, x: Tensor) -> Tensor:\n" + up + "    u = self.ladder_normalised(h)\n";
  for (int l = depth(); l >= 0; --l) {
    if (l < depth()) code += fmt::format("    u = self.ladder_normalised(torch.linear(e, self.decoder_weight{}))\n", l + 1);
    code += fmt::format("    e = self.ladder_combined(self.combinator{}, z{}, u)\n", l, l);
  }
  return code + "    return e\n";
}

}  // namespace encore::models
