#pragma once
/// Named random streams. Every random choice of a run draws from a stream named here, derived from
/// the run's seed alone, so that a change in one stage never moves another stage's draws.
///
/// Each stream, the seed of its generators, and what draws from it:
/// - LibTorch's default generator: the run seed (seed_everything); weight initialisation,
///   corruption noise, dropout; saved in checkpoints per rank.
/// - kValidationSplit: seed; the stratified validation split.
/// - kLabelledSubset: seed + 1; which examples keep their labels.
/// - kGreedyLayer, layer k: seed + k; the batch order of greedy layer k.
/// - kEndToEnd: seed + 100; the batch order of end-to-end pretraining.
/// - kFinetunePhase, phase i: seed + 200 + i; the (labelled) batch order of fine-tuning phase i.
/// - kFinetuneUnlabelled, phase i: seed + 300 + i; the unlabelled batch order of semi-supervised phase i.
/// - kProductCheck: 7 (any run); the matrices of the BLAS correctness check.
/// - kVariationalBound: seed + 400; the latent samples of a variational model's test ELBO
///   (drawn with LibTorch's default generator set to this seed, its state put back after).
///
/// From a stream's seed, the generator of one draw is seeded_generator(seed, use): kClassShuffle
/// orders each class's examples for a split, kEpochOrder + e orders the batches of epoch e. The
/// offsets are those encore has always used, so a seed gives the same run as before they were named.

#include <cstdint>

#include <torch/types.h>

namespace encore::core {

/// The named streams of a run (the table above).
enum class RandomStream {
  kValidationSplit,
  kLabelledSubset,
  kGreedyLayer,
  kEndToEnd,
  kFinetunePhase,
  kProductCheck,
  kFinetuneUnlabelled,
  kVariationalBound,
};

/// The seed of a stream of a run with seed `run_seed`; `index` is the layer or phase number.
std::uint64_t stream_seed(std::uint64_t run_seed, RandomStream stream, std::uint64_t index = 0);

/// Uses of one stream's seed (the `use` of seeded_generator).
constexpr std::uint64_t kClassShuffle = 1;
/// Plus the epoch number.
constexpr std::uint64_t kEpochOrder = 1000;

/// A CPU generator whose draws depend only on (seed, use): splitmix64 of the pair, so nearby seeds
/// and uses give unrelated generators.
torch::Generator seeded_generator(std::uint64_t seed, std::uint64_t use = 0);

/// The state of LibTorch's default CPU generator (a uint8 tensor), and setting it back.
torch::Tensor default_generator_state();
/// Sets LibTorch's default CPU generator to a state from default_generator_state().
void set_default_generator_state(const torch::Tensor& state);

}  // namespace encore::core
