#pragma once
/// Tensor operations of the training step done in one pass where LibTorch needs several.

#include <cstdint>

#include <torch/types.h>

namespace encore::core {

/// x with each element set to 0 with probability `level`, in one pass. The mask comes from one draw
/// of LibTorch's default CPU generator (so seeding and checkpointed generator state govern it) and is
/// the same for any number of threads, and for any number of data-parallel ranks (BatchRowOffset). Float32 CPU tensors that need no gradient take the one-pass
/// path; others are masked with tensor operations.
torch::Tensor masking_noise(const torch::Tensor& x, double level);

/// While alive, the rows of the batches this thread masks are rows `first_row`, `first_row + 1`, ...
/// of a larger batch: a data-parallel rank holding rows [first_row, ...) of the global batch draws
/// the masks one process would draw for those rows (and ranks do not repeat each other's masks).
class BatchRowOffset {
 public:
  explicit BatchRowOffset(std::int64_t first_row);
  ~BatchRowOffset();
  BatchRowOffset(const BatchRowOffset&) = delete;
  BatchRowOffset& operator=(const BatchRowOffset&) = delete;
  static std::int64_t current();

 private:
  std::int64_t previous_;
};

}  // namespace encore::core
