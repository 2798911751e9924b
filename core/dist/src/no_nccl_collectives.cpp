// A LibTorch without NCCL (Debian's, CPU only): CUDA tensors cannot be averaged across processes.
#include "nccl_collectives.h"

#include <fmt/format.h>

namespace encore::core::detail {

std::unique_ptr<NcclCollectives> open_nccl(const c10::intrusive_ptr<c10d::Store>&, const WorldInfo& world) {
  throw DistributedError(
      fmt::format("rank {} of {}: training on CUDA across processes needs NCCL, and this LibTorch was built "
                  "without it; build encore against a CUDA LibTorch (scripts/setup --libtorch pypi)",
                  world.rank, world.world_size));
}

}  // namespace encore::core::detail
