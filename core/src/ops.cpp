#include "encore/core/ops.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "kernels.h"

namespace encore::core {

namespace {
thread_local std::int64_t batch_row_offset = 0;

// The tensors encore's one-pass kernels handle.
bool cpu_float32(const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; }
}  // namespace

BatchRowOffset::BatchRowOffset(std::int64_t first_row) : previous_(batch_row_offset) { batch_row_offset = first_row; }

BatchRowOffset::~BatchRowOffset() { batch_row_offset = previous_; }

std::int64_t BatchRowOffset::current() { return batch_row_offset; }

torch::Tensor masking_noise(const torch::Tensor& x, double level) {
  TORCH_CHECK(level >= 0 && level < 1, "masking level must be in [0, 1), got ", level);
  if (!cpu_float32(x) || x.requires_grad()) {
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

namespace {

// A block must be worth waking a thread for.
constexpr std::int64_t kMinElementsPerBlock = 1 << 16;

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// y = x W^T + b for a 2-D contiguous x, each thread computing the columns of y of its block of W's
// rows. Called from inside for_each_owned_rows, ATen's BLAS runs single-threaded on each block.
struct OwnedLinear : torch::autograd::Function<OwnedLinear> {
  // The bias is optional: LibTorch's custom functions take an absent tensor argument only as such.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const c10::optional<torch::Tensor>& bias) {
    const auto rows = weight.size(0);
    auto y = torch::empty({x.size(0), rows}, x.options());
    for_each_owned_rows(rows, weight.size(1), [&](std::int64_t, std::int64_t first, std::int64_t end) {
      auto block = y.narrow(1, first, end - first);
      const auto weight_rows = weight.narrow(0, first, end - first).t();
      if (bias) {
        at::addmm_out(block, bias->narrow(0, first, end - first), x, weight_rows);
      } else {
        at::mm_out(block, x, weight_rows);
      }
    });
    ctx->save_for_backward({x, weight});
    ctx->saved_data["has_bias"] = bias.has_value();
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto grad_y = grad_outputs[0].contiguous();
    const bool want_x = ctx->needs_input_grad(0);
    const bool want_weight = ctx->needs_input_grad(1);
    const bool want_bias = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2);
    const auto rows = weight.size(0);
    const auto blocks = owned_row_blocks(rows, weight.size(1));
    torch::Tensor grad_weight = want_weight ? torch::empty_like(weight) : torch::Tensor();
    torch::Tensor grad_bias = want_bias ? torch::empty({rows}, weight.options()) : torch::Tensor();
    // d loss / dx = grad_y W sums over all of W's rows: each block adds its rows' share into a
    // partial product of its own, summed afterwards (the batch-sized partials are far smaller than
    // the weight blocks they spare from crossing between cores).
    torch::Tensor partials = want_x ? torch::empty({blocks, x.size(0), x.size(1)}, x.options()) : torch::Tensor();
    for_each_owned_rows(rows, weight.size(1), [&](std::int64_t block, std::int64_t first, std::int64_t end) {
      const auto grad_block = grad_y.narrow(1, first, end - first);
      if (want_weight) {
        auto rows_of_grad = grad_weight.narrow(0, first, end - first);
        at::mm_out(rows_of_grad, grad_block.t(), x);
      }
      if (want_bias) {
        auto rows_of_grad = grad_bias.narrow(0, first, end - first);
        at::sum_out(rows_of_grad, grad_block, {0});
      }
      if (want_x) {
        auto partial = partials[block];
        at::mm_out(partial, grad_block, weight.narrow(0, first, end - first));
      }
    });
    torch::Tensor grad_x;
    if (want_x) grad_x = blocks == 1 ? partials[0] : partials.sum(0);
    return {grad_x, grad_weight, grad_bias};
  }
};

// Chunks of the loss's element loops: fixed, so the sum's order does not depend on the thread count.
constexpr std::int64_t kLossChunk = 1 << 14;

std::int64_t loss_chunks(std::int64_t n) { return (n + kLossChunk - 1) / kLossChunk; }

template <class F>
void for_each_loss_chunk(std::int64_t n, const F& f) {
  at::parallel_for(0, loss_chunks(n), 1, [&](std::int64_t begin, std::int64_t end) {
    for (auto chunk = begin; chunk < end; ++chunk) {
      const auto first = chunk * kLossChunk;
      f(chunk, first, std::min(n, first + kLossChunk) - first);
    }
  });
}

struct LogisticLossSum : torch::autograd::Function<LogisticLossSum> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& logits, const torch::Tensor& targets) {
    const auto z = logits.contiguous();
    const auto t = targets.contiguous();
    const auto n = z.numel();
    std::vector<double> chunk_sums(static_cast<std::size_t>(loss_chunks(n)), 0.0);
    const float* zs = z.data_ptr<float>();
    const float* ts = t.data_ptr<float>();
    for_each_loss_chunk(n, [&](std::int64_t chunk, std::int64_t first, std::int64_t count) {
      chunk_sums[static_cast<std::size_t>(chunk)] = kernels::logistic_loss_sum(zs + first, ts + first, count);
    });
    double total = 0;
    for (const double s : chunk_sums) total += s;
    ctx->save_for_backward({z, t});
    return torch::scalar_tensor(total, z.options());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& z = saved[0];
    const auto& t = saved[1];
    const auto scale = grad_outputs[0].item<float>();
    auto grad = torch::empty_like(z);
    const float* zs = z.data_ptr<float>();
    const float* ts = t.data_ptr<float>();
    float* out = grad.data_ptr<float>();
    for_each_loss_chunk(z.numel(), [&](std::int64_t, std::int64_t first, std::int64_t count) {
      kernels::logistic_loss_gradient(zs + first, ts + first, scale, out + first, count);
    });
    return {grad, torch::Tensor()};
  }
};

bool owned_linear_applies(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias) {
  return input.dim() >= 1 && weight.dim() == 2 && cpu_float32(input) && cpu_float32(weight) && weight.is_contiguous() &&
         (!bias.defined() || (cpu_float32(bias) && bias.dim() == 1 && bias.is_contiguous())) && input.size(-1) == weight.size(1) &&
         input.numel() > 0;
}

}  // namespace

std::int64_t owned_row_blocks(std::int64_t rows, std::int64_t row_size) {
  if (rows <= 0) return 1;
  const std::int64_t by_size = rows * row_size / kMinElementsPerBlock;
  return std::max<std::int64_t>(1, std::min({static_cast<std::int64_t>(at::get_num_threads()), by_size, rows}));
}

void for_each_owned_rows(std::int64_t rows, std::int64_t row_size,
                         const std::function<void(std::int64_t, std::int64_t, std::int64_t)>& fn) {
  const auto blocks = owned_row_blocks(rows, row_size);
  // Blocks differ by at most a row, and none is empty (there are never more blocks than rows).
  const auto run = [&](std::int64_t block) { fn(block, block * rows / blocks, (block + 1) * rows / blocks); };
  if (blocks == 1) {
    run(0);
    return;
  }
  // A grain of one block: ATen's OpenMP loop then gives block b to thread b, every time. Grad mode
  // is per thread and ATen's loop does not carry it over: the blocks run under the caller's.
  const bool grad_mode = at::GradMode::is_enabled();
  at::parallel_for(0, blocks, 1, [&](std::int64_t begin, std::int64_t end) {
    at::AutoGradMode same_mode(grad_mode);
    for (auto block = begin; block < end; ++block) run(block);
  });
}

torch::Tensor logistic_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
  if (!cpu_float32(logits) || !cpu_float32(targets) || targets.requires_grad() || logits.sizes() != targets.sizes()) {
    return torch::binary_cross_entropy_with_logits(logits, targets, {}, {}, at::Reduction::Sum);
  }
  return LogisticLossSum::apply(logits, targets);
}

torch::Tensor linear(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (!owned_linear_applies(input, weight, bias)) return torch::linear(input, weight, bias);
  auto sizes = input.sizes().vec();
  const auto x = input.reshape({-1, weight.size(1)}).contiguous();
  sizes.back() = weight.size(0);
  const auto optional_bias = bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt;
  return OwnedLinear::apply(x, weight, optional_bias).view(sizes);
}

}  // namespace encore::core
