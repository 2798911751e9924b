#include "support/toy_training.h"

#include "encore/core/train_section.h"
#include "support/support.h"

namespace encore::testing {

ToyNet::ToyNet()
    : linear(register_module("linear", torch::nn::Linear(4, 3))), dropout(register_module("dropout", torch::nn::Dropout(0.1))) {}

torch::Tensor ToyTask::training_loss(const core::Batch& batch, core::MetricSums&) {
  return torch::cross_entropy_loss(net->forward(batch.inputs), batch.labels);
}

core::Dataset toy_data(int n) {
  torch::manual_seed(5);
  core::Dataset d;
  d.labels = torch::arange(n, torch::kInt64).remainder(3);
  d.features = torch::randn({n, 4}) * 0.5 + torch::nn::functional::one_hot(d.labels, 4).to(torch::kFloat32) * 2;
  d.class_names = {"a", "b", "c"};
  return d;
}

core::TrainConfig adam_config(int epochs) {
  core::Json j = {
      {"epochs", epochs}, {"batch_size", 16}, {"optimizer", {{"type", "adam"}, {"lr", 0.05}}}, {"schedule", {{"type", "cosine"}}}};
  return core::parse_train_config(core::JsonReader(j), builtin_optimizers(), core::TrainConfig{});
}

void KillAfterStep::on_batch_end(core::Trainer& trainer, double, std::int64_t) {
  if (trainer.state().step != step) return;
  trainer.save_checkpoint(file);
  throw std::runtime_error("killed");
}

std::vector<torch::Tensor> weights(torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  for (const auto& p : module.parameters()) out.push_back(p.detach().clone());
  return out;
}

}  // namespace encore::testing
