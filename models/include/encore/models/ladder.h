#pragma once
/// The ladder network (Rasmus et al., "Semi-supervised learning with ladder networks", 2015): a
/// dense encoder with batch normalisation, run twice on a batch (a clean path, and a noisy one with
/// Gaussian noise on the input and on every normalised pre-activation), and a decoder that walks
/// back down, estimating each level's clean activations from the noisy path's activation at that
/// level (the lateral connection) and the estimate of the level above, through a combinator. Its
/// unsupervised cost is the sum over levels of the distance between the estimates and the clean
/// path's normalised activations, so rows without labels train every layer while a head trains on
/// the noisy path's top.

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "encore/core/options.h"
#include "encore/models/autoencoder.h"
#include "encore/models/model.h"

namespace encore::models {

/// The ladder's vanilla combinator g(z~, u) at one level of `width` units, from its parameters
/// [10, width] (rows a1..a10 of the paper): mu = a1 sigmoid(a2 u + a3) + a4 u + a5,
/// v = a6 sigmoid(a7 u + a8) + a9 u + a10, estimate = (z~ - mu) v + mu.
torch::Tensor ladder_combinator(const torch::Tensor& parameters, const torch::Tensor& noisy, const torch::Tensor& from_above);

/// Options of a ladder network. The config's `model` object for `"type": "ladder_network"` holds the
/// fields below (all but input_dim, which the data gives).
///
/// Example:
///   LadderNetwork ladder(LadderNetworkOptions(784, {1000, 500, 250}).noise(0.3));
struct LadderNetworkOptions {
  /// Options whose input width is set later (by the model registry, from the data).
  LadderNetworkOptions() = default;
  /// A ladder over `input_dim` inputs with one layer per entry of `hidden_dims`.
  LadderNetworkOptions(std::int64_t input_dim, std::vector<std::int64_t> hidden_dims)
      : input_dim_(input_dim), hidden_dims_(std::move(hidden_dims)) {}
  /// Inputs (set from the data when built from a config).
  TORCH_ARG(std::int64_t, input_dim) = 0;
  /// Width of each layer, from the input up.
  TORCH_ARG(std::vector<std::int64_t>, hidden_dims);
  /// Activation of every layer but the top one.
  TORCH_ARG(Activation, activation) = Activation::kRelu;
  /// Activation of the top layer. "linear" with as many units as classes makes the top layer the
  /// paper's class layer: normalised, noisy scores whose denoising is a cost of its own, under the head.
  TORCH_ARG(Activation, top_activation) = Activation::kRelu;
  /// Deviation of the noisy path's Gaussian noise, on the input and on every normalised pre-activation.
  TORCH_ARG(double, noise) = 0.3;
  /// Weight of each batch's statistics in the running ones that evaluation normalises with.
  TORCH_ARG(double, batch_norm_momentum) = 0.1;

 public:  // TORCH_ARG leaves the access private
  /// The fields a config sets, with their rules (core/options.h).
  template <class Fields>
  void fields(Fields& f) {
    f.required("hidden_dims", hidden_dims_, "width of each layer, from the input up", core::at_least(std::int64_t{1}));
    f("activation", activation_, "activation of every layer but the top one", activation_choices());
    f("top_activation", top_activation_, "activation of the top layer (linear with one unit per class: the paper's class layer)",
      activation_choices());
    f("noise", noise_, "deviation of the noisy path's Gaussian noise on the input and every normalised pre-activation",
      core::at_least(0.0));
    f("batch_norm_momentum", batch_norm_momentum_, "weight of each batch's statistics in the running ones used for evaluation",
      core::Rule<double>{[](const double& v) { return v > 0 && v <= 1; }, "in (0, 1]"});
  }
  /// At least one layer. Throws core::OptionError.
  void check() const;
};

/// A ladder network as an AutoencoderModel. In eval mode encode() is the clean path normalised with
/// the running statistics, which is what classification and evaluation use; in training mode it is
/// the noisy path (batch statistics, noise), where the paper trains the supervised cost, and a
/// clean pass without gradients updates the running statistics. Parameters: per layer `weight{l}`
/// [width, below] (no bias: the shift `beta{l}` follows the normalisation), `beta{l}` and the scale
/// `gamma{l}`; per level (0 is the input) `combinator{l}` [10, width]; per layer the decoder's
/// `decoder_weight{l}` [below, width] from level l to level l-1. Buffers: `running_mean{l}`,
/// `running_var{l}`.
class LadderNetworkImpl : public torch::nn::Cloneable<LadderNetworkImpl>, public AutoencoderModel {
 public:
  /// A ladder as `options` say; bad options are an OptionError.
  explicit LadderNetworkImpl(const LadderNetworkOptions& options_);
  /// Builds the parameters (checks the options).
  void reset() override;
  /// Prints the widths and the noise.
  void pretty_print(std::ostream& stream) const override;

  torch::nn::Module& module() override { return *this; }
  /// The top layer's activations: the clean path in eval mode, the noisy path in training mode.
  torch::Tensor encode(const torch::Tensor& x) override;
  /// The decoder's estimate of the clean input (level 0) from the noisy path (from the clean
  /// input in eval mode).
  torch::Tensor forward(const torch::Tensor& x) override;
  std::int64_t code_dim() const override { return options.hidden_dims().back(); }
  int denoising_levels() const override { return static_cast<int>(options.hidden_dims().size()) + 1; }
  /// sum_l weights[l] * mean over rows and units of (estimate_l, normalised with the clean path's
  /// batch statistics at level l, - clean normalised pre-activation_l)^2; level 0 is the input,
  /// compared as it is. The clean path is a fixed target (no gradient); in training mode it updates
  /// the running statistics. `loss` is unused: every level is scored by its squared error.
  torch::Tensor denoising_cost(const torch::Tensor& x, const std::vector<double>& weights, ReconstructionLoss loss) override;
  /// False: the ladder learns from rows without labels in semi-supervised phases.
  bool pretrains() const override { return false; }
  /// code_of (the clean path with the running statistics; depth ignored) and reconstruction_of
  /// (the decoder's estimate of the input from the clean path, as forward in eval mode), with the
  /// helpers ladder_normalised and ladder_combined.
  std::string torchscript() const override;

  /// Layers (levels are one more: the input).
  int depth() const { return static_cast<int>(options.hidden_dims().size()); }

  /// The options it was built with.
  LadderNetworkOptions options;

 private:
  /// One pass up the encoder.
  struct Pass {
    /// Per level: the (noisy) normalised pre-activations, level 0 the (noisy) input.
    std::vector<torch::Tensor> normalised;
    /// Per level >= 1: the batch mean and deviation of the pre-activations (undefined in eval mode).
    std::vector<torch::Tensor> mean, deviation;
    /// The top layer's activations.
    torch::Tensor top;
  };
  /// The encoder on x: with batch statistics, or the running ones (which `update_running` then
  /// updates from the batch's), with noise of `noise` deviation.
  Pass up(const torch::Tensor& x, bool batch_statistics, bool update_running, double noise);
  /// The decoder's estimates of levels >= `lowest` from a noisy pass, top first.
  std::vector<torch::Tensor> down(const Pass& noisy, int lowest);

  std::vector<torch::Tensor> weights_, betas_, gammas_, combinators_, decoder_weights_, running_means_, running_vars_;
};
TORCH_MODULE(LadderNetwork);

}  // namespace encore::models
