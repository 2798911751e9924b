#pragma once
/// Resuming an interrupted run: which checkpoint to continue from, and what each stage does then.
/// Every resume decision of a run is made here.

#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "encore/core/checkpoint.h"

namespace encore::core {

/// The newest checkpoint in a CheckpointSaver directory that verifies, read: latest.pt, else
/// previous.pt (a kill can land between their rotation and the next write). Messages about
/// damaged files go to `log`. Empty when there is none; DataError when there are some but every
/// one is damaged.
std::optional<Checkpoint> newest_valid_checkpoint(const std::filesystem::path& directory, std::ostream& log);

/// Where an interrupted run continues from its checkpoint. Stages run in a fixed order, so the
/// stages before the checkpoint's finished earlier; asked stage by stage, in order.
class ResumePlan {
 public:
  /// The plan of a run resumed from `checkpoint`.
  explicit ResumePlan(Checkpoint checkpoint);
  /// What to do with a stage.
  enum class Step {
    /// Finished before the checkpoint's stage: nothing to do.
    kSkip,
    /// The checkpoint's stage, finished: restore its weights, train nothing.
    kRestoreAndSkip,
    /// The checkpoint's stage, interrupted: restore everything and train on.
    kContinue,
    /// After the checkpoint's stage: train from the start.
    kRun,
  };
  /// The step of `stage`. For kRestoreAndSkip and kContinue the checkpoint's weights are loaded
  /// into `module` first (the stages after it, and a greedy stage's input codes, build on them);
  /// kRestoreAndSkip restores the generator too, a continued stage's Trainer restores it with the
  /// rest of its state.
  Step step_for(const std::string& stage, torch::nn::Module& module);
  /// True when the checkpoint's stage is none of `stages`, which all run before it: a run
  /// interrupted while fine-tuning has its pretraining behind it.
  bool is_past(const std::vector<std::string>& stages) const;
  /// The checkpoint resumed from.
  const Checkpoint& checkpoint() const { return checkpoint_; }

 private:
  Checkpoint checkpoint_;
  bool reached_ = false;
};

/// One line for the log: where a run resumes ("stage pretrain/layer1, 3 epochs done, at batch 5 of
/// epoch 4").
std::string describe_resume_point(const Checkpoint& checkpoint);

}  // namespace encore::core
