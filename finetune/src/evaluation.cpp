#include "encore/finetune/evaluation.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>
#include <mutex>

#include "encore/core/dataset.h"
#include "encore/core/random.h"
#include "encore/finetune/classifier.h"
#include "encore/models/model.h"

namespace encore::finetune {

double roc_auc(const torch::Tensor& scores, const torch::Tensor& positives) {
  const auto s = scores.to(torch::kFloat64).contiguous();
  const auto p = positives.to(torch::kBool).contiguous();
  const auto n_pos = p.sum().item<std::int64_t>();
  const auto n_neg = p.numel() - n_pos;
  if (n_pos == 0 || n_neg == 0) return std::numeric_limits<double>::quiet_NaN();
  // Mann-Whitney: the AUC is the normalised rank sum of the positives, tied scores sharing ranks.
  const auto order = s.argsort();
  const auto sorted = s.index_select(0, order);
  const auto* v = sorted.data_ptr<double>();
  const auto n = s.numel();
  std::vector<double> ranks(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n;) {
    std::int64_t j = i;
    while (j + 1 < n && v[j + 1] == v[i]) ++j;
    const double average = 0.5 * static_cast<double>(i + j) + 1.0;
    for (std::int64_t k = i; k <= j; ++k) ranks[static_cast<std::size_t>(k)] = average;
    i = j + 1;
  }
  const auto* idx = order.data_ptr<std::int64_t>();
  const auto* pos = p.data_ptr<bool>();
  double rank_sum = 0;
  for (std::int64_t k = 0; k < n; ++k) {
    if (pos[idx[k]]) rank_sum += ranks[static_cast<std::size_t>(k)];
  }
  const double np = static_cast<double>(n_pos);
  return (rank_sum - np * (np + 1) / 2) / (np * static_cast<double>(n_neg));
}

Evaluation evaluate_predictions(const torch::Tensor& labels, const torch::Tensor& predictions, const torch::Tensor& scores,
                                std::int64_t classes) {
  const auto y = labels.to(torch::kInt64).cpu();
  const auto yhat = predictions.to(torch::kInt64).cpu();
  Evaluation e;
  const auto answered = yhat.ge(0);
  e.abstained = yhat.numel() - answered.sum().item<std::int64_t>();
  e.confusion = torch::zeros({classes, classes}, torch::kInt64);
  const auto flat = y.masked_select(answered) * classes + yhat.masked_select(answered);
  e.confusion.view(-1).index_add_(0, flat, torch::ones_like(flat));
  const auto n = static_cast<double>(y.numel());
  e.accuracy = n > 0 ? yhat.eq(y).sum().item<double>() / n : 0.0;
  const auto c = e.confusion.to(torch::kFloat64);
  const auto true_positive = c.diagonal();
  const auto predicted = c.sum(0);
  const auto actual = torch::bincount(y, {}, classes).to(torch::kFloat64);
  double f1_sum = 0;
  for (std::int64_t k = 0; k < classes; ++k) {
    ClassMetrics m;
    const double tp = true_positive[k].item<double>();
    const double pred = predicted[k].item<double>();
    const double act = actual[k].item<double>();
    m.support = static_cast<std::int64_t>(act);
    m.precision = pred > 0 ? tp / pred : 0.0;
    m.recall = act > 0 ? tp / act : 0.0;
    m.f1 = m.precision + m.recall > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0.0;
    m.roc_auc = roc_auc(scores.select(1, k).cpu(), y.eq(k));
    f1_sum += m.f1;
    e.per_class.push_back(m);
  }
  e.macro_f1 = classes > 0 ? f1_sum / static_cast<double>(classes) : 0.0;
  return e;
}

core::Json Evaluation::to_json(const std::vector<std::string>& class_names) const {
  auto number = [](double v) { return std::isfinite(v) ? core::Json(v) : core::Json(nullptr); };
  core::Json out{{"accuracy", accuracy}, {"macro_f1", macro_f1}, {"abstained", abstained}, {"per_class", core::Json::array()}};
  for (std::size_t k = 0; k < per_class.size(); ++k) {
    const auto& m = per_class[k];
    out["per_class"].push_back({{"class", k < class_names.size() ? class_names[k] : std::to_string(k)},
                                {"precision", m.precision},
                                {"recall", m.recall},
                                {"f1", m.f1},
                                {"roc_auc", number(m.roc_auc)},
                                {"support", m.support}});
  }
  std::vector<std::vector<std::int64_t>> rows;
  for (std::int64_t i = 0; i < confusion.size(0); ++i) {
    const auto row = confusion[i].contiguous();
    rows.emplace_back(row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + row.numel());
  }
  out["confusion"] = rows;
  return out;
}

double mean_reconstruction_mse(models::AutoencoderModel& model, const core::BatchSource& source, torch::Device device) {
  torch::NoGradGuard no_grad;
  model.module().eval();
  double total = 0;
  const auto order = source.epoch_order(0);
  for (std::int64_t b = 0; b < source.batches_per_epoch(); ++b) {
    const auto inputs = core::to_device(source.batch(order, b), device).inputs;
    total += torch::mse_loss(model.forward(inputs), inputs, at::Reduction::Sum).item<double>();
  }
  return total / static_cast<double>(source.size() * source.data().feature_dim());
}

core::Json variational_bound(models::AutoencoderModel& model, const core::BatchSource& source, models::ReconstructionLoss loss,
                             std::uint64_t seed, torch::Device device) {
  TORCH_CHECK(model.latent_dim() > 0, "variational_bound needs a variational model");
  torch::NoGradGuard no_grad;
  model.module().eval();
  // The latent noise is keyed by draws of the default CPU generator alone (core::gaussian_noise_like),
  // so only that generator is set, and put back after: no device generator is touched.
  const auto saved = core::default_generator_state();
  {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_current_seed(seed);
  }
  std::map<std::string, double> sums;
  const auto order = source.epoch_order(0);
  for (std::int64_t b = 0; b < source.batches_per_epoch(); ++b) {
    const auto inputs = core::to_device(source.batch(order, b), device).inputs;
    for (const auto& [name, value] : model.end_to_end_objective(inputs, loss).parts) {
      sums[name] += value.item<double>() * static_cast<double>(inputs.size(0));
    }
  }
  core::set_default_generator_state(saved);
  const auto n = static_cast<double>(source.size());
  const double reconstruction = sums["reconstruction"] / n, kl = sums["kl"] / n;
  return {{"reconstruction", reconstruction}, {"kl", kl}, {"elbo", -(reconstruction + kl)}};
}

Evaluation evaluate_classifier(ClassifierImpl& classifier, const core::BatchSource& source, torch::Device device) {
  torch::NoGradGuard no_grad;
  classifier.eval();
  std::vector<torch::Tensor> scores, predictions;
  const auto order = source.indices();
  for (std::int64_t b = 0; b < source.batches_per_epoch(); ++b) {
    auto [batch_scores, batch_predictions] = classifier.classify(core::to_device(source.batch(order, b), device).inputs);
    scores.push_back(batch_scores.to(torch::kCPU));
    predictions.push_back(batch_predictions.to(torch::kCPU));
  }
  return evaluate_predictions(source.data().labels.index_select(0, source.indices()), torch::cat(predictions), torch::cat(scores),
                              source.data().num_classes());
}

}  // namespace encore::finetune
