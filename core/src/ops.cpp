#include "encore/core/ops.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <mutex>

#include "kernels.h"

namespace encore::core {

namespace {
thread_local std::int64_t batch_row_offset = 0;
}

BatchRowOffset::BatchRowOffset(std::int64_t first_row) : previous_(batch_row_offset) { batch_row_offset = first_row; }

BatchRowOffset::~BatchRowOffset() { batch_row_offset = previous_; }

std::int64_t BatchRowOffset::current() { return batch_row_offset; }

torch::Tensor masking_noise(const torch::Tensor& x, double level) {
  TORCH_CHECK(level >= 0 && level < 1, "masking level must be in [0, 1), got ", level);
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat32 || x.requires_grad()) {
    return x * torch::empty_like(x).bernoulli_(1.0 - level);
  }
  std::uint64_t seed = 0;
  {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    seed = at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
  }
  const auto drop_threshold = static_cast<std::uint32_t>(std::min(std::ldexp(level, 32), 4294967295.0));
  const auto input = x.contiguous();
  const auto row_width = input.dim() > 0 && input.size(0) > 0 ? input.numel() / input.size(0) : 0;
  const auto first_element = static_cast<std::uint64_t>(batch_row_offset * row_width);
  auto out = torch::empty_like(input);
  const float* in = input.data_ptr<float>();
  float* target = out.data_ptr<float>();
  at::parallel_for(0, input.numel(), 1 << 15, [&](std::int64_t begin, std::int64_t end) {
    kernels::masking_noise(in + begin, target + begin, end - begin, seed, first_element + static_cast<std::uint64_t>(begin),
                              drop_threshold);
  });
  return out;
}

}  // namespace encore::core
