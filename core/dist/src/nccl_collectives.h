#pragma once
// NCCL's collectives for the CUDA tensors of a data-parallel run (the weights broadcast at a stage's
// start, the gradient buckets of each step); Gloo keeps the CPU tensors and the texts.

#include <memory>
#include <vector>

#include <torch/types.h>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "encore/core/distributed.h"

namespace encore::core::detail {

/// NCCL collectives over one communicator of the whole world, one GPU per process (its tensors' device).
class NcclCollectives {
 public:
  virtual ~NcclCollectives() = default;
  /// Sums `tensors` (one CUDA tensor) across the ranks, in place.
  virtual c10::intrusive_ptr<c10d::Work> allreduce(std::vector<torch::Tensor>& tensors) = 0;
  /// Rank 0's `tensors` (one CUDA tensor) to every rank, in place.
  virtual c10::intrusive_ptr<c10d::Work> broadcast(std::vector<torch::Tensor>& tensors) = 0;
};

/// Opens NCCL's communicator through `store` (every rank calls it at the same point of the run).
/// Throws DistributedError when this LibTorch was built without NCCL.
std::unique_ptr<NcclCollectives> open_nccl(const c10::intrusive_ptr<c10d::Store>& store, const WorldInfo& world);

}  // namespace encore::core::detail
