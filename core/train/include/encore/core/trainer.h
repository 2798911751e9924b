#pragma once
/// The training loop. The Trainer owns the loop (modes, no-grad validation, device moves, zero-grad /
/// backward / clip / step, the non-finite check); a TrainTask says what one step means; Callbacks
/// observe and may request a stop. They talk through a flat metrics map ("train/loss").

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include "encore/core/dataset.h"
#include "encore/core/distributed.h"
#include "encore/core/json.h"
#include "encore/core/optim.h"

namespace encore::core {

/// Flat metrics of one epoch, e.g. {"train/loss": 0.02, "val/loss": 0.03, "lr": 0.001}.
using Metrics = std::map<std::string, double>;

/// Example-weighted sums of per-batch values, averaged at the end of an epoch.
class MetricSums {
 public:
  /// Adds `value` measured over `weight` examples.
  void add(const std::string& name, double value, double weight);
  /// Averages, each name prefixed (e.g. "train/").
  Metrics averages(const std::string& prefix) const;
  /// The sums as {"name": [sum, weight]} (checkpoints carry a part-done epoch's sums).
  Json to_json() const;
  /// Sums read back from to_json() (a checkpoint).
  static MetricSums from_json(const Json& json);
  /// Adds another set of sums (another rank's) to these.
  void merge(const MetricSums& other);

 private:
  std::map<std::string, std::pair<double, double>> sums_;
};

/// Parameters trained at `lr_scale` times the optimizer's learning rate.
struct ParameterGroup {
  /// The tensors of the group.
  std::vector<torch::Tensor> parameters;
  /// Multiplies the optimizer's learning rate for this group.
  double lr_scale = 1.0;
};

/// What one training step means: the loss of a batch.
class TrainTask {
 public:
  virtual ~TrainTask() = default;
  /// The module being trained: put in train/eval mode by the Trainer and saved in checkpoints.
  virtual torch::nn::Module& module() = 0;
  /// Parameters the optimizer updates; by default those of module() that require gradients.
  virtual std::vector<torch::Tensor> trainable_parameters();
  /// The trainable parameters in groups with their own learning-rate scale; by default one group.
  virtual std::vector<ParameterGroup> parameter_groups() { return {{trainable_parameters(), 1.0}}; }
  /// Loss of a training batch, with its graph. Extra per-batch values go into `metrics` (averaged
  /// per epoch and reported as "train/<name>").
  virtual torch::Tensor training_loss(const Batch& batch, MetricSums& metrics) = 0;
  /// Loss of a validation batch, run in eval mode without gradients; by default training_loss.
  virtual torch::Tensor validation_loss(const Batch& batch, MetricSums& metrics) { return training_loss(batch, metrics); }
  /// Called by the Trainer after switching module() to train mode, so a task can keep parts of it
  /// (frozen blocks) in eval mode.
  virtual void after_train_mode() {}
};

/// Early stopping on a monitored metric.
struct EarlyStoppingConfig {
  /// Metric watched ("val/loss", "val/accuracy", "train/loss").
  std::string monitor = "val/loss";
  /// "min" or "max".
  std::string mode = "min";
  /// Epochs without improvement before stopping.
  int patience = 5;
  /// Improvements smaller than this do not count.
  double min_delta = 0.0;
  /// Put back the weights of the best epoch when training ends.
  bool restore_best = true;

  /// The fields of a config's `early_stopping` object (fields.h).
  template <class Fields>
  void fields(Fields& f) {
    static const Choices<std::string> modes{{"min", "min"}, {"max", "max"}};
    f("monitor", monitor, "metric watched (val/loss, val/accuracy, train/loss, ...)");
    f("mode", mode, "whether smaller or larger values are better", modes);
    f("patience", patience, "epochs without improvement before stopping", at_least(1));
    f("min_delta", min_delta, "improvements smaller than this do not count", at_least(0.0));
    f("restore_best", restore_best, "put back the best epoch's weights at the end");
  }
};

/// How one stage trains.
struct TrainConfig {
  /// Passes over the training data.
  int epochs = 10;
  /// The batch size a stage builds its training source with (run_stage, and the experiment's
  /// stages). Trainer::fit itself cuts batches as the source it is given does.
  std::int64_t batch_size = 128;
  /// The optimizer and its options.
  std::shared_ptr<const OptimizerOptions> optimizer = std::make_shared<AdamOptions>();
  /// Learning rate over epochs.
  ScheduleConfig schedule;
  /// Clip the global gradient norm to this value; 0 turns clipping off.
  double grad_clip_norm = 0.0;
  /// Stop when a metric stops improving; absent: never.
  std::optional<EarlyStoppingConfig> early_stopping;

  /// The scalar fields of a training section (fields.h); the optimizer, schedule and early stopping
  /// are objects of their own.
  template <class Fields>
  void fields(Fields& f) {
    f("epochs", epochs, "passes over the training data", at_least(0));
    f("batch_size", batch_size, "examples per optimizer step", at_least(std::int64_t{1}));
    f("grad_clip_norm", grad_clip_norm, "clip the global gradient norm to this; 0: no clipping", at_least(0.0));
  }
};

/// Checks a training section set from C++: its fields, schedule and early stopping, and that it has
/// an optimizer (whose own options build() checks). Throws OptionError.
void check_train_config(const TrainConfig& config);

/// The loop's position: restored from checkpoints.
struct TrainerState {
  /// Name of the stage in metrics and messages, e.g. "pretrain/layer0".
  std::string stage;
  /// Epochs completed.
  std::int64_t epoch = 0;
  /// Optimizer steps taken.
  std::int64_t step = 0;
  /// Next batch within the current epoch (non-zero only mid-epoch).
  std::int64_t position = 0;
  /// fit() has run to its end (epochs done or stopped early).
  bool finished = false;
};

/// What happens when a training step meets a non-finite loss or gradient.
enum class NonFinitePolicy {
  /// Stop with NonFiniteError naming the step and the first non-finite tensor.
  kError,
  /// Leave the weights as they are, count the step in "train/skipped_steps" (a fraction of steps),
  /// and go on. Costs one pass over the gradients per step.
  kSkipStep,
};

/// The precision of the training steps' forward passes (the loss included); the weights, their
/// gradients and the optimizer stay float32, and evaluation runs in float32.
enum class MixedPrecision {
  /// float32 throughout.
  kOff,
  /// bfloat16 autocast on the training device (libtorch::AutocastGuard): matrix products in
  /// bfloat16, precision-sensitive operations in float32.
  kBf16,
};

class Trainer;
class Checkpoint;

/// Observes training; may request a stop. One concern per callback.
class Callback {
 public:
  virtual ~Callback() = default;
  /// Before the first epoch of a fit (also of a resumed one).
  virtual void on_fit_start(Trainer& /*trainer*/) {}
  /// After each optimizer step, with the batch loss and the batch size.
  virtual void on_batch_end(Trainer& /*trainer*/, double /*loss*/, std::int64_t /*batch_size*/) {}
  /// After each epoch with its metrics (validation included).
  virtual void on_epoch_end(Trainer& /*trainer*/, const Metrics& /*metrics*/) {}
  /// After the last epoch, or after an early stop.
  virtual void on_fit_end(Trainer& /*trainer*/) {}
  /// State carried in checkpoints so a resumed run behaves as an uninterrupted one.
  virtual void save(torch::serialize::OutputArchive& /*archive*/) const {}
  /// Restores the callback's state from a checkpoint.
  virtual void load(torch::serialize::InputArchive& /*archive*/) {}
  /// Key of this callback's state in checkpoints; empty for stateless callbacks.
  virtual std::string state_key() const { return ""; }
};

/// Trains a TrainTask for the epochs of a TrainConfig: batches, optimizer steps, schedule, validation, callbacks.
class Trainer {
 public:
  /// Builds a fresh optimizer (config.optimizer) over the task's parameter groups (trainable
  /// parameters only).
  Trainer(TrainTask& task, TrainConfig config, std::string stage, torch::Device device = torch::kCPU);

  /// Adds a callback; callbacks run in the order added.
  void add_callback(std::shared_ptr<Callback> callback);

  /// Adds parameters to the optimizer mid-training (gradual unfreezing), at `lr_scale` times the
  /// base learning rate; the schedule applies to them from the next epoch.
  void add_parameter_group(std::vector<torch::Tensor> parameters, double lr_scale);

  /// Trains from the current state to `config.epochs` or until a stop request. Returns the last
  /// epoch's metrics. Throws NonFiniteError on a non-finite loss, and Interrupted at the step after
  /// a SIGINT or SIGTERM noted by watch_for_interrupts. Batches are `train`'s, of its batch size
  /// (build it with `config.batch_size`, as run_stage does). Nothing is logged or written unless
  /// callbacks are added (ProgressReporter, MetricsWriter, CheckpointSaver in callbacks.h).
  ///
  /// In a data-parallel run (process_group() set when the Trainer is built) every rank calls this
  /// alike: each trains on its contiguous share of every batch (`batch_size` is the global batch),
  /// c10d's Reducer averages the gradients (weighted so that they are the global batch's mean
  /// gradient), metrics are summed across ranks, and only rank 0 writes checkpoints.
  Metrics fit(const BatchSource& train, const BatchSource* validation);

  /// Evaluates the task's validation loss on a source (eval mode, no gradients); each rank of a
  /// data-parallel run takes its share of every batch, and the metrics are summed across ranks.
  Metrics evaluate(const BatchSource& source, const std::string& prefix);

  /// What a non-finite loss or gradient does: stop with an error (default) or skip the step.
  void set_non_finite_policy(NonFinitePolicy policy) { on_non_finite_ = policy; }

  /// The precision of the training steps' forward passes (default: float32).
  void set_mixed_precision(MixedPrecision precision) { mixed_precision_ = precision; }

  /// Writes model, optimizer, trainer state (mid-epoch included), RNG state and callback states to
  /// a sealed file (sealed_file.h), atomically. Refuses (NonFiniteError) when a parameter is
  /// non-finite: no checkpoint holds a non-finite weight. In a data-parallel run every rank calls it:
  /// rank 0 writes, with every rank's generator state and the epoch's metric sums of all ranks.
  void save_checkpoint(const std::string& file);
  /// Restores everything save_checkpoint wrote; a checkpoint of another stage, or written by a run
  /// of another number of processes, is a DataError naming it.
  void load_checkpoint(const Checkpoint& checkpoint);
  /// load_checkpoint of Checkpoint(file): a damaged file is a DataError naming it.
  void load_checkpoint(const std::string& file);

  /// Ends the fit after the current epoch, for `reason`.
  void request_stop(std::string reason);
  /// Whether a stop was requested.
  bool stop_requested() const { return stop_requested_; }
  /// Why it was.
  const std::string& stop_reason() const { return stop_reason_; }

  /// Where training stands.
  const TrainerState& state() const { return state_; }
  /// The settings it trains with.
  const TrainConfig& config() const { return config_; }
  /// What it trains.
  TrainTask& task() { return task_; }
  /// The optimizer.
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  /// Number of batches in an epoch of the source being fitted.
  std::int64_t batches_per_epoch() const { return batches_per_epoch_; }

 private:
  void train_epoch(const BatchSource& train);
  void set_train_mode();
  std::string describe_non_finite(const Batch& batch, double loss);
  std::string first_non_finite_gradient();
  /// The sums of every rank added up (the sums themselves when running alone).
  MetricSums across_ranks(const MetricSums& sums) const;
  /// loss.backward(); in a data-parallel run a failure (of the all-reduce) names the lost ranks.
  void backward_across_ranks(const torch::Tensor& loss);

  TrainTask& task_;
  TrainConfig config_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  /// Learning rate of each optimizer group before the schedule.
  std::vector<double> base_lrs_;
  torch::Device device_;
  std::vector<torch::Tensor> parameters_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  TrainerState state_;
  /// Sums of the epoch in progress.
  MetricSums epoch_sums_;
  NonFinitePolicy on_non_finite_ = NonFinitePolicy::kError;
  MixedPrecision mixed_precision_ = MixedPrecision::kOff;
  std::int64_t batches_per_epoch_ = 0;
  bool stop_requested_ = false;
  std::string stop_reason_;
  std::shared_ptr<ProcessGroup> group_;
  std::unique_ptr<GradientAverager> averager_;
};

}  // namespace encore::core
