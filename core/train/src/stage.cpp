#include "encore/core/stage.h"

namespace encore::core {

std::optional<Metrics> run_stage(Stage& stage, const StageContext& context) {
  const auto step = context.resume ? context.resume->step_for(stage.name(), stage.module()) : ResumePlan::Step::kRun;
  if (step == ResumePlan::Step::kSkip || step == ResumePlan::Step::kRestoreAndSkip) return std::nullopt;
  stage.prepare(context);
  Trainer trainer(stage.task(), stage.config(), stage.name(), context.device);
  stage.attach(trainer);
  if (context.attach_callbacks) context.attach_callbacks(trainer);
  if (step == ResumePlan::Step::kContinue) {
    const auto& checkpoint = context.resume->checkpoint();
    stage.before_restore(trainer, checkpoint.state());
    trainer.load_checkpoint(checkpoint);
  }
  return trainer.fit(stage.train(), stage.validation());
}

}  // namespace encore::core
