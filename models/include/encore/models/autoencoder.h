#pragma once
/// Autoencoder layers and stacks as torch::nn modules: options struct, Impl, TORCH_MODULE holder.

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "encore/core/ops.h"

namespace encore::models {

using core::Activation;
enum class Corruption {
  kNone,
  /// Sets a random fraction `level` of inputs to zero.
  kMasking,
  /// Adds Gaussian noise with standard deviation `level`.
  kGaussian,
  /// Sets a random fraction `level` of inputs to 0 or 1 with equal chance.
  kSaltAndPepper,
};
enum class Sparsity {
  kNone,
  /// KL divergence of each unit's mean activation (sigmoid codes) to the target rho.
  kKl,
  /// L1 norm of the codes.
  kL1,
};
enum class ReconstructionLoss { kMse, kBinaryCrossEntropy };

Activation parse_activation(const std::string& name);
std::string activation_name(Activation a);
Corruption parse_corruption(const std::string& name);
std::string corruption_name(Corruption c);
Sparsity parse_sparsity(const std::string& name);
std::string sparsity_name(Sparsity s);
ReconstructionLoss parse_reconstruction_loss(const std::string& name);
std::string reconstruction_loss_name(ReconstructionLoss l);

/// Derivative of the activation at the pre-activation whose output is h (each activation's
/// derivative is a function of its output).
torch::Tensor activation_derivative(Activation a, const torch::Tensor& h);
/// Mean per-example reconstruction loss (summed over features for BCE, averaged for MSE).
torch::Tensor reconstruction_loss(ReconstructionLoss kind, const torch::Tensor& reconstruction, const torch::Tensor& target);
/// The BCE reconstruction loss of sigmoid(logits), computed from the logits.
torch::Tensor logistic_reconstruction_loss(const torch::Tensor& logits, const torch::Tensor& target);
/// Applies corruption (callers decide whether they are in training mode).
torch::Tensor corrupt(Corruption kind, double level, const torch::Tensor& x);

/// Options of one dense autoencoder layer.
///
/// Example:
///   AutoencoderLayer layer(AutoencoderLayerOptions(784, 500).corruption(Corruption::kMasking).corruption_level(0.2));
struct AutoencoderLayerOptions {
  AutoencoderLayerOptions(std::int64_t input_dim, std::int64_t hidden_dim) : input_dim_(input_dim), hidden_dim_(hidden_dim) {}
  TORCH_ARG(std::int64_t, input_dim);
  TORCH_ARG(std::int64_t, hidden_dim);
  /// Activation of the code units.
  TORCH_ARG(Activation, activation) = Activation::kSigmoid;
  /// Activation of the reconstruction (sigmoid for inputs in [0, 1], linear for standardised ones).
  TORCH_ARG(Activation, output_activation) = Activation::kSigmoid;
  /// Decoder uses the transpose of the encoder weight (one tensor) instead of its own.
  TORCH_ARG(bool, tied) = false;
  TORCH_ARG(Corruption, corruption) = Corruption::kNone;
  TORCH_ARG(double, corruption_level) = 0.0;
  TORCH_ARG(Sparsity, sparsity) = Sparsity::kNone;
  /// Target mean activation rho for KL sparsity.
  TORCH_ARG(double, sparsity_target) = 0.05;
  /// Weight beta of the sparsity penalty.
  TORCH_ARG(double, sparsity_weight) = 0.0;
  /// Weight lambda of the contractive penalty (squared Frobenius norm of the encoder Jacobian).
  TORCH_ARG(double, contractive_weight) = 0.0;
};

/// One dense autoencoder layer: code = act(W x + b), reconstruction = out_act(W' code + c).
class AutoencoderLayerImpl : public torch::nn::Cloneable<AutoencoderLayerImpl> {
 public:
  explicit AutoencoderLayerImpl(const AutoencoderLayerOptions& options_);
  AutoencoderLayerImpl(std::int64_t input_dim, std::int64_t hidden_dim)
      : AutoencoderLayerImpl(AutoencoderLayerOptions(input_dim, hidden_dim)) {}

  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// Code of (uncorrupted) inputs.
  torch::Tensor encode(const torch::Tensor& x);
  /// Reconstruction of codes.
  torch::Tensor decode(const torch::Tensor& code);
  /// Reconstruction of x; corrupted first in training mode.
  torch::Tensor forward(const torch::Tensor& x);

  /// The parts of one batch's loss, so that diagnostics need no second forward pass.
  struct Loss {
    /// reconstruction + penalty, with its graph.
    torch::Tensor total;
    /// Reconstruction error of the clean input from the (corrupted) input.
    torch::Tensor reconstruction;
    /// The batch's codes.
    torch::Tensor code;
  };

  /// The loss of one batch: reconstruction of the clean input from the input (corrupted in
  /// training mode), plus the sparsity and contractive penalties.
  Loss loss(const torch::Tensor& x, ReconstructionLoss kind);
  /// Sparsity and contractive penalties of a batch, given its codes; undefined
  /// when the layer has none (no zero term in the graph).
  torch::Tensor penalty(const torch::Tensor& code);

  /// The decoder weight: the encoder's weight itself when tied.
  torch::Tensor decoder_weight() const;

  AutoencoderLayerOptions options;
  torch::Tensor encoder_weight, encoder_bias, decoder_weight_, decoder_bias;
};
TORCH_MODULE(AutoencoderLayer);

/// Options of a stack: layer k maps hidden_dims[k-1] (or input_dim) to hidden_dims[k].
struct StackedAutoencoderOptions {
  StackedAutoencoderOptions(std::int64_t input_dim, std::vector<std::int64_t> hidden_dims)
      : input_dim_(input_dim), hidden_dims_(std::move(hidden_dims)) {}
  TORCH_ARG(std::int64_t, input_dim);
  TORCH_ARG(std::vector<std::int64_t>, hidden_dims);
  TORCH_ARG(Activation, activation) = Activation::kSigmoid;
  /// Activation of the input reconstruction (inner layers reconstruct codes with `activation`).
  TORCH_ARG(Activation, output_activation) = Activation::kSigmoid;
  TORCH_ARG(bool, tied) = false;
  TORCH_ARG(Corruption, corruption) = Corruption::kNone;
  /// One corruption level per layer (e.g. 0.1 / 0.2 / 0.3), or one for all.
  TORCH_ARG(std::vector<double>, corruption_levels) = {};
  TORCH_ARG(Sparsity, sparsity) = Sparsity::kNone;
  TORCH_ARG(double, sparsity_target) = 0.05;
  TORCH_ARG(double, sparsity_weight) = 0.0;
  TORCH_ARG(double, contractive_weight) = 0.0;
};

}  // namespace encore::models
