#include "encore/core/random.h"

#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

namespace encore::core {

std::uint64_t stream_seed(std::uint64_t run_seed, RandomStream stream, std::uint64_t index) {
  switch (stream) {
    case RandomStream::kValidationSplit:
      return run_seed;
    case RandomStream::kLabelledSubset:
      return run_seed + 1;
    case RandomStream::kGreedyLayer:
      return run_seed + index;
    case RandomStream::kEndToEnd:
      return run_seed + 100;
    case RandomStream::kFinetunePhase:
      return run_seed + 200 + index;
    case RandomStream::kProductCheck:
      return 7;
    case RandomStream::kFinetuneUnlabelled:
      return run_seed + 300 + index;
    case RandomStream::kVariationalBound:
      return run_seed + 400;
  }
  TORCH_CHECK(false, "unknown random stream ", static_cast<int>(stream));
}

torch::Generator seeded_generator(std::uint64_t seed, std::uint64_t use) {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (use + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return at::make_generator<at::CPUGeneratorImpl>(z);
}

torch::Tensor default_generator_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_default_generator_state(const torch::Tensor& state) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

}  // namespace encore::core
