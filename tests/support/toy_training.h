#pragma once
/// A toy training problem shared by the train part's tests: a softmax classifier with dropout (so
/// that resuming depends on the restored generator state) on three well-separated classes.

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "encore/core/trainer.h"

namespace encore::testing {

struct ToyNet : torch::nn::Module {
  ToyNet();
  torch::Tensor forward(const torch::Tensor& x) { return linear(dropout(x)); }
  torch::nn::Linear linear;
  torch::nn::Dropout dropout;
};

class ToyTask : public core::TrainTask {
 public:
  ToyTask() : net(std::make_shared<ToyNet>()) {}
  torch::nn::Module& module() override { return *net; }
  torch::Tensor training_loss(const core::Batch& batch, core::MetricSums& metrics) override;
  std::shared_ptr<ToyNet> net;
};

/// `n` examples of 4 features in 3 classes.
core::Dataset toy_data(int n = 120);

/// Adam at lr 0.05 with a cosine schedule, batches of 16.
core::TrainConfig adam_config(int epochs);

/// Saves a checkpoint after a given step and then dies, as a killed process would.
struct KillAfterStep : core::Callback {
  KillAfterStep(std::int64_t step, std::string file) : step(step), file(std::move(file)) {}
  void on_batch_end(core::Trainer& trainer, double loss, std::int64_t batch_size) override;
  std::int64_t step;
  std::string file;
};

/// Copies of a module's parameters.
std::vector<torch::Tensor> weights(torch::nn::Module& module);

}  // namespace encore::testing
