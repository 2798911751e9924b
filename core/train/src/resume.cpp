#include "encore/core/resume.h"

#include <algorithm>

#include <fmt/format.h>

#include "encore/core/callbacks.h"
#include "encore/core/errors.h"

namespace encore::core {

std::optional<Checkpoint> newest_valid_checkpoint(const std::filesystem::path& directory, std::ostream& log) {
  std::string damage;
  for (const char* name : {CheckpointSaver::kLatest, CheckpointSaver::kPrevious}) {
    const auto file = directory / name;
    if (!std::filesystem::exists(file)) continue;
    try {
      return Checkpoint(file);
    } catch (const DataError& e) {
      log << "skipping a damaged checkpoint: " << e.what() << "\n";
      damage += std::string(damage.empty() ? "" : "; ") + e.what();
    }
  }
  // Checkpoints exist but none verifies: starting over silently would hide the damage.
  if (!damage.empty()) throw DataError("no usable checkpoint: " + damage);
  return std::nullopt;
}

ResumePlan::ResumePlan(Checkpoint checkpoint) : checkpoint_(std::move(checkpoint)) {}

ResumePlan::Step ResumePlan::step_for(const std::string& stage, torch::nn::Module& module) {
  if (reached_) return Step::kRun;
  if (stage != checkpoint_.state().stage) return Step::kSkip;
  reached_ = true;
  const auto step = checkpoint_.state().finished ? Step::kRestoreAndSkip : Step::kContinue;
  checkpoint_.load_module(module, step == Step::kRestoreAndSkip);
  return step;
}

bool ResumePlan::is_past(const std::vector<std::string>& stages) const {
  return std::find(stages.begin(), stages.end(), checkpoint_.state().stage) == stages.end();
}

std::string describe_resume_point(const Checkpoint& checkpoint) {
  const auto& at = checkpoint.state();
  return fmt::format("stage {}, {} epochs done{}", at.stage, at.epoch,
                     at.finished       ? " (stage finished)"
                     : at.position > 0 ? fmt::format(", at batch {} of epoch {}", at.position + 1, at.epoch + 1)
                                       : std::string());
}

}  // namespace encore::core
