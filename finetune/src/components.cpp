#include "encore/finetune/components.h"

namespace encore::finetune {

Components builtin_components() {
  Components c;
  core::register_builtin_optimizers(c.optimizers);
  models::register_builtin_models(c.models);
  register_builtin_heads(c.heads);
  return c;
}

std::vector<std::pair<std::string, std::string>> builtin_callbacks() {
  return {{"early_stopping", "stops a stage when a monitored metric stops improving; restores the best weights"},
          {"metrics", "appends each epoch's metrics to metrics.jsonl"},
          {"checkpoint",
           "saves sealed checkpoints (checkpoints/latest.pt, previous.pt) after each epoch, every checkpoint_every_steps steps and "
           "at a stage's end"},
          {"progress", "reports progress on stderr: a bar on a terminal, a line per epoch otherwise"},
          {"gradual_unfreezing", "makes one more block trainable every n epochs of a fine-tuning phase"}};
}

}  // namespace encore::finetune
