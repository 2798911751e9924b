#pragma once
/// Classification metrics: accuracy, per-class precision / recall / F1 / ROC-AUC, macro-F1 and the
/// confusion matrix.

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "encore/core/config.h"

namespace encore::core {
class BatchSource;
}
namespace encore::models {
class AutoencoderModel;
}

namespace encore::finetune {

class ClassifierImpl;

/// One class's metrics.
struct ClassMetrics {
  /// Of the examples predicted to be the class, the fraction that are.
  double precision = 0;
  /// Of the examples of the class, the fraction predicted so.
  double recall = 0;
  /// Harmonic mean of precision and recall.
  double f1 = 0;
  /// Area under the ROC curve of this class's score against the rest; NaN without positives or negatives.
  double roc_auc = 0;
  /// Examples of the class.
  std::int64_t support = 0;
};

/// Metrics of a classifier on a labelled set.
struct Evaluation {
  /// Fraction of examples predicted right (abstentions count as wrong).
  double accuracy = 0;
  /// Mean F1 over classes.
  double macro_f1 = 0;
  /// Metrics of each class, in label order.
  std::vector<ClassMetrics> per_class;
  /// [K, K] counts, rows true class, columns predicted class (abstentions are not in it).
  torch::Tensor confusion;
  /// Examples for which the head answered "none of the K classes".
  std::int64_t abstained = 0;

  /// `{"accuracy", "macro_f1", "abstained", "per_class": [{"class", "precision", ...}], "confusion"}`.
  core::Json to_json(const std::vector<std::string>& class_names) const;
};

/// Metrics of predictions [N] (class index or -1 for abstain) and per-class scores [N, K] against
/// labels [N].
Evaluation evaluate_predictions(const torch::Tensor& labels, const torch::Tensor& predictions, const torch::Tensor& scores,
                                std::int64_t classes);

/// A classifier's metrics on every example of a source, in eval mode without gradients (the
/// source's order; its batch size sets the evaluation batch).
Evaluation evaluate_classifier(ClassifierImpl& classifier, const core::BatchSource& source, torch::Device device = torch::kCPU);

/// An autoencoder's mean squared reconstruction error per input value on every example of a
/// source, in eval mode without gradients (corruption off).
double mean_reconstruction_mse(models::AutoencoderModel& model, const core::BatchSource& source, torch::Device device = torch::kCPU);

/// A variational model's evidence lower bound on every example of a source, per example, in eval
/// mode without gradients, from one latent sample per example drawn with the default generator
/// seeded with `seed` (its state is put back after): {"reconstruction": -log p(x|z) as `loss`
/// scores it, "kl": KL(q(z|x) || p(z)), "elbo": -(reconstruction + kl)}.
core::Json variational_bound(models::AutoencoderModel& model, const core::BatchSource& source, models::ReconstructionLoss loss,
                             std::uint64_t seed, torch::Device device = torch::kCPU);

/// Area under the ROC curve of `scores` for binary `positives`, ties counted half.
double roc_auc(const torch::Tensor& scores, const torch::Tensor& positives);

}  // namespace encore::finetune
