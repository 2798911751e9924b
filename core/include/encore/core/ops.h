#pragma once
/// Tensor operations of the training step done in one pass where LibTorch needs several.

#include <torch/types.h>

namespace encore::core {

/// x with each element set to 0 with probability `level`, in one pass. The mask comes from one draw
/// of LibTorch's default CPU generator (so seeding and checkpointed generator state govern it) and is
/// the same for any number of threads. Float32 CPU tensors that need no gradient take the one-pass
/// path; others are masked with tensor operations.
torch::Tensor masking_noise(const torch::Tensor& x, double level);

}  // namespace encore::core
