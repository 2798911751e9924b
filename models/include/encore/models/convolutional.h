#pragma once
/// The convolutional autoencoder: a stack of convolution blocks over images, an optional dense
/// code, and a decoder built to mirror the encoder back to the input's exact shape. Data rows are
/// flat (channels x height x width, channel-major, as IDX images and image folders give them); the
/// model views them as images and returns flat reconstructions, so it trains, fine-tunes, saves and
/// predicts through the same machinery as the dense stack.

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "encore/core/options.h"
#include "encore/models/autoencoder.h"
#include "encore/models/model.h"
#include "encore/models/variational.h"

namespace encore::models {

/// How the decoder grows feature maps back where an encoder block strided.
enum class ConvolutionalDecoder {
  /// Transposed convolutions with the encoder's kernel and stride.
  kTransposed,
  /// Nearest-neighbour upsampling to the encoder's size, then a convolution (no checkerboard artefacts).
  kUpsample,
};
/// What the code is when there is no dense code layer: the last block's feature maps flattened, or
/// each channel averaged over the image (one number per channel, whatever the image size).
enum class CodePooling { kFlatten, kGlobalAverage };

/// The config names of ConvolutionalDecoder values ("transposed", "upsample").
const core::Choices<ConvolutionalDecoder>& convolutional_decoder_choices();
/// The config names of CodePooling values ("flatten", "global_average").
const core::Choices<CodePooling>& code_pooling_choices();

/// Options of a convolutional autoencoder. The config's `model` object for
/// `"type": "convolutional_autoencoder"` holds the fields below (all but input_dim, which the data
/// gives). Block k maps channels[k-1] (the image's channels for k = 0) to channels[k] feature maps
/// with a kernel_sizes[k] convolution of strides[k] ("same" padding), optional batch
/// normalisation, the activation, and a max pooling of pooling[k] (1: none). Kernel sizes, strides
/// and pooling take one value per block or one for all.
///
/// Example:
///   ConvolutionalAutoencoder model(ConvolutionalAutoencoderOptions(784, {32, 64}).pooling({2}).code_dim(30));
struct ConvolutionalAutoencoderOptions {
  /// Options whose input width is set later (by the model registry, from the data).
  ConvolutionalAutoencoderOptions() = default;
  /// Blocks of `channels` feature maps over rows of `input_dim` numbers.
  ConvolutionalAutoencoderOptions(std::int64_t input_dim, std::vector<std::int64_t> channels)
      : input_dim_(input_dim), channels_(std::move(channels)) {}
  /// Numbers per row (set from the data when built from a config): image_channels x height x width.
  TORCH_ARG(std::int64_t, input_dim) = 0;
  /// The shape of one example as the data has it ([H, W] or [C, H, W]; set from the data when built
  /// from a config): where image_channels, height and width are 0, the images have this shape.
  TORCH_ARG(std::vector<std::int64_t>, example_shape);
  /// Channels of the images (1 grey, 3 RGB); 0: the data's example shape says (1 for flat rows).
  TORCH_ARG(std::int64_t, image_channels) = 0;
  /// Image height; 0 with width 0: the data's example shape, else square images, the side from
  /// input_dim / image_channels.
  TORCH_ARG(std::int64_t, height) = 0;
  /// Image width; 0 with height 0: square images.
  TORCH_ARG(std::int64_t, width) = 0;
  /// Feature maps of each block, from the input up.
  TORCH_ARG(std::vector<std::int64_t>, channels);
  /// Side of each block's square kernel (odd, so that padding keeps the image centred).
  TORCH_ARG(std::vector<std::int64_t>, kernel_sizes) = {3};
  /// Stride of each block's convolution.
  TORCH_ARG(std::vector<std::int64_t>, strides) = {1};
  /// Side of each block's max pooling window (and its stride); 1: no pooling.
  TORCH_ARG(std::vector<std::int64_t>, pooling) = {1};
  /// Batch normalisation after each convolution (encoder and decoder, not on the reconstruction).
  TORCH_ARG(bool, batch_norm) = false;
  /// Activation of every block (and of the decoder's inner blocks).
  TORCH_ARG(Activation, activation) = Activation::kRelu;
  /// Activation of the reconstruction (sigmoid for inputs in [0, 1], linear for standardised ones).
  TORCH_ARG(Activation, output_activation) = Activation::kSigmoid;
  /// Width of a dense code layer after the blocks; 0: none, the code is the blocks' output (code_pooling).
  TORCH_ARG(std::int64_t, code_dim) = 0;
  /// Activation of the dense code layer.
  TORCH_ARG(Activation, code_activation) = Activation::kLinear;
  /// The code without a dense code layer: the last feature maps flattened, or averaged per channel.
  TORCH_ARG(CodePooling, code_pooling) = CodePooling::kFlatten;
  /// How the decoder undoes strides.
  TORCH_ARG(ConvolutionalDecoder, decoder) = ConvolutionalDecoder::kTransposed;
  /// Noise on the input while training end to end (denoising).
  TORCH_ARG(Corruption, corruption) = Corruption::kNone;
  /// Its level (fraction, or Gaussian deviation).
  TORCH_ARG(double, corruption_level) = 0.0;
  /// A variational autoencoder: the dense code layer gives the mean and log-variance of code_dim
  /// Gaussian latent units (models/variational.h).
  TORCH_ARG(bool, variational) = false;
  /// Weight of the KL term once warmed up (variational).
  TORCH_ARG(double, kl_weight) = 1.0;
  /// Training steps over which the KL weight grows from 0 (variational).
  TORCH_ARG(std::int64_t, kl_warmup_steps) = 0;

 public:  // TORCH_ARG leaves the access private
  /// The fields a config sets, with their rules (core/options.h).
  template <class Fields>
  void fields(Fields& f) {
    f.required("channels", channels_, "feature maps of each block, from the input up", core::at_least(std::int64_t{1}));
    f("image_channels", image_channels_, "channels of the images (1 grey, 3 RGB; 0: as the data's images)",
      core::at_least(std::int64_t{0}));
    f("height", height_, "image height (0 with width 0: as the data's images, else square)", core::at_least(std::int64_t{0}));
    f("width", width_, "image width (0 with height 0: as the data's images, else square)", core::at_least(std::int64_t{0}));
    f("kernel_sizes", kernel_sizes_, "side of each block's square kernel, odd (one per block, or one for all)",
      core::at_least(std::int64_t{1}));
    f("strides", strides_, "stride of each block's convolution (one per block, or one for all)", core::at_least(std::int64_t{1}));
    f("pooling", pooling_, "side of each block's max pooling window, 1 for none (one per block, or one for all)",
      core::at_least(std::int64_t{1}));
    f("batch_norm", batch_norm_, "batch normalisation after each convolution");
    f("activation", activation_, "activation of every block", activation_choices());
    f("output_activation", output_activation_, "activation of the reconstruction", activation_choices());
    f("code_dim", code_dim_, "width of a dense code layer after the blocks (0: none)", core::at_least(std::int64_t{0}));
    f("code_activation", code_activation_, "activation of the dense code layer", activation_choices());
    f("code_pooling", code_pooling_, "the code without a dense code layer: the feature maps flattened, or averaged per channel",
      code_pooling_choices());
    f("decoder", decoder_, "how the decoder undoes strides: transposed convolutions, or upsampling and a convolution",
      convolutional_decoder_choices());
    f("corruption", corruption_, "noise on the input while training end to end", corruption_choices());
    f("corruption_level", corruption_level_, "its level (a fraction, or the Gaussian's deviation)", core::at_least(0.0));
    f("variational", variational_, "a variational autoencoder: the code layer gives a Gaussian over code_dim latent units");
    f("kl_weight", kl_weight_, "weight of the KL term once warmed up (variational; 1: the ELBO)", core::at_least(0.0));
    f("kl_warmup_steps", kl_warmup_steps_, "training steps over which the KL weight grows from 0 (variational)",
      core::at_least(std::int64_t{0}));
  }
  /// Checks across fields: one setting per block or one for all, odd kernels, a code_dim for a
  /// variational model, and a height and
  /// width that hold input_dim and leave every block at least one pixel. Throws core::OptionError.
  void check() const;
  /// [image_channels, height, width] of the input images (the square side worked out where not given).
  std::vector<std::int64_t> image_shape() const;
};

/// One convolution (or transposed convolution) with "same" padding and an optional batch
/// normalisation after it: a block of the encoder, or of the decoder that mirrors it.
class ConvolutionBlockImpl : public torch::nn::Cloneable<ConvolutionBlockImpl> {
 public:
  /// `in` to `out` maps through a `kernel` x `kernel` convolution of `stride`; `transposed` grows
  /// maps by the stride instead of shrinking them.
  ConvolutionBlockImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride, bool transposed, bool batch_norm);
  /// Builds the layers.
  void reset() override;
  /// The convolution (normalised) of x [B, in, H, W]; a transposed block's output is `size` [h, w]
  /// (the encoder's map size it mirrors).
  torch::Tensor forward(const torch::Tensor& x, const std::vector<std::int64_t>& size = {});

  /// The convolution; null in a transposed block.
  torch::nn::Conv2d conv = nullptr;
  /// The transposed convolution; null in a plain block.
  torch::nn::ConvTranspose2d transposed = nullptr;
  /// The batch normalisation; null without it.
  torch::nn::BatchNorm2d norm = nullptr;

 private:
  std::int64_t in_, out_, kernel_, stride_;
  bool transposed_, batch_norm_;
};
TORCH_MODULE(ConvolutionBlock);

/// A convolutional autoencoder as an AutoencoderModel. Modules: per block k `encoder{k}`, `code` and
/// `uncode` for the dense code layer (`code` a GaussianLatent in a variational model, which also
/// has the buffer `training_steps`), and per block `decoder{k}`, which maps block k's output back
/// to block k's input (`decoder0` makes the reconstruction).
class ConvolutionalAutoencoderImpl : public torch::nn::Cloneable<ConvolutionalAutoencoderImpl>, public AutoencoderModel {
 public:
  /// A model as `options` say; bad options are an OptionError.
  explicit ConvolutionalAutoencoderImpl(const ConvolutionalAutoencoderOptions& options_);
  /// Builds the blocks (checks the options).
  void reset() override;
  /// Prints the image shape and the blocks.
  void pretty_print(std::ostream& stream) const override;

  torch::nn::Module& module() override { return *this; }
  /// The code of flat rows [B, D]: the dense code, or the blocks' output flattened or pooled.
  torch::Tensor encode(const torch::Tensor& x) override;
  /// The flat reconstruction [B, D]; the input is corrupted first in training mode.
  torch::Tensor forward(const torch::Tensor& x) override;
  std::int64_t code_dim() const override;
  std::vector<EncoderPart> encoder_parts() override;
  /// The blocks, then the dense code layer where code_dim > 0.
  int greedy_blocks() const override;
  /// Block k's encoder and decoder{k}; the code layer's `code` and `uncode`.
  std::vector<torch::Tensor> greedy_block_parameters(int block) override;
  /// Block k reconstructs its input maps (the images for k = 0, scored with `loss`; else the frozen
  /// blocks' output, MSE) from them corrupted with the model's corruption; the code layer
  /// reconstructs the flattened top maps (MSE), a variational one with its KL term.
  EndToEndObjective greedy_block_objective(const torch::Tensor& x, int block, ReconstructionLoss loss) override;
  /// One level per greedy block.
  int denoising_levels() const override { return greedy_blocks(); }
  /// sum_k weights[k] * greedy block k's objective, its input the maps of the blocks below as they
  /// are now, which carry gradients to those blocks (the targets are fixed: no gradient).
  torch::Tensor denoising_cost(const torch::Tensor& x, const std::vector<double>& weights, ReconstructionLoss loss) override;
  torch::Tensor input_filters(const std::vector<std::int64_t>& example_shape) override;
  /// code_of and reconstruction_of, with helpers maps_of and code_of_maps; code_of ignores depth.
  std::string torchscript() const override;
  /// The variational objective where the model is variational, else the reconstruction loss.
  EndToEndObjective end_to_end_objective(const torch::Tensor& x, ReconstructionLoss loss) override;
  std::int64_t latent_dim() const override { return options.variational() ? options.code_dim() : 0; }
  /// The reconstruction of codes [N, code_dim] (of latent samples, for a variational model).
  torch::Tensor decode_latent(const torch::Tensor& z) override;
  /// With batch normalisation and a corruption, the encoder blocks' statistics from clean rows
  /// (the decoder's stay as trained: its inputs come from the encoder in both cases).
  void reestimate_encoder_statistics(const CleanBatches& next_batch) override;

  /// The last block's feature maps [B, C, h, w] of flat rows.
  torch::Tensor feature_maps(const torch::Tensor& x);

  /// The options it was built with.
  ConvolutionalAutoencoderOptions options;

 private:
  /// Map sizes [height, width] of a block: its input, after its convolution, after its pooling.
  struct Sizes {
    std::vector<std::int64_t> input, convolved, pooled;
  };
  /// Flat rows [B, D] viewed as images [B, C, H, W].
  torch::Tensor images_of(const torch::Tensor& x) const;
  /// Block k's output maps of its input maps.
  torch::Tensor encode_block(std::size_t k, const torch::Tensor& maps);
  /// decoder{k}'s reconstruction of block k's input maps from its output maps.
  torch::Tensor decode_block(std::size_t k, torch::Tensor maps);
  /// The code of the last block's maps.
  torch::Tensor code_of_maps(const torch::Tensor& maps);
  /// The reconstruction [B, C, H, W] of the last block's maps.
  torch::Tensor decode_maps(torch::Tensor h);
  /// The dense code layer's reconstruction of the flattened top maps from codes [B, code_dim].
  torch::Tensor uncode(const torch::Tensor& z);
  /// Greedy block k's objective on its input maps (block k - 1's output; the images for k = 0):
  /// their reconstruction from them corrupted, against them without gradient.
  EndToEndObjective block_objective(std::size_t k, const torch::Tensor& maps, ReconstructionLoss loss);

  std::vector<ConvolutionBlock> encoder_, decoder_;
  std::vector<Sizes> sizes_;
  torch::nn::Linear code_ = nullptr, uncode_ = nullptr;
  GaussianLatent latent_ = nullptr;
  torch::Tensor training_steps_;
  std::vector<std::int64_t> top_shape_;
};
TORCH_MODULE(ConvolutionalAutoencoder);

}  // namespace encore::models
