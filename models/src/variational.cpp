#include "encore/models/variational.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>

#include "encore/core/ops.h"

namespace encore::models {

GaussianLatentImpl::GaussianLatentImpl(std::int64_t features, std::int64_t latent_dim) : features_(features), latent_dim_(latent_dim) {
  reset();
}

void GaussianLatentImpl::reset() {
  mean = register_module("mean", torch::nn::Linear(features_, latent_dim_));
  log_variance = register_module("log_variance", torch::nn::Linear(features_, latent_dim_));
}

std::pair<torch::Tensor, torch::Tensor> GaussianLatentImpl::forward(const torch::Tensor& features) {
  return {mean->forward(features), log_variance->forward(features)};
}

double KlSchedule::at(std::int64_t step) const {
  if (warmup_steps <= 0) return weight;
  return weight * std::min(1.0, static_cast<double>(step) / static_cast<double>(warmup_steps));
}

double KlSchedule::next(torch::Tensor& training_steps, bool training) const {
  if (!training) return 1.0;
  const double current = at(training_steps.item<std::int64_t>());
  training_steps.add_(1);
  return current;
}

torch::Tensor reparameterise(const torch::Tensor& mean, const torch::Tensor& log_variance) {
  // Noise keyed by each row's place in the global batch: data-parallel ranks draw what one process draws.
  return mean + core::gaussian_noise_like(mean) * torch::exp(0.5 * log_variance);
}

torch::Tensor gaussian_kl(const torch::Tensor& mean, const torch::Tensor& log_variance) {
  return 0.5 * (mean.pow(2) + log_variance.exp() - log_variance - 1).sum() / mean.size(0);
}

torch::Tensor likelihood_cost(ReconstructionLoss kind, const torch::Tensor& reconstruction, const torch::Tensor& target) {
  if (kind == ReconstructionLoss::kBinaryCrossEntropy) return reconstruction_loss(kind, reconstruction, target);
  return 0.5 * (reconstruction - target).pow(2).sum() / reconstruction.size(0);
}

EndToEndObjective variational_objective(const std::pair<torch::Tensor, torch::Tensor>& posterior, const torch::Tensor& x,
                                        ReconstructionLoss kind, const std::function<torch::Tensor(const torch::Tensor&)>& decode,
                                        double kl_weight) {
  const auto& [mean, log_variance] = posterior;
  const auto reconstruction = likelihood_cost(kind, decode(reparameterise(mean, log_variance)), x);
  const auto kl = gaussian_kl(mean, log_variance);
  return {reconstruction + kl_weight * kl, {{"reconstruction", reconstruction}, {"kl", kl}}};
}

VariationalAutoencoderImpl::VariationalAutoencoderImpl(const VariationalAutoencoderOptions& options_) : options(options_) { reset(); }

void VariationalAutoencoderImpl::reset() {
  core::check_options(options);
  encoder_.clear();
  decoder_.clear();
  const auto& hidden = options.hidden_dims();
  std::int64_t in = options.input_dim();
  for (std::size_t k = 0; k < hidden.size(); ++k) {
    encoder_.push_back(register_module(fmt::format("encoder{}", k), torch::nn::Linear(in, hidden[k])));
    in = hidden[k];
  }
  code_ = register_module("code", GaussianLatent(in, options.latent_dim()));
  // The decoder mirrors the encoder: latent -> hidden[last] -> ... -> hidden[0] -> input.
  in = options.latent_dim();
  for (auto k = hidden.size(); k-- > 0;) {
    decoder_.push_back(register_module(fmt::format("decoder{}", decoder_.size()), torch::nn::Linear(in, hidden[k])));
    in = hidden[k];
  }
  decoder_.push_back(register_module(fmt::format("decoder{}", decoder_.size()), torch::nn::Linear(in, options.input_dim())));
  training_steps_ = register_buffer("training_steps", torch::zeros({}, torch::kInt64));
}

void VariationalAutoencoderImpl::pretty_print(std::ostream& stream) const {
  stream << "encore::models::VariationalAutoencoder(" << options.input_dim();
  for (auto d : options.hidden_dims()) stream << "-" << d;
  stream << "-(" << options.latent_dim() << " Gaussian))";
}

torch::Tensor VariationalAutoencoderImpl::features(const torch::Tensor& x) {
  auto h = x;
  for (auto& layer : encoder_) h = core::linear(h, layer->weight, layer->bias, options.activation());
  return h;
}

torch::Tensor VariationalAutoencoderImpl::encode(const torch::Tensor& x) { return code_->forward(features(x)).first; }

torch::Tensor VariationalAutoencoderImpl::decode_latent(const torch::Tensor& z) {
  auto h = z;
  for (std::size_t k = 0; k < decoder_.size(); ++k) {
    const bool last = k + 1 == decoder_.size();
    h = core::linear(h, decoder_[k]->weight, decoder_[k]->bias, last ? options.output_activation() : options.activation());
  }
  return h;
}

torch::Tensor VariationalAutoencoderImpl::forward(const torch::Tensor& x) { return decode_latent(encode(x)); }

EndToEndObjective VariationalAutoencoderImpl::end_to_end_objective(const torch::Tensor& x, ReconstructionLoss loss) {
  const double kl_weight = KlSchedule{options.kl_weight(), options.kl_warmup_steps()}.next(training_steps_, is_training());
  return variational_objective(
      code_->forward(features(x)), x, loss, [this](const torch::Tensor& z) { return decode_latent(z); }, kl_weight);
}

std::vector<EncoderPart> VariationalAutoencoderImpl::encoder_parts() {
  std::vector<EncoderPart> parts;
  for (std::size_t k = 0; k < encoder_.size(); ++k)
    parts.push_back({fmt::format("layer{}", k), encoder_[k]->parameters(), encoder_[k].ptr()});
  parts.push_back({"code", code_->parameters(), code_.ptr()});
  return parts;
}

std::string VariationalAutoencoderImpl::torchscript() const {
  std::string code = "def code_of(self, x: Tensor, depth: int) -> Tensor:\n    h = x\n";
  for (std::size_t k = 0; k < encoder_.size(); ++k) {
    const auto layer = fmt::format("self.encoder{}", k);
    code += fmt::format("    h = {}\n", core::linear_script("h", layer + ".weight", layer + ".bias", options.activation()));
  }
  code += fmt::format("    return {}\n", core::linear_script("h", "self.code.mean.weight", "self.code.mean.bias", Activation::kLinear));
  code += "\ndef reconstruction_of(self, x: Tensor) -> Tensor:\n    h = self.code_of(x, 0)\n";
  for (std::size_t k = 0; k < decoder_.size(); ++k) {
    const auto layer = fmt::format("self.decoder{}", k);
    const bool last = k + 1 == decoder_.size();
    code += fmt::format("    h = {}\n", core::linear_script("h", layer + ".weight", layer + ".bias",
                                                            last ? options.output_activation() : options.activation()));
  }
  return code + "    return h\n";
}

}  // namespace encore::models
