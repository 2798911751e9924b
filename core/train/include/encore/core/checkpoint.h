#pragma once
/// The checkpoint format: a sealed file (sealed_file.h) holding a LibTorch archive with the module's
/// weights, the optimizer's state, the trainer's position, every rank's generator state, the
/// part-done epoch's metric sums and the callbacks' states. Written atomically; verified before
/// LibTorch parses it; the same run writes the same bytes.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include "encore/core/trainer.h"

namespace encore::core {

/// The state of any torch::optim::Optimizer (a user's own included), through LibTorch's own
/// per-parameter state and option serialisation, keyed by group and parameter position instead of
/// tensor addresses (which differ between processes): identical runs write identical bytes, and
/// the optimizer's own load() restores it into a fresh optimizer over the same parameters.
void save_optimizer_state(const torch::optim::Optimizer& optimizer, torch::serialize::OutputArchive& archive);
/// Restores what save_optimizer_state wrote; a different number of groups or parameters is a
/// DataError naming `file`.
void load_optimizer_state(torch::optim::Optimizer& optimizer, torch::serialize::InputArchive& archive, const std::string& file);

/// What a checkpoint holds.
struct CheckpointContents {
  /// The weights.
  const torch::nn::Module* module = nullptr;
  /// The optimizer's state.
  const torch::optim::Optimizer* optimizer = nullptr;
  /// The trainer's position (stage, epoch, step) and generator state.
  TrainerState state;
  /// The part-done epoch's metric sums (MetricSums::to_json), of all ranks.
  Json epoch_sums;
  /// The default CPU generator's state of each rank, rank 0 first.
  std::vector<torch::Tensor> rng_states;
  /// Callbacks with state, under their state_key().
  std::vector<const Callback*> callbacks;
};

/// Writes a checkpoint file atomically.
void write_checkpoint(const std::filesystem::path& file, const CheckpointContents& contents);

/// A checkpoint file read and verified once (its checksum, then LibTorch's archive), with its
/// trainer state; its parts are loaded from memory.
class Checkpoint {
 public:
  /// A damaged or foreign file is a DataError naming it.
  explicit Checkpoint(std::filesystem::path file);
  /// The file it was read from.
  const std::filesystem::path& file() const { return file_; }
  /// Where training stood when it was written.
  const TrainerState& state() const { return state_; }
  /// Number of processes of the run that wrote it.
  std::int64_t world_size() const { return world_size_; }
  /// DataError unless this run has as many processes as the one that wrote the checkpoint (each
  /// rank's generator state is in it).
  void check_world_size() const;
  /// Loads the module weights, and with `with_rng_state` this rank's generator state (the next
  /// stage of a run resumed after a finished stage draws what it would have drawn).
  void load_module(torch::nn::Module& module, bool with_rng_state) const;
  /// Sets this rank's default CPU generator to its state at the checkpoint.
  void restore_rng_state() const;
  /// Loads the optimizer's state (save_optimizer_state).
  void load_optimizer(torch::optim::Optimizer& optimizer) const;
  /// The part-done epoch's metric sums, all ranks' added up.
  MetricSums epoch_sums() const;
  /// Loads one callback's state; a checkpoint without it is a DataError naming the callback.
  void load_callback(Callback& callback) const;

 private:
  std::filesystem::path file_;
  // Reading from a LibTorch archive is not const; the checkpoint is never changed.
  std::shared_ptr<torch::serialize::InputArchive> archive_;
  TrainerState state_;
  std::int64_t world_size_ = 1;
};

}  // namespace encore::core
