// A LibTorch with NCCL (the CUDA builds of PyPI's torch): c10d's ProcessGroupNCCL.
#include "nccl_collectives.h"

#include <cstdlib>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

namespace encore::core::detail {

namespace {

class ProcessGroupNcclCollectives : public NcclCollectives {
 public:
  explicit ProcessGroupNcclCollectives(c10::intrusive_ptr<c10d::ProcessGroupNCCL> group) : group_(std::move(group)) {}
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<torch::Tensor>& tensors) override { return group_->allreduce(tensors); }
  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<torch::Tensor>& tensors) override { return group_->broadcast(tensors); }

 private:
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> group_;
};

}  // namespace

std::unique_ptr<NcclCollectives> open_nccl(const c10::intrusive_ptr<c10d::Store>& store, const WorldInfo& world) {
  // Blocking waits: a collective that a lost rank never joins ends in an exception after the
  // timeout (which ProcessGroup::fail turns into the lost rank's name) rather than in NCCL's
  // watchdog killing the process. A value set by the user stands.
  setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = world.timeout;
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("nccl", store);
  return std::make_unique<ProcessGroupNcclCollectives>(
      c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, world.rank, world.world_size, options));
}

}  // namespace encore::core::detail
