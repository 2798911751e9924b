#pragma once
/// The stage runner. Every stage that trains (a greedy layer, end-to-end pretraining, each
/// fine-tuning phase, and whatever comes next) runs through run_stage, the one place that knows the
/// order of a stage's protocol: resume decision, skip, data, Trainer, callbacks, checkpoint
/// restore, fit. A new stage is a Stage subclass and a call, not a copy of the protocol.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <torch/types.h>

#include "encore/core/resume.h"
#include "encore/core/trainer.h"

namespace encore::core {

/// What the stages of a run share: the device, the run's seed (random.h derives each stage's
/// stream from it), the callbacks every stage's Trainer gets (metrics, checkpoints, progress), and
/// the resume plan of an interrupted run.
struct StageContext {
  /// Where the stages train.
  torch::Device device = torch::kCPU;
  /// The run seed.
  std::uint64_t seed = 1;
  /// Adds the run's callbacks to each stage's Trainer.
  std::function<void(Trainer&)> attach_callbacks;
  /// The plan of a resumed run; null for a new one.
  std::shared_ptr<ResumePlan> resume;
};

/// One stage that trains. The runner calls prepare() only when the stage runs, after a resumed
/// run's weights are in place (a greedy layer's input codes are computed from them), and then
/// asks for the task and the data.
class Stage {
 public:
  virtual ~Stage() = default;
  /// Name in metrics, checkpoints and messages ("pretrain/layer0", "finetune/head_only").
  virtual std::string name() const = 0;
  /// The stage's training settings.
  virtual const TrainConfig& config() const = 0;
  /// The module whose weights a resumed run restores before the stage is prepared.
  virtual torch::nn::Module& module() = 0;
  /// Builds the task and the batch sources.
  virtual void prepare(const StageContext& context) = 0;
  /// What the stage trains (valid after prepare()).
  virtual TrainTask& task() = 0;
  /// Training data (valid after prepare()).
  virtual const BatchSource& train() const = 0;
  /// Validation data; nullptr for none.
  virtual const BatchSource* validation() const = 0;
  /// Adds the stage's own callbacks; they run before the run's.
  virtual void attach(Trainer& /*trainer*/) {}
  /// Brings a continued stage's Trainer to the shape it had at the checkpoint (optimizer groups
  /// added by then) before the checkpoint's state is loaded into it.
  virtual void before_restore(Trainer& /*trainer*/, const TrainerState& /*saved*/) {}
  /// Work on the trained weights that follows training and must not change what its checkpoints
  /// hold: run after fit, and again when a resumed run restores the stage's finished checkpoint
  /// (which holds the weights as fit left them), so it must depend on the weights and data only.
  virtual void finish(const StageContext& /*context*/) {}
};

/// Runs a stage: nullopt when the resume plan skips it (finishing it where it restores the stage's
/// own finished checkpoint); otherwise prepares it, builds its Trainer with the stage's callbacks
/// and the run's, restores a continued stage from the checkpoint, fits and finishes. Returns the
/// last epoch's metrics.
std::optional<Metrics> run_stage(Stage& stage, const StageContext& context);

}  // namespace encore::core
