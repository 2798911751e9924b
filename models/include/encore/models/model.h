#pragma once
/// What pretraining, the registry and fine-tuning need of an autoencoder. StackedAutoencoder
/// implements it; a user's own torch::nn module implements it to reuse the same machinery.

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "encore/models/autoencoder.h"

namespace encore::models {

/// A part of an encoder that encodes in one piece (a convolution block, a dense code layer), which
/// fine-tuning freezes and unfreezes by name as "encoder." followed by the name.
struct EncoderPart {
  /// Its name, unique in the model ("block0", "code").
  std::string name;
  /// Its parameters.
  std::vector<torch::Tensor> parameters;
  /// Its module, put in eval mode while it is frozen (batch normalisation).
  std::shared_ptr<torch::nn::Module> module;
};

/// The objective of end-to-end pretraining on a batch.
struct EndToEndObjective {
  /// What is minimised, with its graph.
  torch::Tensor total;
  /// Its named parts, reported as metrics ("reconstruction", "kl").
  std::vector<std::pair<std::string, torch::Tensor>> parts;
};

/// sum_k weights[k] * cost(k, input_k) over the levels of a model, input_0 = x and input_{k+1} =
/// next(k, input_k): the semi-supervised denoising costs of layers or blocks, each computed on the
/// output of those below. Levels above the last one weighted above 0 are never computed, and levels
/// weighted 0 add no term; not every weight may be 0.
torch::Tensor weighted_level_costs(const std::vector<double>& weights, const torch::Tensor& x,
                                   const std::function<torch::Tensor(std::size_t, const torch::Tensor&)>& cost,
                                   const std::function<torch::Tensor(std::size_t, const torch::Tensor&)>& next);

/// An autoencoder usable by encore. Implement it beside torch::nn::Module (or Cloneable):
///
///   class MyAutoencoderImpl : public torch::nn::Cloneable<MyAutoencoderImpl>, public AutoencoderModel {
///     torch::nn::Module& module() override { return *this; }
///     ...
///   };
class AutoencoderModel {
 public:
  virtual ~AutoencoderModel() = default;
  /// The module itself: parameters, train/eval mode, save and load.
  virtual torch::nn::Module& module() = 0;
  /// The full-depth code of clean (uncorrupted) inputs [B, D] -> [B, code_dim()].
  virtual torch::Tensor encode(const torch::Tensor& x) = 0;
  /// The reconstruction of x; corrupted first in training mode.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  /// Width of the code.
  virtual std::int64_t code_dim() const = 0;
  /// Layers that greedy pretraining trains one at a time, bottom first; layer k must accept the
  /// codes of layer k-1. Empty for models that only train end to end.
  virtual std::vector<AutoencoderLayer> greedy_layers() { return {}; }
  /// Units that greedy pretraining trains one at a time, bottom first, where they are not dense
  /// greedy_layers() (a convolutional model's blocks, then its dense code layer); 0, the default,
  /// for models without. Each learns to reconstruct its own input, the output of the frozen units
  /// below, which are run on every batch (convolutional maps are too large to keep for a dataset).
  virtual int greedy_blocks() const { return 0; }
  /// The parameters greedy block `block` trains.
  virtual std::vector<torch::Tensor> greedy_block_parameters(int block) {
    (void)block;
    throw std::logic_error("greedy_block_parameters: this model has no greedy blocks (greedy_blocks() is 0)");
  }
  /// Greedy block `block`'s objective on a batch x [B, D] of model inputs, `loss` scoring the
  /// reconstruction of the model's own inputs; gradients reach only its greedy_block_parameters().
  virtual EndToEndObjective greedy_block_objective(const torch::Tensor& x, int block, ReconstructionLoss loss) {
    (void)x;
    (void)block;
    (void)loss;
    throw std::logic_error("greedy_block_objective: this model has no greedy blocks (greedy_blocks() is 0)");
  }
  /// Levels whose denoising the model scores itself in semi-supervised fine-tuning
  /// (denoising_cost): a ladder network's input and layers, a convolutional model's greedy blocks;
  /// 0, the default, for models whose greedy_layers() are scored instead
  /// (models::layerwise_denoising_cost) or that have neither.
  virtual int denoising_levels() const { return 0; }
  /// The model's own unsupervised cost of a batch x [B, D], with one weight per level
  /// (denoising_levels() of them, not all 0), `loss` scoring the reconstruction of x itself where
  /// the model reconstructs it; carries gradients to the parameters it trains.
  virtual torch::Tensor denoising_cost(const torch::Tensor& x, const std::vector<double>& weights, ReconstructionLoss loss) {
    (void)x;
    (void)weights;
    (void)loss;
    throw std::logic_error("denoising_cost: this model scores no denoising of its own (denoising_levels() is 0)");
  }
  /// Whether unsupervised pretraining fits the model; false for one that learns from rows without
  /// labels only beside the labelled cost (a ladder network: reconstructing the input alone would
  /// teach its lateral connection to copy it and leave the layers above untrained).
  virtual bool pretrains() const { return true; }
  /// The parts of an encoder that encodes in one piece, from the input up, for freezing by name;
  /// empty, the default, where the encoder is one block (or the model has greedy layers).
  virtual std::vector<EncoderPart> encoder_parts() { return {}; }
  /// The first layer's filters as images [units, channels, height, width], for examples of
  /// `example_shape`; undefined, the default, where they are not images of their own.
  virtual torch::Tensor input_filters(const std::vector<std::int64_t>& example_shape) {
    (void)example_shape;
    return {};
  }
  /// The end-to-end pretraining objective of a batch x [B, D], scored with `loss`: by default the
  /// reconstruction loss of forward(x) (corrupted in training mode) against x; a variational
  /// model adds its KL term.
  virtual EndToEndObjective end_to_end_objective(const torch::Tensor& x, ReconstructionLoss loss);
  /// Latent units a generative (variational) model draws from its standard normal prior; 0, the
  /// default, for models that are not generative.
  virtual std::int64_t latent_dim() const { return 0; }
  /// The decoder's output for latent vectors z [N, latent_dim()]: model inputs [N, D].
  virtual torch::Tensor decode_latent(const torch::Tensor& z) {
    (void)z;
    throw std::logic_error("decode_latent: this model has no latent prior (latent_dim() is 0)");
  }
  /// Gives the next batch of clean rows [B, D] of a data set at each call, an undefined tensor
  /// after the last.
  using CleanBatches = std::function<torch::Tensor()>;
  /// Where training corrupts what batch normalisation in the encoder sees, replaces its running
  /// statistics with averages over the batches of clean rows that `next_batch` gives: fine-tuning,
  /// embedding, reconstruction and evaluation feed the encoder clean rows, whose statistics
  /// differ (masking a fraction p of the inputs scales their mean by 1 - p).
  /// Pretraining calls it when a stage ends. The default, for models whose encoder has no batch
  /// normalisation or is trained on clean rows, does nothing.
  virtual void reestimate_encoder_statistics(const CleanBatches& next_batch) { (void)next_batch; }
  /// TorchScript source of the methods that pretrained.pt and model.pt offer outside encore,
  /// compiled on a TorchScript copy of module() (same parameter, buffer and child names, so `self.`
  /// reaches them as in C++): `code_of(self, x: Tensor, depth: int) -> Tensor`, the code of scaled
  /// inputs [B, D] after the first `depth` greedy layers (models without them ignore depth), and
  /// `reconstruction_of(self, x: Tensor) -> Tensor`, the reconstruction of scaled inputs in eval
  /// mode. Empty, the default: the files hold the weights without those methods.
  virtual std::string torchscript() const { return {}; }
};

/// Layers held by stable names (layer0, layer1, ...) so parameter names survive save and load.
class StackedAutoencoderImpl : public torch::nn::Cloneable<StackedAutoencoderImpl>, public AutoencoderModel {
 public:
  /// A stack as `options` say; bad options are an OptionError.
  explicit StackedAutoencoderImpl(const StackedAutoencoderOptions& options_);
  /// Builds the layers (checks the options).
  void reset() override;
  /// Prints the layer widths.
  void pretty_print(std::ostream& stream) const override;

  torch::nn::Module& module() override { return *this; }
  /// Code after all layers. Inputs are not corrupted.
  torch::Tensor encode(const torch::Tensor& x) override { return encode(x, depth()); }
  /// Code after the first `depth` layers.
  torch::Tensor encode(const torch::Tensor& x, int depth);
  /// Reconstruction of the codes of layer `depth - 1` back to the input.
  torch::Tensor decode(const torch::Tensor& code, int depth);
  /// End-to-end reconstruction; the input is corrupted in training mode with the first layer's level.
  torch::Tensor forward(const torch::Tensor& x) override;
  std::int64_t code_dim() const override { return options.hidden_dims().back(); }
  std::vector<AutoencoderLayer> greedy_layers() override { return layers_; }
  /// The first layer's input weights as one grey image per unit, where examples are [H, W] images.
  torch::Tensor input_filters(const std::vector<std::int64_t>& example_shape) override;
  std::string torchscript() const override;

  /// Layers in the stack.
  int depth() const { return static_cast<int>(layers_.size()); }
  /// Layer k (0 at the input).
  AutoencoderLayer& layer(int k) { return layers_.at(static_cast<std::size_t>(k)); }

  /// The options it was built with.
  StackedAutoencoderOptions options;

 private:
  std::vector<AutoencoderLayer> layers_;
};
TORCH_MODULE(StackedAutoencoder);

}  // namespace encore::models
