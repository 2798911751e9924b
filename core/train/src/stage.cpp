#include "encore/core/stage.h"

namespace encore::core {

std::optional<Metrics> run_stage(Stage& stage, const StageContext& context) {
  const auto step = context.resume ? context.resume->step_for(stage.name(), stage.module()) : ResumePlan::Step::kRun;
  if (step == ResumePlan::Step::kSkip) return std::nullopt;
  if (step == ResumePlan::Step::kRestoreAndSkip) {
    stage.finish(context);
    return std::nullopt;
  }
  stage.prepare(context);
  Trainer trainer(stage.task(), stage.config(), stage.name(), context.device);
  stage.attach(trainer);
  if (context.attach_callbacks) context.attach_callbacks(trainer);
  if (step == ResumePlan::Step::kContinue) {
    const auto& checkpoint = context.resume->checkpoint();
    stage.before_restore(trainer, checkpoint.state());
    trainer.load_checkpoint(checkpoint);
  }
  auto metrics = trainer.fit(stage.train(), stage.validation());
  stage.finish(context);
  return metrics;
}

}  // namespace encore::core
