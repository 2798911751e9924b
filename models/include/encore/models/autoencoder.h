#pragma once
/// Autoencoder layers and stacks as torch::nn modules: options struct, Impl, TORCH_MODULE holder.

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "encore/core/ops.h"
#include "encore/core/options.h"

namespace encore::models {

using core::Activation;
/// Noise on a layer's input while it trains (denoising autoencoders).
enum class Corruption {
  kNone,
  /// Sets a random fraction `level` of inputs to zero.
  kMasking,
  /// Adds Gaussian noise with standard deviation `level`.
  kGaussian,
  /// Sets a random fraction `level` of inputs to 0 or 1 with equal chance.
  kSaltAndPepper,
};
/// A penalty that keeps codes sparse.
enum class Sparsity {
  kNone,
  /// KL divergence of each unit's mean activation (sigmoid codes) to the target rho.
  kKl,
  /// L1 norm of the codes.
  kL1,
};
/// How reconstructions are compared with inputs: squared error, or binary cross-entropy for [0, 1] data.
enum class ReconstructionLoss { kMse, kBinaryCrossEntropy };

/// The names configs give the values of each enum ("sigmoid", "masking", "kl", "bce").
const core::Choices<Activation>& activation_choices();
/// The config names of Corruption values.
const core::Choices<Corruption>& corruption_choices();
/// The config names of Sparsity values.
const core::Choices<Sparsity>& sparsity_choices();
/// The config names of ReconstructionLoss values.
const core::Choices<ReconstructionLoss>& reconstruction_loss_choices();
/// The name of a value, for messages.
std::string activation_name(Activation a);
/// The config name of a Corruption.
std::string corruption_name(Corruption c);
/// The config name of a Sparsity.
std::string sparsity_name(Sparsity s);
/// The config name of a ReconstructionLoss.
std::string reconstruction_loss_name(ReconstructionLoss l);

/// Derivative of the activation at the pre-activation whose output is h (each activation's
/// derivative is a function of its output).
torch::Tensor activation_derivative(Activation a, const torch::Tensor& h);
/// Mean per-example reconstruction loss (summed over features for BCE, averaged for MSE).
torch::Tensor reconstruction_loss(ReconstructionLoss kind, const torch::Tensor& reconstruction, const torch::Tensor& target);
/// The BCE reconstruction loss of sigmoid(logits), computed from the logits.
torch::Tensor logistic_reconstruction_loss(const torch::Tensor& logits, const torch::Tensor& target);
/// Checks a corruption level: a fraction in [0, 1), or for Gaussian noise a deviation >= 0. Throws
/// core::OptionError naming `option`.
void check_corruption_level(const char* option, Corruption corruption, double level);
/// Applies corruption (callers decide whether they are in training mode).
torch::Tensor corrupt(Corruption kind, double level, const torch::Tensor& x);
/// Whether corrupt() with `kind` and `level` changes its input.
bool corrupts(Corruption kind, double level);

/// Options of one dense autoencoder layer.
///
/// Example:
///   AutoencoderLayer layer(AutoencoderLayerOptions(784, 500).corruption(Corruption::kMasking).corruption_level(0.2));
struct AutoencoderLayerOptions {
  /// A layer from `input_dim` inputs to `hidden_dim` code units.
  AutoencoderLayerOptions(std::int64_t input_dim, std::int64_t hidden_dim) : input_dim_(input_dim), hidden_dim_(hidden_dim) {}
  /// Inputs.
  TORCH_ARG(std::int64_t, input_dim);
  /// Code units.
  TORCH_ARG(std::int64_t, hidden_dim);
  /// Activation of the code units.
  TORCH_ARG(Activation, activation) = Activation::kSigmoid;
  /// Activation of the reconstruction (sigmoid for inputs in [0, 1], linear for standardised ones).
  TORCH_ARG(Activation, output_activation) = Activation::kSigmoid;
  /// Decoder uses the transpose of the encoder weight (one tensor) instead of its own.
  TORCH_ARG(bool, tied) = false;
  /// Noise on the input while training.
  TORCH_ARG(Corruption, corruption) = Corruption::kNone;
  /// Its level (fraction, or Gaussian deviation).
  TORCH_ARG(double, corruption_level) = 0.0;
  /// Penalty on the codes.
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
  /// A layer as `options` say; bad options are an OptionError.
  explicit AutoencoderLayerImpl(const AutoencoderLayerOptions& options_);
  /// A layer with default options.
  AutoencoderLayerImpl(std::int64_t input_dim, std::int64_t hidden_dim)
      : AutoencoderLayerImpl(AutoencoderLayerOptions(input_dim, hidden_dim)) {}

  /// Initialises the weights (Glorot uniform) and checks the options.
  void reset() override;
  /// Prints the layer's shape and settings.
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

  /// The loss of one batch: reconstruction of the clean input (a fixed target, no gradient flows
  /// through it) from the input (corrupted in training mode), plus the sparsity and contractive penalties.
  Loss loss(const torch::Tensor& x, ReconstructionLoss kind);
  /// Sparsity and contractive penalties of a batch, given its codes; undefined
  /// when the layer has none (no zero term in the graph).
  torch::Tensor penalty(const torch::Tensor& code);

  /// The decoder weight: the encoder's weight itself when tied.
  torch::Tensor decoder_weight() const;

  /// The options it was built with.
  AutoencoderLayerOptions options;
  /// Encoder weight W [hidden, input].
  torch::Tensor encoder_weight;
  /// Encoder bias b.
  torch::Tensor encoder_bias;
  /// Untied decoder weight W' [input, hidden]; undefined when tied (see decoder_weight()).
  torch::Tensor decoder_weight_;
  /// Decoder bias c.
  torch::Tensor decoder_bias;
};
TORCH_MODULE(AutoencoderLayer);

/// Options of a stack: layer k maps hidden_dims[k-1] (or input_dim) to hidden_dims[k]. The
/// config's `model` object for `"type": "stacked_autoencoder"` holds the fields below (all but
/// input_dim, which the data gives).
///
/// Example:
///   StackedAutoencoder stack(StackedAutoencoderOptions(784, {500, 250}).corruption(Corruption::kMasking).corruption_levels({0.2}));
struct StackedAutoencoderOptions {
  /// Options for a stack whose input width is set later (by the model registry, from the data).
  StackedAutoencoderOptions() = default;
  /// A stack over `input_dim` inputs with one layer per entry of `hidden_dims`.
  StackedAutoencoderOptions(std::int64_t input_dim, std::vector<std::int64_t> hidden_dims)
      : input_dim_(input_dim), hidden_dims_(std::move(hidden_dims)) {}
  /// Inputs (set from the data when built from a config).
  TORCH_ARG(std::int64_t, input_dim) = 0;
  /// Code width of each layer, from the input up.
  TORCH_ARG(std::vector<std::int64_t>, hidden_dims);
  /// Activation of every code.
  TORCH_ARG(Activation, activation) = Activation::kSigmoid;
  /// Activation of the input reconstruction (inner layers reconstruct codes with `activation`).
  TORCH_ARG(Activation, output_activation) = Activation::kSigmoid;
  /// Decoders use their encoder's transposed weight.
  TORCH_ARG(bool, tied) = false;
  /// Noise on each layer's input while it trains.
  TORCH_ARG(Corruption, corruption) = Corruption::kNone;
  /// One corruption level per layer (e.g. 0.1 / 0.2 / 0.3), or one for all.
  TORCH_ARG(std::vector<double>, corruption_levels) = {};
  /// Penalty on the codes.
  TORCH_ARG(Sparsity, sparsity) = Sparsity::kNone;
  /// Target mean activation of KL sparsity.
  TORCH_ARG(double, sparsity_target) = 0.05;
  /// Weight of the sparsity penalty.
  TORCH_ARG(double, sparsity_weight) = 0.0;
  /// Weight of the contractive penalty.
  TORCH_ARG(double, contractive_weight) = 0.0;

 public:  // TORCH_ARG leaves the access private
  /// The fields a config sets, with their rules (core/options.h).
  template <class Fields>
  void fields(Fields& f) {
    f.required("hidden_dims", hidden_dims_, "code width of each layer, from the input up", core::at_least(std::int64_t{1}));
    f("activation", activation_, "activation of every code", activation_choices());
    f("output_activation", output_activation_, "activation of the input's reconstruction", activation_choices());
    f("tied", tied_, "decoders use their encoder's transposed weight");
    f("corruption", corruption_, "noise applied to each layer's input while it trains", corruption_choices());
    f("corruption_levels", corruption_levels_, "one level per layer, or one for all (a fraction, or the Gaussian's deviation)");
    f("sparsity", sparsity_, "penalty on the codes' activity", sparsity_choices());
    f("sparsity_target", sparsity_target_, "target mean activation of KL sparsity",
      core::Rule<double>{[](const double& v) { return v > 0 && v < 1; }, "in (0, 1)"});
    f("sparsity_weight", sparsity_weight_, "weight of the sparsity penalty", core::at_least(0.0));
    f("contractive_weight", contractive_weight_, "weight of the contractive penalty (the encoder Jacobian's squared norm)",
      core::at_least(0.0));
  }
  /// Checks across fields: at least one layer, one corruption level per layer or one for all, in
  /// range for the corruption, KL sparsity only on sigmoid codes, and weights that fit in this
  /// machine's memory while training. Throws core::OptionError.
  void check() const;
};

}  // namespace encore::models
