#pragma once
/// Variational autoencoders (Kingma & Welling, 2014): a Gaussian encoder q(z|x) with a mean and a
/// log-variance per latent unit, samples drawn by reparameterisation, a decoder likelihood p(x|z)
/// (Bernoulli for [0, 1] pixels, unit-variance Gaussian otherwise), and the KL divergence to the
/// standard normal prior, weighted and warmed up. The dense model is here; the convolutional
/// autoencoder becomes variational with its `variational` option, through the same pieces.

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "encore/core/options.h"
#include "encore/models/autoencoder.h"
#include "encore/models/model.h"

namespace encore::models {

/// A linear map from features to the mean and the log-variance of a diagonal Gaussian over the
/// latent units. Modules: `mean`, `log_variance`.
class GaussianLatentImpl : public torch::nn::Cloneable<GaussianLatentImpl> {
 public:
  /// From `features` inputs to `latent_dim` units.
  GaussianLatentImpl(std::int64_t features, std::int64_t latent_dim);
  /// Builds the layers.
  void reset() override;
  /// The mean and the log-variance [B, latent_dim] of features [B, features].
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& features);

  /// The map to the mean.
  torch::nn::Linear mean = nullptr;
  /// The map to the log-variance.
  torch::nn::Linear log_variance = nullptr;

 private:
  std::int64_t features_, latent_dim_;
};
TORCH_MODULE(GaussianLatent);

/// What a variational model needs besides its encoder and decoder: the KL term's weight, reached
/// linearly over the first `kl_warmup_steps` training steps (from 0), and a step counter kept as
/// a buffer (saved in checkpoints, so a resumed run continues the warm-up where it was).
struct KlSchedule {
  /// Weight of the KL term once warmed up (1: the ELBO itself; other values: a beta-VAE).
  double weight = 1.0;
  /// Training steps over which the weight grows from 0; 0: no warm-up.
  std::int64_t warmup_steps = 0;
  /// The weight at training step `step` (0 first).
  double at(std::int64_t step) const;
  /// The KL weight of a batch: in training, the weight at the step `training_steps` (an int64
  /// scalar buffer) holds, which it then advances; in eval mode 1, the ELBO's.
  double next(torch::Tensor& training_steps, bool training) const;
};

/// z = mean + standard normal noise (core::gaussian_noise_like) * exp(log_variance / 2).
torch::Tensor reparameterise(const torch::Tensor& mean, const torch::Tensor& log_variance);
/// KL(q(z|x) || N(0, I)) summed over latent units, averaged over the batch.
torch::Tensor gaussian_kl(const torch::Tensor& mean, const torch::Tensor& log_variance);
/// -log p(x|z) summed over inputs, averaged over the batch, of a reconstruction (the decoder's
/// output after its activation): Bernoulli for kBinaryCrossEntropy, a unit-variance Gaussian
/// (half the squared error, without the constant) for kMse.
torch::Tensor likelihood_cost(ReconstructionLoss kind, const torch::Tensor& reconstruction, const torch::Tensor& target);

/// The end-to-end objective of a variational model on a batch: reconstruction (likelihood_cost of a
/// decoded sample) plus the KL term, weighted by `schedule` at `step` in training and by 1 (the
/// negative ELBO) in eval mode. `decode` maps latent samples to reconstructions.
EndToEndObjective variational_objective(const std::pair<torch::Tensor, torch::Tensor>& posterior, const torch::Tensor& x,
                                        ReconstructionLoss kind, const std::function<torch::Tensor(const torch::Tensor&)>& decode,
                                        double kl_weight);

/// Options of a dense variational autoencoder. The config's `model` object for
/// `"type": "variational_autoencoder"` holds the fields below (all but input_dim).
///
/// Example:
///   VariationalAutoencoder vae(VariationalAutoencoderOptions(784, {512}).latent_dim(20));
struct VariationalAutoencoderOptions {
  /// Options whose input width is set later (by the model registry, from the data).
  VariationalAutoencoderOptions() = default;
  /// Dense layers of `hidden_dims` over `input_dim` inputs, then the latent.
  VariationalAutoencoderOptions(std::int64_t input_dim, std::vector<std::int64_t> hidden_dims)
      : input_dim_(input_dim), hidden_dims_(std::move(hidden_dims)) {}
  /// Inputs (set from the data when built from a config).
  TORCH_ARG(std::int64_t, input_dim) = 0;
  /// Width of each encoder layer, from the input up (the decoder mirrors them).
  TORCH_ARG(std::vector<std::int64_t>, hidden_dims);
  /// Latent units.
  TORCH_ARG(std::int64_t, latent_dim) = 20;
  /// Activation of every hidden layer.
  TORCH_ARG(Activation, activation) = Activation::kRelu;
  /// Activation of the reconstruction (sigmoid for [0, 1] pixels, with pretrain.loss "bce").
  TORCH_ARG(Activation, output_activation) = Activation::kSigmoid;
  /// Weight of the KL term once warmed up.
  TORCH_ARG(double, kl_weight) = 1.0;
  /// Training steps over which the KL weight grows from 0.
  TORCH_ARG(std::int64_t, kl_warmup_steps) = 0;

 public:  // TORCH_ARG leaves the access private
  /// The fields a config sets, with their rules (core/options.h).
  template <class Fields>
  void fields(Fields& f) {
    f.required("hidden_dims", hidden_dims_, "width of each encoder layer, from the input up", core::at_least(std::int64_t{1}));
    f("latent_dim", latent_dim_, "latent units", core::at_least(std::int64_t{1}));
    f("activation", activation_, "activation of every hidden layer", activation_choices());
    f("output_activation", output_activation_, "activation of the reconstruction", activation_choices());
    f("kl_weight", kl_weight_, "weight of the KL term once warmed up (1: the ELBO)", core::at_least(0.0));
    f("kl_warmup_steps", kl_warmup_steps_, "training steps over which the KL weight grows from 0", core::at_least(std::int64_t{0}));
  }
  /// Throws core::OptionError for a combination the fields' rules cannot see (none yet).
  void check() const {}
};

/// A dense variational autoencoder. Modules: `encoder{k}`, the latent `code` (GaussianLatent),
/// `decoder{k}` from the latent back to the input (decoder0 first); buffer `training_steps`.
class VariationalAutoencoderImpl : public torch::nn::Cloneable<VariationalAutoencoderImpl>, public AutoencoderModel {
 public:
  /// A model as `options` say.
  explicit VariationalAutoencoderImpl(const VariationalAutoencoderOptions& options_);
  /// Builds the layers.
  void reset() override;
  /// Prints the widths.
  void pretty_print(std::ostream& stream) const override;

  torch::nn::Module& module() override { return *this; }
  /// The posterior mean: what fine-tuning and embeddings use.
  torch::Tensor encode(const torch::Tensor& x) override;
  /// The reconstruction of the posterior mean.
  torch::Tensor forward(const torch::Tensor& x) override;
  std::int64_t code_dim() const override { return options.latent_dim(); }
  std::vector<EncoderPart> encoder_parts() override;
  EndToEndObjective end_to_end_objective(const torch::Tensor& x, ReconstructionLoss loss) override;
  std::int64_t latent_dim() const override { return options.latent_dim(); }
  torch::Tensor decode_latent(const torch::Tensor& z) override;
  std::string torchscript() const override;

  /// The options it was built with.
  VariationalAutoencoderOptions options;

 private:
  torch::Tensor features(const torch::Tensor& x);
  std::vector<torch::nn::Linear> encoder_, decoder_;
  GaussianLatent code_ = nullptr;
  torch::Tensor training_steps_;
};
TORCH_MODULE(VariationalAutoencoder);

}  // namespace encore::models
