#include "encore/finetune/heads.h"

#include <torch/torch.h>

#include <fmt/format.h>

namespace encore::finetune {

namespace {

void check_classes(std::int64_t classes) {
  if (classes < 2) throw core::OptionError("classes", "a classifier needs at least 2 classes, got " + std::to_string(classes));
}

}  // namespace

OneVsAllHeadImpl::OneVsAllHeadImpl(const OneVsAllHeadOptions& options_) : options(options_) { reset(); }

void OneVsAllHeadImpl::reset() {
  check_classes(options.classes());
  core::check_options(options);
  linear = register_module("linear", torch::nn::Linear(options.input_dim(), options.classes()));
}

void OneVsAllHeadImpl::pretty_print(std::ostream& stream) const {
  stream << "encore::finetune::OneVsAllHead(" << options.input_dim() << " -> " << options.classes() << " logistic units)";
}

torch::Tensor OneVsAllHeadImpl::loss(const torch::Tensor& scores, const torch::Tensor& labels) const {
  const auto targets = torch::one_hot(labels, scores.size(1)).to(scores.scalar_type());
  // Summed over the K units: each unit is its own logistic regression, as in one-versus-all.
  return core::logistic_loss_sum(scores, targets) / scores.size(0);
}

torch::Tensor OneVsAllHeadImpl::probabilities(const torch::Tensor& scores) const { return torch::sigmoid(scores); }

torch::Tensor OneVsAllHeadImpl::predict(const torch::Tensor& scores) const {
  auto [best, index] = scores.max(1);
  if (!options.abstain_threshold()) return index;
  return torch::where(torch::sigmoid(best) >= *options.abstain_threshold(), index, torch::full_like(index, -1));
}

std::string OneVsAllHeadImpl::probabilities_script() const { return "return torch.sigmoid(scores)"; }

std::string OneVsAllHeadImpl::classes_script() const {
  if (!options.abstain_threshold()) return "return scores.argmax(1)";
  return fmt::format("best, index = scores.max(1)\n    return torch.where(torch.sigmoid(best) >= {}, index, torch.full_like(index, -1))",
                     *options.abstain_threshold());
}

torch::Tensor normalized_probabilities(const torch::Tensor& probabilities) {
  return probabilities / probabilities.sum(1, /*keepdim=*/true).clamp_min(1e-12);
}

SoftmaxHeadImpl::SoftmaxHeadImpl(std::int64_t input_dim_, std::int64_t classes_) : input_dim(input_dim_), classes(classes_) { reset(); }

void SoftmaxHeadImpl::reset() {
  check_classes(classes);
  linear = register_module("linear", torch::nn::Linear(input_dim, classes));
}

void SoftmaxHeadImpl::pretty_print(std::ostream& stream) const {
  stream << "encore::finetune::SoftmaxHead(" << input_dim << " -> " << classes << ")";
}

torch::Tensor SoftmaxHeadImpl::loss(const torch::Tensor& scores, const torch::Tensor& labels) const {
  return torch::cross_entropy_loss(scores, labels);
}

torch::Tensor SoftmaxHeadImpl::probabilities(const torch::Tensor& scores) const { return torch::softmax(scores, 1); }

torch::Tensor SoftmaxHeadImpl::predict(const torch::Tensor& scores) const { return scores.argmax(1); }

std::string SoftmaxHeadImpl::probabilities_script() const { return "return torch.softmax(scores, 1)"; }

std::string SoftmaxHeadImpl::classes_script() const { return "return scores.argmax(1)"; }

void register_builtin_heads(HeadRegistry& registry) {
  add_head<OneVsAllHeadOptions>(registry, "one_vs_all",
                                "K independent logistic units trained with binary cross-entropy; may abstain under a threshold",
                                [](OneVsAllHeadOptions options, std::int64_t input_dim, std::int64_t classes) -> std::shared_ptr<Head> {
                                  return OneVsAllHead(options.input_dim(input_dim).classes(classes)).ptr();
                                });
  add_head<SoftmaxHeadOptions>(registry, "softmax", "a softmax over the K classes trained with cross-entropy",
                               [](const SoftmaxHeadOptions&, std::int64_t input_dim, std::int64_t classes) -> std::shared_ptr<Head> {
                                 return SoftmaxHead(input_dim, classes).ptr();
                               });
}

}  // namespace encore::finetune
