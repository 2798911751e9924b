#include "encore/models/convolutional.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "encore/core/eval_mode.h"
#include "encore/core/ops.h"

namespace encore::models {

namespace {

// A per-block setting given once stands for every block.
std::int64_t per_block(const std::vector<std::int64_t>& values, std::size_t block) { return values[values.size() == 1 ? 0 : block]; }

// "Same" padding: with odd kernels, a stride-1 convolution keeps the map's size.
std::int64_t same_padding(std::int64_t kernel) { return kernel / 2; }

torch::Tensor resize_nearest(const torch::Tensor& maps, const std::vector<std::int64_t>& size) {
  if (maps.size(2) == size[0] && maps.size(3) == size[1]) return maps;
  return torch::nn::functional::interpolate(maps, torch::nn::functional::InterpolateFuncOptions().size(size).mode(torch::kNearest));
}

}  // namespace

const core::Choices<ConvolutionalDecoder>& convolutional_decoder_choices() {
  static const core::Choices<ConvolutionalDecoder> choices{{"transposed", ConvolutionalDecoder::kTransposed},
                                                           {"upsample", ConvolutionalDecoder::kUpsample}};
  return choices;
}

const core::Choices<CodePooling>& code_pooling_choices() {
  static const core::Choices<CodePooling> choices{{"flatten", CodePooling::kFlatten}, {"global_average", CodePooling::kGlobalAverage}};
  return choices;
}

std::vector<std::int64_t> ConvolutionalAutoencoderOptions::image_shape() const {
  const auto& data = example_shape_;
  const bool data_has_channels = data.size() == 3;
  const auto channels = image_channels_ > 0 ? image_channels_ : data_has_channels ? data[0] : 1;
  if (height_ > 0 || width_ > 0) return {channels, height_, width_};
  // Images of the data's shape, unless the options say otherwise.
  if ((data.size() == 2 && channels == 1) || (data_has_channels && data[0] == channels))
    return {channels, data[data.size() - 2], data.back()};
  const auto side = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(input_dim_ / channels))));
  return {channels, side, side};
}

void ConvolutionalAutoencoderOptions::check() const {
  const auto blocks = channels_.size();
  if (blocks == 0) throw core::OptionError("channels", "must list at least one block");
  const std::pair<const char*, const std::vector<std::int64_t>*> per_block_settings[] = {
      {"kernel_sizes", &kernel_sizes_}, {"strides", &strides_}, {"pooling", &pooling_}};
  for (const auto& [name, values] : per_block_settings) {
    if (values->empty() || (values->size() > 1 && values->size() != blocks)) {
      throw core::OptionError(name, fmt::format("needs one value per block ({}) or one for all, got {}", blocks, values->size()));
    }
  }
  for (const auto kernel : kernel_sizes_) {
    if (kernel % 2 == 0) throw core::OptionError("kernel_sizes", fmt::format("must be odd (centred \"same\" padding), got {}", kernel));
  }
  check_corruption_level("corruption_level", corruption_, corruption_level_);
  if (variational_ && code_dim_ == 0) throw core::OptionError("variational", "needs code_dim > 0: the number of latent units");
  if ((height_ > 0) != (width_ > 0)) throw core::OptionError(height_ > 0 ? "width" : "height", "give both height and width, or neither");
  // Options read from a config have no input width yet: the image checks wait for the data.
  if (input_dim_ == 0) return;
  const auto shape = image_shape();
  if (shape[0] * shape[1] * shape[2] != input_dim_) {
    const auto what = height_ > 0
                          ? fmt::format("{} x {} x {} images have {} numbers", shape[0], shape[1], shape[2], shape[0] * shape[1] * shape[2])
                          : fmt::format("{} numbers per row are not {} channel(s) of a square image", input_dim_, shape[0]);
    throw core::OptionError(
        height_ > 0 ? "height" : "image_channels",
        fmt::format("{}, but the data's rows have {}; set image_channels, height and width to the images' shape", what, input_dim_));
  }
  auto h = shape[1], w = shape[2];
  for (std::size_t k = 0; k < blocks; ++k) {
    const auto stride = per_block(strides_, k), pool = per_block(pooling_, k);
    h = ((h - 1) / stride + 1) / pool;
    w = ((w - 1) / stride + 1) / pool;
    if (h < 1 || w < 1) {
      throw core::OptionError("pooling", fmt::format("block {} shrinks the {} x {} images to nothing; use fewer blocks, smaller strides or "
                                                     "less pooling",
                                                     k, shape[1], shape[2]));
    }
  }
}

ConvolutionBlockImpl::ConvolutionBlockImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride, bool transposed,
                                           bool batch_norm)
    : in_(in), out_(out), kernel_(kernel), stride_(stride), transposed_(transposed), batch_norm_(batch_norm) {
  reset();
}

void ConvolutionBlockImpl::reset() {
  if (transposed_) {
    transposed = register_module(
        "transposed",
        torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in_, out_, kernel_).stride(stride_).padding(same_padding(kernel_))));
  } else {
    conv = register_module("conv",
                           torch::nn::Conv2d(torch::nn::Conv2dOptions(in_, out_, kernel_).stride(stride_).padding(same_padding(kernel_))));
  }
  // Channels-last kernels: LibTorch's CPU convolutions (oneDNN) then run on channels-last maps,
  // where NCHW ones are reordered to its layout and back on every call, and their outputs stay
  // channels-last for the next block. Strides only: every value keeps its logical position. A
  // copy, not contiguous(): a kernel of one input channel is both layouts at once, and would stay
  // NCHW-strided, which LibTorch reads as NCHW.
  auto& weight = transposed_ ? transposed->weight : conv->weight;
  weight.set_data(torch::empty_like(weight, weight.options(), torch::MemoryFormat::ChannelsLast).copy_(weight));
  if (batch_norm_) norm = register_module("norm", torch::nn::BatchNorm2d(out_));
}

torch::Tensor ConvolutionBlockImpl::forward(const torch::Tensor& x, const std::vector<std::int64_t>& size) {
  // The output size picks the transposed convolution's output padding: a strided encoder map has
  // ceil(H / stride) rows, which several input heights share.
  auto h = transposed ? transposed->forward(x, at::IntArrayRef(size)) : conv->forward(x);
  return norm ? norm->forward(h) : h;
}

ConvolutionalAutoencoderImpl::ConvolutionalAutoencoderImpl(const ConvolutionalAutoencoderOptions& options_) : options(options_) { reset(); }

void ConvolutionalAutoencoderImpl::reset() {
  core::check_options(options);
  encoder_.clear();
  decoder_.clear();
  sizes_.clear();
  const auto shape = options.image_shape();
  const auto& channels = options.channels();
  const bool transposed = options.decoder() == ConvolutionalDecoder::kTransposed;
  std::vector<std::int64_t> size{shape[1], shape[2]};
  std::int64_t in = shape[0];
  for (std::size_t k = 0; k < channels.size(); ++k) {
    const auto kernel = per_block(options.kernel_sizes(), k), stride = per_block(options.strides(), k),
               pool = per_block(options.pooling(), k);
    encoder_.push_back(register_module(fmt::format("encoder{}", k),
                                       ConvolutionBlock(in, channels[k], kernel, stride, /*transposed=*/false, options.batch_norm())));
    Sizes sizes{size, {(size[0] - 1) / stride + 1, (size[1] - 1) / stride + 1}, {}};
    sizes.pooled = {sizes.convolved[0] / pool, sizes.convolved[1] / pool};
    size = sizes.pooled;
    sizes_.push_back(sizes);
    in = channels[k];
  }
  top_shape_ = {channels.back(), size[0], size[1]};
  const auto flat = top_shape_[0] * top_shape_[1] * top_shape_[2];
  code_ = nullptr;
  latent_ = nullptr;
  uncode_ = nullptr;
  if (options.variational()) {
    latent_ = register_module("code", GaussianLatent(flat, options.code_dim()));
    training_steps_ = register_buffer("training_steps", torch::zeros({}, torch::kInt64));
  } else if (options.code_dim() > 0) {
    code_ = register_module("code", torch::nn::Linear(flat, options.code_dim()));
  }
  if (options.code_dim() > 0) uncode_ = register_module("uncode", torch::nn::Linear(options.code_dim(), flat));
  // Registered after the encoder, bottom first, so that parameter order follows the data's path.
  for (std::size_t k = 0; k < channels.size(); ++k) {
    const auto kernel = per_block(options.kernel_sizes(), k), stride = per_block(options.strides(), k);
    const auto out = k == 0 ? shape[0] : channels[k - 1];
    // A block that did not stride is mirrored by a plain convolution: with "same" padding, a
    // transposed convolution of stride 1 is one (its kernel flipped), and LibTorch's CPU
    // convolution is the faster of the two. The reconstruction itself is not normalised: it must
    // reach the data's own values.
    const bool grows = transposed && stride > 1;
    decoder_.push_back(register_module(
        fmt::format("decoder{}", k), ConvolutionBlock(channels[k], out, kernel, grows ? stride : 1, grows, options.batch_norm() && k > 0)));
  }
}

void ConvolutionalAutoencoderImpl::pretty_print(std::ostream& stream) const {
  const auto shape = options.image_shape();
  stream << "encore::models::ConvolutionalAutoencoder(" << shape[0] << "x" << shape[1] << "x" << shape[2];
  for (std::size_t k = 0; k < options.channels().size(); ++k) {
    stream << " -> " << options.channels()[k] << "@" << sizes_[k].pooled[0] << "x" << sizes_[k].pooled[1];
  }
  if (options.code_dim() > 0) stream << " -> " << options.code_dim();
  stream << ")";
}

torch::Tensor ConvolutionalAutoencoderImpl::images_of(const torch::Tensor& x) const {
  const auto shape = options.image_shape();
  return x.view({x.size(0), shape[0], shape[1], shape[2]});
}

torch::Tensor ConvolutionalAutoencoderImpl::encode_block(std::size_t k, const torch::Tensor& maps) {
  auto h = core::activate(options.activation(), encoder_[k]->forward(maps));
  const auto pool = per_block(options.pooling(), k);
  return pool > 1 ? torch::max_pool2d(h, {pool, pool}) : h;
}

torch::Tensor ConvolutionalAutoencoderImpl::decode_block(std::size_t k, torch::Tensor maps) {
  const auto& sizes = sizes_[k];
  maps = resize_nearest(maps, sizes.convolved);
  if (options.decoder() == ConvolutionalDecoder::kUpsample) maps = resize_nearest(maps, sizes.input);
  return core::activate(k == 0 ? options.output_activation() : options.activation(), decoder_[k]->forward(maps, sizes.input));
}

torch::Tensor ConvolutionalAutoencoderImpl::feature_maps(const torch::Tensor& x) {
  auto h = images_of(x);
  for (std::size_t k = 0; k < encoder_.size(); ++k) h = encode_block(k, h);
  return h;
}

torch::Tensor ConvolutionalAutoencoderImpl::code_of_maps(const torch::Tensor& maps) {
  if (latent_) return latent_->forward(maps.flatten(1)).first;
  if (code_) return core::activate(options.code_activation(), code_->forward(maps.flatten(1)));
  return options.code_pooling() == CodePooling::kFlatten ? maps.flatten(1) : maps.mean({2, 3});
}

torch::Tensor ConvolutionalAutoencoderImpl::encode(const torch::Tensor& x) { return code_of_maps(feature_maps(x)); }

torch::Tensor ConvolutionalAutoencoderImpl::decode_maps(torch::Tensor h) {
  for (auto k = decoder_.size(); k-- > 0;) h = decode_block(k, h);
  return h;
}

torch::Tensor ConvolutionalAutoencoderImpl::uncode(const torch::Tensor& z) {
  return core::activate(options.activation(), uncode_->forward(z));
}

torch::Tensor ConvolutionalAutoencoderImpl::decode_latent(const torch::Tensor& z) {
  TORCH_CHECK(uncode_, "decode_latent: this convolutional autoencoder has no dense code (code_dim 0)");
  return decode_maps(uncode(z).view({z.size(0), top_shape_[0], top_shape_[1], top_shape_[2]})).flatten(1);
}

torch::Tensor ConvolutionalAutoencoderImpl::forward(const torch::Tensor& x) {
  const auto input = is_training() ? corrupt(options.corruption(), options.corruption_level(), x) : x;
  const auto maps = feature_maps(input);
  // Without a dense code layer the maps are the bottleneck, whatever code_pooling gives the head.
  return uncode_ ? decode_latent(code_of_maps(maps)) : decode_maps(maps).flatten(1);
}

EndToEndObjective ConvolutionalAutoencoderImpl::end_to_end_objective(const torch::Tensor& x, ReconstructionLoss loss) {
  if (!latent_) return AutoencoderModel::end_to_end_objective(x, loss);
  const double kl_weight = KlSchedule{options.kl_weight(), options.kl_warmup_steps()}.next(training_steps_, is_training());
  const auto input = is_training() ? corrupt(options.corruption(), options.corruption_level(), x) : x;
  return variational_objective(
      latent_->forward(feature_maps(input).flatten(1)), x, loss, [this](const torch::Tensor& z) { return decode_latent(z); }, kl_weight);
}

void ConvolutionalAutoencoderImpl::reestimate_encoder_statistics(const CleanBatches& next_batch) {
  if (!options.batch_norm() || !corrupts(options.corruption(), options.corruption_level())) return;
  // Without a momentum LibTorch's batch normalisation keeps the plain average of the statistics
  // of every batch it normalises in training mode.
  std::vector<std::pair<torch::nn::BatchNorm2dImpl*, c10::optional<double>>> norms;
  for (auto& block : encoder_) {
    if (!block->norm) continue;
    norms.emplace_back(block->norm.get(), block->norm->options.momentum());
    block->norm->reset_running_stats();
    block->norm->options.momentum(c10::nullopt);
  }
  const bool was_training = is_training();
  torch::NoGradGuard no_grad;
  train();
  for (auto rows = next_batch(); rows.defined(); rows = next_batch()) feature_maps(rows);
  train(was_training);
  for (auto& [norm, momentum] : norms) norm->options.momentum(momentum);
}

int ConvolutionalAutoencoderImpl::greedy_blocks() const { return static_cast<int>(encoder_.size()) + (options.code_dim() > 0 ? 1 : 0); }

std::vector<torch::Tensor> ConvolutionalAutoencoderImpl::greedy_block_parameters(int block) {
  TORCH_CHECK(block >= 0 && block < greedy_blocks(), "greedy block ", block, " is not one of the model's ", greedy_blocks());
  const auto k = static_cast<std::size_t>(block);
  auto parameters = k < encoder_.size() ? encoder_[k]->parameters() : (latent_ ? latent_->parameters() : code_->parameters());
  for (const auto& p : (k < encoder_.size() ? decoder_[k]->parameters() : uncode_->parameters())) parameters.push_back(p);
  return parameters;
}

EndToEndObjective ConvolutionalAutoencoderImpl::block_objective(std::size_t k, const torch::Tensor& maps, ReconstructionLoss loss) {
  const auto target = maps.detach();
  const auto input = is_training() ? corrupt(options.corruption(), options.corruption_level(), maps) : maps;
  if (k == encoder_.size()) {
    // The dense code layer reconstructs the flattened top maps, which the activation keeps in its range: MSE.
    const auto flat = target.flatten(1);
    if (latent_) {
      const double kl_weight = KlSchedule{options.kl_weight(), options.kl_warmup_steps()}.next(training_steps_, is_training());
      return variational_objective(
          latent_->forward(input.flatten(1)), flat, ReconstructionLoss::kMse, [this](const torch::Tensor& z) { return uncode(z); },
          kl_weight);
    }
    const auto reconstruction = reconstruction_loss(ReconstructionLoss::kMse, uncode(code_of_maps(input)), flat);
    return {reconstruction, {{"reconstruction", reconstruction}}};
  }
  // Inner blocks reconstruct activations, not pixels: only the first is scored with `loss`.
  const auto reconstruction =
      reconstruction_loss(k == 0 ? loss : ReconstructionLoss::kMse, decode_block(k, encode_block(k, input)), target);
  return {reconstruction, {{"reconstruction", reconstruction}}};
}

EndToEndObjective ConvolutionalAutoencoderImpl::greedy_block_objective(const torch::Tensor& x, int block, ReconstructionLoss loss) {
  TORCH_CHECK(block >= 0 && block < greedy_blocks(), "greedy block ", block, " is not one of the model's ", greedy_blocks());
  const auto k = static_cast<std::size_t>(block);
  // The block's input: the maps of the frozen blocks below, as they encode for the layers above
  // (their batch normalisation in eval mode), without gradients.
  torch::Tensor maps;
  {
    torch::NoGradGuard no_grad;
    const auto below = std::min(k, encoder_.size());
    std::vector<torch::nn::Module*> frozen;
    for (std::size_t i = 0; i < below; ++i) frozen.push_back(encoder_[i].get());
    const core::EvalModeGuard eval(frozen);
    maps = images_of(x);
    for (std::size_t i = 0; i < below; ++i) maps = encode_block(i, maps);
  }
  return block_objective(k, maps, loss);
}

torch::Tensor ConvolutionalAutoencoderImpl::denoising_cost(const torch::Tensor& x, const std::vector<double>& weights,
                                                           ReconstructionLoss loss) {
  TORCH_CHECK(weights.size() == static_cast<std::size_t>(denoising_levels()), "convolutional autoencoder: ", weights.size(),
              " weights for ", denoising_levels(), " levels");
  return weighted_level_costs(
      weights, images_of(x), [&](std::size_t k, const torch::Tensor& maps) { return block_objective(k, maps, loss).total; },
      [&](std::size_t k, const torch::Tensor& maps) { return encode_block(k, maps); });
}

std::int64_t ConvolutionalAutoencoderImpl::code_dim() const {
  if (options.code_dim() > 0) return options.code_dim();
  return options.code_pooling() == CodePooling::kFlatten ? top_shape_[0] * top_shape_[1] * top_shape_[2] : top_shape_[0];
}

std::vector<EncoderPart> ConvolutionalAutoencoderImpl::encoder_parts() {
  std::vector<EncoderPart> parts;
  for (std::size_t k = 0; k < encoder_.size(); ++k)
    parts.push_back({fmt::format("block{}", k), encoder_[k]->parameters(), encoder_[k].ptr()});
  if (code_) parts.push_back({"code", code_->parameters(), code_.ptr()});
  if (latent_) parts.push_back({"code", latent_->parameters(), latent_.ptr()});
  return parts;
}

namespace {

// The TorchScript expression of a block's convolution of `input`, normalised with the running
// statistics where the block has batch normalisation; `output_padding` for a transposed block.
std::string block_script(const std::string& block, const ConvolutionBlockImpl& b, const std::string& input, std::int64_t stride,
                         std::int64_t kernel, std::array<std::int64_t, 2> output_padding) {
  const auto padding = same_padding(kernel);
  auto h = b.transposed ? fmt::format(
                              "torch.conv_transpose2d({}, self.{}.transposed.weight, self.{}.transposed.bias, [{}, {}], [{}, {}], "
                              "[{}, {}])",
                              input, block, block, stride, stride, padding, padding, output_padding[0], output_padding[1])
                        : fmt::format("torch.conv2d({}, self.{}.conv.weight, self.{}.conv.bias, [{}, {}], [{}, {}])", input, block, block,
                                      stride, stride, padding, padding);
  if (!b.norm) return h;
  const auto n = "self." + block + ".norm";
  return fmt::format("torch.batch_norm({}, {}.weight, {}.bias, {}.running_mean, {}.running_var, False, 0.0, {}, False)", h, n, n, n, n,
                     b.norm->options.eps());
}

}  // namespace

std::string ConvolutionalAutoencoderImpl::torchscript() const {
  const auto shape = options.image_shape();
  std::string code =
      fmt::format("def maps_of(self, x: Tensor) -> Tensor:\n    h = x.reshape([x.size(0), {}, {}, {}])\n", shape[0], shape[1], shape[2]);
  for (std::size_t k = 0; k < encoder_.size(); ++k) {
    const auto stride = per_block(options.strides(), k), pool = per_block(options.pooling(), k);
    const auto convolved =
        block_script(fmt::format("encoder{}", k), *encoder_[k], "h", stride, per_block(options.kernel_sizes(), k), {0, 0});
    code += fmt::format("    h = {}\n", core::activation_script(options.activation(), convolved));
    if (pool > 1) code += fmt::format("    h = torch.max_pool2d(h, [{}, {}])\n", pool, pool);
  }
  code += "    return h\n\ndef code_of_maps(self, h: Tensor) -> Tensor:\n";
  if (latent_) {
    code += fmt::format("    return {}\n",
                        core::linear_script("h.flatten(1)", "self.code.mean.weight", "self.code.mean.bias", Activation::kLinear));
  } else if (code_) {
    code += fmt::format("    return {}\n",
                        core::linear_script("h.flatten(1)", "self.code.weight", "self.code.bias", options.code_activation()));
  } else {
    code += options.code_pooling() == CodePooling::kFlatten ? "    return h.flatten(1)\n" : "    return h.mean([2, 3])\n";
  }
  // depth: the code has one depth, all of the encoder.
  code += "\ndef code_of(self, x: Tensor, depth: int) -> Tensor:\n    return self.code_of_maps(self.maps_of(x))\n";
  code += "\ndef reconstruction_of(self, x: Tensor) -> Tensor:\n    h = self.maps_of(x)\n";
  if (uncode_) {
    code += fmt::format("    h = {}.reshape([x.size(0), {}, {}, {}])\n",
                        core::linear_script("self.code_of_maps(h)", "self.uncode.weight", "self.uncode.bias", options.activation()),
                        top_shape_[0], top_shape_[1], top_shape_[2]);
  }
  const bool upsample = options.decoder() == ConvolutionalDecoder::kUpsample;
  for (auto k = decoder_.size(); k-- > 0;) {
    const auto& sizes = sizes_[k];
    const auto stride = per_block(options.strides(), k), kernel = per_block(options.kernel_sizes(), k);
    if (sizes.pooled != sizes.convolved)
      code += fmt::format("    h = torch.upsample_nearest2d(h, [{}, {}])\n", sizes.convolved[0], sizes.convolved[1]);
    if (upsample && sizes.convolved != sizes.input)
      code += fmt::format("    h = torch.upsample_nearest2d(h, [{}, {}])\n", sizes.input[0], sizes.input[1]);
    // A transposed convolution of stride s and "same" padding makes (n - 1) s + 1 rows of n; the
    // output padding adds what the encoder's rounding took away.
    const std::array<std::int64_t, 2> output_padding{sizes.input[0] - ((sizes.convolved[0] - 1) * stride + 1),
                                                     sizes.input[1] - ((sizes.convolved[1] - 1) * stride + 1)};
    const auto convolved =
        block_script(fmt::format("decoder{}", k), *decoder_[k], "h", decoder_[k]->transposed ? stride : 1, kernel, output_padding);
    code += fmt::format("    h = {}\n", core::activation_script(k == 0 ? options.output_activation() : options.activation(), convolved));
  }
  return code + "    return h.flatten(1)\n";
}

torch::Tensor ConvolutionalAutoencoderImpl::input_filters(const std::vector<std::int64_t>& /*example_shape*/) {
  return encoder_.front()->conv->weight.detach();
}

}  // namespace encore::models
