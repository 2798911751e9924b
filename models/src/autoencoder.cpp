#include "encore/models/autoencoder.h"
#include "encore/models/pictures.h"

#include "encore/core/ops.h"
#include "encore/models/model.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "encore/core/runtime.h"

namespace encore::models {

const core::Choices<Activation>& activation_choices() {
  static const core::Choices<Activation> choices{
      {"sigmoid", Activation::kSigmoid}, {"relu", Activation::kRelu}, {"tanh", Activation::kTanh}, {"linear", Activation::kLinear}};
  return choices;
}
const core::Choices<Corruption>& corruption_choices() {
  static const core::Choices<Corruption> choices{{"none", Corruption::kNone},
                                                 {"masking", Corruption::kMasking},
                                                 {"gaussian", Corruption::kGaussian},
                                                 {"salt_and_pepper", Corruption::kSaltAndPepper}};
  return choices;
}
const core::Choices<Sparsity>& sparsity_choices() {
  static const core::Choices<Sparsity> choices{{"none", Sparsity::kNone}, {"kl", Sparsity::kKl}, {"l1", Sparsity::kL1}};
  return choices;
}
const core::Choices<ReconstructionLoss>& reconstruction_loss_choices() {
  static const core::Choices<ReconstructionLoss> choices{{"mse", ReconstructionLoss::kMse},
                                                         {"bce", ReconstructionLoss::kBinaryCrossEntropy}};
  return choices;
}

std::string activation_name(Activation a) { return activation_choices().name_of(a); }
std::string corruption_name(Corruption c) { return corruption_choices().name_of(c); }
std::string sparsity_name(Sparsity s) { return sparsity_choices().name_of(s); }
std::string reconstruction_loss_name(ReconstructionLoss l) { return reconstruction_loss_choices().name_of(l); }

torch::Tensor activation_derivative(Activation a, const torch::Tensor& h) {
  switch (a) {
    case Activation::kSigmoid:
      return h * (1 - h);
    case Activation::kRelu:
      return (h > 0).to(h.scalar_type());
    case Activation::kTanh:
      return 1 - h * h;
    case Activation::kLinear:
      return torch::ones_like(h);
  }
  return torch::ones_like(h);
}

torch::Tensor reconstruction_loss(ReconstructionLoss kind, const torch::Tensor& reconstruction, const torch::Tensor& target) {
  if (kind == ReconstructionLoss::kMse) return torch::mse_loss(reconstruction, target);
  // Per-example BCE summed over features, as in the autoencoder literature, averaged over the batch.
  return torch::binary_cross_entropy(reconstruction, target, {}, at::Reduction::Sum) / reconstruction.size(0);
}

torch::Tensor logistic_reconstruction_loss(const torch::Tensor& logits, const torch::Tensor& target) {
  // BCE of sigmoid(logits), computed from the logits: one fused op, stable where the sigmoid saturates.
  return core::logistic_loss_sum(logits, target) / logits.size(0);
}

void check_corruption_level(const char* option, Corruption corruption, double level) {
  const bool fraction = corruption != Corruption::kGaussian;
  if (level < 0 || (fraction && level >= 1)) {
    throw core::OptionError(
        option, fmt::format("{} levels must be {}, got {}", corruption_name(corruption), fraction ? "in [0, 1)" : ">= 0", level));
  }
}

bool corrupts(Corruption kind, double level) { return kind != Corruption::kNone && level > 0; }

torch::Tensor corrupt(Corruption kind, double level, const torch::Tensor& x) {
  if (!corrupts(kind, level)) return x;
  switch (kind) {
    case Corruption::kMasking:
      return core::masking_noise(x, level);
    case Corruption::kGaussian:
      return x + torch::randn_like(x) * level;
    case Corruption::kSaltAndPepper: {
      const auto hit = torch::empty_like(x).bernoulli_(level).to(torch::kBool);
      const auto salt = torch::empty_like(x).bernoulli_(0.5);
      return torch::where(hit, salt, x);
    }
    case Corruption::kNone:
      break;
  }
  return x;
}

namespace {

void check_sparsity(Activation activation, Sparsity sparsity, double sparsity_target) {
  if (sparsity == Sparsity::kKl && activation != Activation::kSigmoid) {
    throw core::OptionError("sparsity", "\"kl\" needs sigmoid codes; use \"l1\" with activation \"" + activation_name(activation) + "\"");
  }
  if (!(sparsity_target > 0 && sparsity_target < 1)) {
    throw core::OptionError("sparsity_target", fmt::format("must be in (0, 1), got {}", sparsity_target));
  }
}

// Training holds four copies of the weights (themselves, gradients, Adam's two moments): sizes
// whose copies exceed the machine's memory are refused before anything is allocated.
void check_stack_fits_in_memory(std::int64_t input_dim, const std::vector<std::int64_t>& hidden, bool tied) {
  const auto memory = core::physical_memory_bytes();
  if (memory == 0) return;
  long double parameters = 0;
  // Options read from a config have no input width yet: one input stands for it.
  long double in = static_cast<long double>(std::max<std::int64_t>(input_dim, 1));
  for (const auto out : hidden) {
    parameters += in * static_cast<long double>(out) * (tied ? 1 : 2) + in + static_cast<long double>(out);
    in = static_cast<long double>(out);
  }
  constexpr long double kCopies = 4, kBytesPerFloat = 4, kGiB = 1024.0L * 1024 * 1024;
  const long double bytes = parameters * kCopies * kBytesPerFloat;
  if (bytes <= static_cast<long double>(memory)) return;
  const auto inputs = input_dim > 1 ? fmt::format("for {} inputs", input_dim) : std::string("even for one input");
  throw core::OptionError("hidden_dims", fmt::format("{:.3g} parameters {} need {:.1f} GiB to train (weights, gradients and Adam's two "
                                                     "moments), more than this machine's {:.1f} GiB of memory",
                                                     static_cast<double>(parameters), inputs, static_cast<double>(bytes / kGiB),
                                                     static_cast<double>(memory / kGiB)));
}

}  // namespace

void StackedAutoencoderOptions::check() const {
  if (hidden_dims_.empty()) throw core::OptionError("hidden_dims", "must list at least one layer size");
  check_stack_fits_in_memory(input_dim_, hidden_dims_, tied_);
  if (corruption_levels_.size() > 1 && corruption_levels_.size() != hidden_dims_.size()) {
    throw core::OptionError("corruption_levels", fmt::format("needs one level per layer ({}) or one for all, got {}", hidden_dims_.size(),
                                                             corruption_levels_.size()));
  }
  for (const double level : corruption_levels_) check_corruption_level("corruption_levels", corruption_, level);
  check_sparsity(activation_, sparsity_, sparsity_target_);
}

AutoencoderLayerImpl::AutoencoderLayerImpl(const AutoencoderLayerOptions& options_) : options(options_) { reset(); }

void AutoencoderLayerImpl::reset() {
  const auto in = options.input_dim();
  const auto out = options.hidden_dim();
  if (in < 1 || out < 1) {
    throw core::OptionError(in < 1 ? "input_dim" : "hidden_dim", fmt::format("layer sizes must be >= 1, got {} -> {}", in, out));
  }
  check_corruption_level("corruption_level", options.corruption(), options.corruption_level());
  check_sparsity(options.activation(), options.sparsity(), options.sparsity_target());
  // Glorot-uniform initialisation keeps sigmoid and tanh units out of saturation at the start.
  const double bound = std::sqrt(6.0 / static_cast<double>(in + out));
  encoder_weight = register_parameter("encoder_weight", torch::empty({out, in}).uniform_(-bound, bound));
  encoder_bias = register_parameter("encoder_bias", torch::zeros({out}));
  if (options.tied()) {
    decoder_weight_ = torch::Tensor();
  } else {
    decoder_weight_ = register_parameter("decoder_weight", torch::empty({in, out}).uniform_(-bound, bound));
  }
  decoder_bias = register_parameter("decoder_bias", torch::zeros({in}));
}

void AutoencoderLayerImpl::pretty_print(std::ostream& stream) const {
  stream << "encore::models::AutoencoderLayer(" << options.input_dim() << " -> " << options.hidden_dim()
         << ", activation=" << activation_name(options.activation()) << ", tied=" << (options.tied() ? "true" : "false")
         << ", corruption=" << corruption_name(options.corruption()) << ":" << options.corruption_level() << ")";
}

torch::Tensor AutoencoderLayerImpl::decoder_weight() const { return options.tied() ? encoder_weight.t() : decoder_weight_; }

torch::Tensor AutoencoderLayerImpl::encode(const torch::Tensor& x) {
  return core::linear(x, encoder_weight, encoder_bias, options.activation());
}

torch::Tensor AutoencoderLayerImpl::decode(const torch::Tensor& code) {
  return core::linear(code, decoder_weight(), decoder_bias, options.output_activation());
}

torch::Tensor AutoencoderLayerImpl::forward(const torch::Tensor& x) {
  const auto input = is_training() ? corrupt(options.corruption(), options.corruption_level(), x) : x;
  return decode(encode(input));
}

torch::Tensor AutoencoderLayerImpl::penalty(const torch::Tensor& code) {
  torch::Tensor total;
  const auto add = [&total](const torch::Tensor& term) { total = total.defined() ? total + term : term; };
  if (options.sparsity() == Sparsity::kKl && options.sparsity_weight() > 0) {
    const double rho = options.sparsity_target();
    const auto rho_hat = code.mean(0).clamp(1e-6, 1 - 1e-6);
    const auto kl = rho * torch::log(rho / rho_hat) + (1 - rho) * torch::log((1 - rho) / (1 - rho_hat));
    add(options.sparsity_weight() * kl.sum());
  } else if (options.sparsity() == Sparsity::kL1 && options.sparsity_weight() > 0) {
    add(options.sparsity_weight() * code.abs().sum(1).mean());
  }
  if (options.contractive_weight() > 0) {
    // For code = act(W x + b), d code_j / d x_i = act'(z_j) W_ji, so
    // ||J||_F^2 = sum_j act'(z_j)^2 * sum_i W_ji^2, computed without forming J.
    const auto slope = activation_derivative(options.activation(), code);
    const auto row_norms = encoder_weight.pow(2).sum(1);
    add(options.contractive_weight() * (slope.pow(2) * row_norms).sum(1).mean());
  }
  return total;
}

AutoencoderLayerImpl::Loss AutoencoderLayerImpl::loss(const torch::Tensor& x, ReconstructionLoss kind) {
  const auto input = is_training() ? corrupt(options.corruption(), options.corruption_level(), x) : x;
  const auto code = encode(input);
  // A fixed target: where x is itself computed by trained layers (semi-supervised fine-tuning), a
  // gradient through the target would pull those layers towards codes that are easy to reconstruct.
  const auto target = x.detach();
  const auto reconstruction = kind == ReconstructionLoss::kBinaryCrossEntropy && options.output_activation() == Activation::kSigmoid
                                  ? logistic_reconstruction_loss(core::linear(code, decoder_weight(), decoder_bias), target)
                                  : reconstruction_loss(kind, decode(code), target);
  const auto regulariser = penalty(code);
  return {regulariser.defined() ? reconstruction + regulariser : reconstruction, reconstruction, code};
}

StackedAutoencoderImpl::StackedAutoencoderImpl(const StackedAutoencoderOptions& options_) : options(options_) { reset(); }

void StackedAutoencoderImpl::reset() {
  core::check_options(options);
  const auto& dims = options.hidden_dims();
  const auto& levels = options.corruption_levels();
  layers_.clear();
  std::int64_t in = options.input_dim();
  for (std::size_t k = 0; k < dims.size(); ++k) {
    const double level = levels.empty() ? 0.0 : levels[levels.size() == 1 ? 0 : k];
    auto layer_options = AutoencoderLayerOptions(in, dims[k])
                             .activation(options.activation())
                             .output_activation(k == 0 ? options.output_activation() : options.activation())
                             .tied(options.tied())
                             .corruption(options.corruption())
                             .corruption_level(level)
                             .sparsity(options.sparsity())
                             .sparsity_target(options.sparsity_target())
                             .sparsity_weight(options.sparsity_weight())
                             .contractive_weight(options.contractive_weight());
    layers_.push_back(register_module("layer" + std::to_string(k), AutoencoderLayer(layer_options)));
    in = dims[k];
  }
}

void StackedAutoencoderImpl::pretty_print(std::ostream& stream) const {
  stream << "encore::models::StackedAutoencoder(" << options.input_dim();
  for (auto d : options.hidden_dims()) stream << "-" << d;
  stream << ")";
}

torch::Tensor StackedAutoencoderImpl::encode(const torch::Tensor& x, int depth) {
  TORCH_CHECK(depth >= 0 && depth <= this->depth(), "encode depth ", depth, " is not in [0, ", this->depth(), "]");
  auto h = x;
  for (int k = 0; k < depth; ++k) h = layers_[k]->encode(h);
  return h;
}

torch::Tensor StackedAutoencoderImpl::decode(const torch::Tensor& code, int depth) {
  TORCH_CHECK(depth >= 0 && depth <= this->depth(), "decode depth ", depth, " is not in [0, ", this->depth(), "]");
  auto h = code;
  for (int k = depth - 1; k >= 0; --k) h = layers_[k]->decode(h);
  return h;
}

torch::Tensor StackedAutoencoderImpl::input_filters(const std::vector<std::int64_t>& example_shape) {
  const auto& weight = layers_.front()->encoder_weight;
  // A dense unit's weights over a grey [H, W] or [1, H, W], or a colour [3, H, W], image are an image.
  if (!is_image_shape(example_shape)) return {};
  const auto [channels, height, width] = image_dims(example_shape);
  if (channels * height * width != weight.size(1)) return {};
  return weight.detach().reshape({weight.size(0), channels, height, width});
}

std::string StackedAutoencoderImpl::torchscript() const {
  const auto layer = [](std::size_t k) { return fmt::format("self.layer{}", k); };
  std::string code = "def code_of(self, x: Tensor, depth: int) -> Tensor:\n    h = x\n";
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    const auto& o = layers_[k]->options;
    code += fmt::format("    if depth > {}:\n        h = {}\n", k,
                        core::linear_script("h", layer(k) + ".encoder_weight", layer(k) + ".encoder_bias", o.activation()));
  }
  code += "    return h\n\ndef reconstruction_of(self, x: Tensor) -> Tensor:\n";
  code += fmt::format("    h = self.code_of(x, {})\n", layers_.size());
  for (auto k = layers_.size(); k-- > 0;) {
    const auto& o = layers_[k]->options;
    const auto weight = o.tied() ? layer(k) + ".encoder_weight.t()" : layer(k) + ".decoder_weight";
    code += fmt::format("    h = {}\n", core::linear_script("h", weight, layer(k) + ".decoder_bias", o.output_activation()));
  }
  return code + "    return h\n";
}

torch::Tensor StackedAutoencoderImpl::forward(const torch::Tensor& x) {
  const auto& first = layers_.front()->options;
  const auto input = is_training() ? corrupt(first.corruption(), first.corruption_level(), x) : x;
  return decode(encode(input), depth());
}

}  // namespace encore::models
