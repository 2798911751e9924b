#pragma once
/// Built-in callbacks, one concern each: early stopping, metrics.jsonl, progress, checkpoints.

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "encore/core/trainer.h"

namespace encore::core {

/// Stops when the monitored metric has not improved for `patience` epochs; optionally restores the
/// best epoch's weights at the end.
class EarlyStopping : public Callback {
 public:
  /// Stops when `config.monitor` has not improved for `config.patience` epochs.
  explicit EarlyStopping(EarlyStoppingConfig config);

  /// Feeds one epoch's value; true when training should stop.
  bool update(double value);

  /// Resets the best value seen.
  void on_fit_start(Trainer& trainer) override;
  void on_epoch_end(Trainer& trainer, const Metrics& metrics) override;
  /// Restores the best weights when asked to.
  void on_fit_end(Trainer& trainer) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  /// Restores the best value and weights from a checkpoint.
  void load(torch::serialize::InputArchive& archive) override;
  std::string state_key() const override { return "early_stopping"; }

  /// The epoch (1-based) the best value was seen in.
  std::int64_t best_epoch() const { return best_epoch_; }

 private:
  EarlyStoppingConfig config_;
  double best_;
  std::int64_t best_epoch_ = 0;
  std::int64_t epochs_since_best_ = 0;
  bool improved_ = false;
  std::vector<torch::Tensor> best_weights_;
};

/// Appends one JSON object per epoch to metrics.jsonl (rank 0 of a data-parallel run: every rank
/// holds the same metrics): stage, epoch, step and the metrics. Its
/// checkpointed state is the number of lines written, so a resumed run first cuts off the lines
/// written after its checkpoint.
class MetricsWriter : public Callback {
 public:
  /// Appends to `file`.
  explicit MetricsWriter(std::filesystem::path file);
  void on_epoch_end(Trainer& trainer, const Metrics& metrics) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  /// Drops lines written after the checkpoint, which the resumed run writes again.
  void load(torch::serialize::InputArchive& archive) override;
  std::string state_key() const override { return "metrics"; }

 private:
  void write(const Json& record);
  std::filesystem::path file_;
  std::int64_t records_ = 0;
};

/// Human progress on a stream (stderr): a redrawn bar with epoch, loss, samples/s and ETA on a
/// terminal, one line per epoch otherwise.
class ProgressReporter : public Callback {
 public:
  /// Reports to `out`: a redrawn bar when `interactive`, else a line per epoch.
  ProgressReporter(std::ostream& out, bool interactive);
  /// Starts the stage's report.
  void on_fit_start(Trainer& trainer) override;
  void on_batch_end(Trainer& trainer, double loss, std::int64_t batch_size) override;
  void on_epoch_end(Trainer& trainer, const Metrics& metrics) override;

 private:
  std::ostream& out_;
  bool interactive_;
  std::chrono::steady_clock::time_point epoch_start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::int64_t batches_done_ = 0;
  std::int64_t samples_done_ = 0;
  double loss_sum_ = 0;
};

/// An exponential moving average of a module's weights, updated after every optimizer step
/// (average = decay * average + (1 - decay) * weight, for the parameters and the floating-point
/// buffers): serves its parameters in between through with_averaged_parameters (a Mean Teacher's
/// targets), and replaces the module's weights with it when fit() ends (Polyak averaging).
class WeightAverage : public Callback {
 public:
  /// Averages `module`'s weights from those it holds now; `decay` in [0, 1).
  WeightAverage(torch::nn::Module& module, double decay);
  /// Runs `forward` without gradients with the averaged parameters in place of the module's own,
  /// which it puts back afterwards (the module's buffers serve as they are). Writes into the
  /// parameters: call it before any forward pass whose graph holds them.
  torch::Tensor with_averaged_parameters(const std::function<torch::Tensor()>& forward);
  void on_batch_end(Trainer& trainer, double loss, std::int64_t batch_size) override;
  /// Gives the module the averaged weights.
  void on_fit_end(Trainer& trainer) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  /// Throws DataError where the saved average does not fit the module's weights.
  void load(torch::serialize::InputArchive& archive) override;
  std::string state_key() const override { return "weight_average"; }

 private:
  torch::nn::Module& module_;
  double decay_;
  // The module's parameters, then its buffers.
  std::vector<torch::Tensor> average_;
};

/// Saves checkpoints into a directory as latest.pt, keeping the one before as previous.pt: after
/// every epoch, every `every_steps` optimizer steps when > 0 (mid-epoch), and when fit() ends.
class CheckpointSaver : public Callback {
 public:
  /// Writes checkpoints into `directory` at epoch ends, every `every_steps` steps (0: never mid-epoch) and at the end.
  explicit CheckpointSaver(std::filesystem::path directory, std::int64_t every_steps = 0);
  void on_batch_end(Trainer& trainer, double loss, std::int64_t batch_size) override;
  void on_epoch_end(Trainer& trainer, const Metrics& metrics) override;
  /// Writes the stage's last checkpoint.
  void on_fit_end(Trainer& trainer) override;

  /// The newest checkpoint.
  static constexpr const char* kLatest = "latest.pt";
  /// The one before it, kept in case the newest is damaged.
  static constexpr const char* kPrevious = "previous.pt";

 private:
  void save(Trainer& trainer);
  std::filesystem::path directory_;
  std::int64_t every_steps_;
};

/// Whether a stream descriptor is a terminal (for choosing the progress style).
bool is_terminal(int file_descriptor);

}  // namespace encore::core
