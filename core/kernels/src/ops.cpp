#include "encore/core/ops.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <omp.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <optional>
#include <vector>

#include "encore/core/libtorch.h"
#include "kernels.h"

namespace encore::core {

namespace {
thread_local std::int64_t batch_row_offset = 0;
std::atomic<bool> cpu_kernels{true};
}  // namespace

void use_cpu_kernels(bool enabled) { cpu_kernels = enabled; }

bool cpu_kernels_enabled() { return cpu_kernels; }

bool cpu_kernel_takes(const torch::Tensor& t) {
  // Under autocast LibTorch's own operations run, so that autocast chooses their precision.
  return cpu_kernels && t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && !libtorch::autocast_enabled(torch::kCPU);
}

BatchRowOffset::BatchRowOffset(std::int64_t first_row) : previous_(batch_row_offset) { batch_row_offset = first_row; }

BatchRowOffset::~BatchRowOffset() { batch_row_offset = previous_; }

std::int64_t BatchRowOffset::current() { return batch_row_offset; }

namespace {

constexpr std::int64_t kLow32Bits = 0xffffffff;

// h * factor modulo 2^32 for int64 tensors of 32-bit values, in two products that stay far inside
// int64 (one full product would overflow it).
torch::Tensor times_modulo_2_32(const torch::Tensor& h, std::uint32_t factor) {
  const auto low = h * static_cast<std::int64_t>(factor & 0xffffu);
  const auto high = torch::bitwise_left_shift((h * static_cast<std::int64_t>(factor >> 16)).bitwise_and(0xffff), 16);
  return (low + high).bitwise_and(kLow32Bits);
}

// kernels::mix32 (MurmurHash3's finaliser) in tensor operations.
torch::Tensor mix32(torch::Tensor h) {
  h = h.bitwise_xor(torch::bitwise_right_shift(h, 16));
  h = times_modulo_2_32(h, 0x85ebca6bu);
  h = h.bitwise_xor(torch::bitwise_right_shift(h, 13));
  h = times_modulo_2_32(h, 0xc2b2ae35u);
  return h.bitwise_xor(torch::bitwise_right_shift(h, 16));
}

// 32-bit hashes (int64 tensor on `options`' device) of the element counters first_element, ...,
// first_element + count - 1 under `seed`: kernels::masking_noise's hash in tensor operations.
torch::Tensor element_hashes(std::int64_t count, const torch::TensorOptions& options, std::uint64_t seed, std::uint64_t first_element) {
  const auto counter =
      (torch::arange(count, options.dtype(torch::kInt64)) + static_cast<std::int64_t>(first_element & kLow32Bits)).bitwise_and(kLow32Bits);
  const auto seed_low = static_cast<std::int64_t>(seed & kLow32Bits);
  const auto seed_high = static_cast<std::int64_t>(seed >> 32);
  return mix32(mix32((times_modulo_2_32(counter, 0x9e3779b9u) + seed_low).bitwise_and(kLow32Bits)).bitwise_xor(seed_high));
}

// kernels::masking_noise's mask for x's elements, counted from `first_element`, in tensor
// operations on x's device: true where the element is kept.
torch::Tensor kept_elements(const torch::Tensor& x, std::uint64_t seed, std::uint64_t first_element, std::uint32_t drop_threshold) {
  return element_hashes(x.numel(), x.options(), seed, first_element).ge(static_cast<std::int64_t>(drop_threshold)).view(x.sizes());
}

// One draw of LibTorch's default CPU generator: what a noise of the whole batch is keyed by.
std::uint64_t noise_seed() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

// The index of x's first element in the global batch (BatchRowOffset).
std::uint64_t first_element_of(const torch::Tensor& x) {
  const auto row_width = x.dim() > 0 && x.size(0) > 0 ? x.numel() / x.size(0) : 0;
  return static_cast<std::uint64_t>(batch_row_offset * row_width);
}

}  // namespace

torch::Tensor masking_noise(const torch::Tensor& x, double level) {
  TORCH_CHECK(level >= 0 && level < 1, "masking level must be in [0, 1), got ", level);
  const auto seed = noise_seed();
  const auto drop_threshold = static_cast<std::uint32_t>(std::min(std::ldexp(level, 32), 4294967295.0));
  const auto first_element = first_element_of(x);
  if (!cpu_kernel_takes(x) || x.requires_grad()) {
    return torch::where(kept_elements(x, seed, first_element, drop_threshold), x, torch::zeros({}, x.options()));
  }
  const auto input = x.contiguous();
  auto out = torch::empty_like(input);
  const float* in = input.data_ptr<float>();
  float* target = out.data_ptr<float>();
  at::parallel_for(0, input.numel(), 1 << 15, [&](std::int64_t begin, std::int64_t end) {
    kernels::masking_noise(in + begin, target + begin, end - begin, seed, first_element + static_cast<std::uint64_t>(begin),
                           drop_threshold);
  });
  return out;
}

torch::Tensor gaussian_noise_like(const torch::Tensor& x) {
  const auto seed = noise_seed();
  const auto first_element = first_element_of(x);
  // Box-Muller from two independent hashes of each element's position: u1 in (0, 1), u2 in [0, 1).
  constexpr double kTwoTo32 = 4294967296.0;
  const auto u1 = (element_hashes(x.numel(), x.options(), seed, first_element).to(torch::kFloat64) + 0.5) / kTwoTo32;
  const auto u2 = element_hashes(x.numel(), x.options(), seed ^ 0x5bd1e9955bd1e995ULL, first_element).to(torch::kFloat64) / kTwoTo32;
  return (torch::sqrt(-2.0 * torch::log(u1)) * torch::cos(2.0 * M_PI * u2)).to(x.scalar_type()).view(x.sizes());
}

torch::Tensor uniform_noise_like(const torch::Tensor& x) {
  // The hashes' top 24 bits: exact in float32 too, so no value rounds up to 1.
  constexpr double kTwoTo24 = 16777216.0;
  return (element_hashes(x.numel(), x.options(), noise_seed(), first_element_of(x)).bitwise_right_shift(8).to(torch::kFloat64) / kTwoTo24)
      .to(x.scalar_type())
      .view(x.sizes());
}

namespace {

// A block must be worth waking a thread for.
constexpr std::int64_t kMinElementsPerBlock = 1 << 16;

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Block b's rows of a parameter of `rows` rows split into `blocks`: blocks differ by at most a row,
// and none is empty (there are never more blocks than rows).
std::pair<std::int64_t, std::int64_t> block_rows(std::int64_t block, std::int64_t rows, std::int64_t blocks) {
  return {block * rows / blocks, (block + 1) * rows / blocks};
}

using BlockStep = std::function<void(std::int64_t block)>;

// Runs each step for every block, block b on thread b of the OpenMP team ATen's operations use (the
// same thread every call), every block finishing a step before any block starts the next. With one
// block, or inside another parallel region, the blocks run on the calling thread in turn.
void run_owned_blocks(std::int64_t blocks, const std::vector<BlockStep>& steps) {
  if (blocks == 1 || at::in_parallel_region()) {
    for (const auto& step : steps) {
      for (std::int64_t block = 0; block < blocks; ++block) step(block);
    }
    return;
  }
  // Grad mode is per thread and OpenMP does not carry it over: the blocks run under the caller's.
  const bool grad_mode = at::GradMode::is_enabled();
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  // ATen's own parallel loop has no barrier between steps, hence a region of our own. Without a
  // num_threads clause, as ATen's: the team is the one its operations run on.
#pragma omp parallel
  {
    at::AutoGradMode same_mode(grad_mode);
    const std::int64_t thread = omp_get_thread_num();
    const std::int64_t team = omp_get_num_threads();
    // What at::get_thread_num() answers inside, as in ATen's own loops.
    at::internal::ThreadIdGuard thread_id(static_cast<int>(thread));
    for (std::size_t s = 0; s < steps.size(); ++s) {
      if (s > 0) {
#pragma omp barrier
      }
      for (auto block = thread; block < blocks && !failed.load(); block += team) {
        try {
          steps[s](block);
        } catch (...) {
#pragma omp critical(encore_owned_blocks_error)
          if (!error) error = std::current_exception();
          failed = true;
        }
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

// y: a float32 matrix whose rows are contiguous (a block of columns of a larger one).
void activate_in_place(Activation activation, torch::Tensor& y) {
  float* data = y.data_ptr<float>();
  switch (activation) {
    case Activation::kSigmoid:
      // LibTorch 1.13's sigmoid runs 8-lane (AVX2) code even where 16 lanes are available.
      for (std::int64_t row = 0; row < y.size(0); ++row) kernels::sigmoid(data + row * y.stride(0), y.size(1));
      return;
    case Activation::kRelu:
      y.relu_();
      return;
    case Activation::kTanh:
      y.tanh_();
      return;
    case Activation::kLinear:
      return;
  }
}

// d loss / dz for output units [first, end), in those columns of grad_z: grad_y * activation'(z)
// from the activation's output y, as LibTorch's own backward computes it. A linear layer's grad_z
// is grad_y itself.
torch::Tensor activation_gradient(Activation activation, const torch::Tensor& grad_y, const torch::Tensor& y, const torch::Tensor& grad_z,
                                  std::int64_t first, std::int64_t end) {
  const auto columns = [&](const torch::Tensor& t) { return t.narrow(1, first, end - first); };
  auto out = columns(grad_z);
  switch (activation) {
    case Activation::kSigmoid:
      at::sigmoid_backward_out(out, columns(grad_y), columns(y));
      break;
    case Activation::kRelu:
      at::threshold_backward_out(out, columns(grad_y), columns(y), 0);
      break;
    case Activation::kTanh:
      at::tanh_backward_out(out, columns(grad_y), columns(y));
      break;
    case Activation::kLinear:
      break;
  }
  return out;
}

// y = activation(x W^T + b) for a 2-D contiguous x, each thread computing the columns of y of its
// block of W's rows. Called from inside the blocks, ATen's BLAS runs single-threaded on each.
struct OwnedLinear : torch::autograd::Function<OwnedLinear> {
  // The bias is optional: LibTorch's custom functions take an absent tensor argument only as such.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const c10::optional<torch::Tensor>& bias, Activation activation) {
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
      activate_in_place(activation, block);
    });
    // The activation's derivative comes from its output, so y is kept rather than x W^T + b.
    ctx->save_for_backward({x, weight, activation == Activation::kLinear ? torch::Tensor() : y});
    ctx->saved_data["has_bias"] = bias.has_value();
    ctx->saved_data["activation"] = static_cast<std::int64_t>(activation);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto& y = saved[2];
    const auto activation = static_cast<Activation>(ctx->saved_data["activation"].toInt());
    const auto grad_y = grad_outputs[0].contiguous();
    const bool want_x = ctx->needs_input_grad(0);
    const bool want_weight = ctx->needs_input_grad(1);
    const bool want_bias = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2);
    const auto rows = weight.size(0);
    const auto blocks = owned_row_blocks(rows, weight.size(1));
    const auto grad_z = activation == Activation::kLinear ? grad_y : torch::empty_like(grad_y);
    torch::Tensor grad_weight = want_weight ? torch::empty_like(weight) : torch::Tensor();
    torch::Tensor grad_bias = want_bias ? torch::empty({rows}, weight.options()) : torch::Tensor();
    torch::Tensor grad_x = want_x ? torch::empty_like(x) : torch::Tensor();
    // d loss / dx = grad_z W sums over all of W's rows: each block adds its rows' share into a
    // partial product of its own (the batch-sized partials are far smaller than the weight blocks
    // they spare from crossing between cores); then each thread sums the partials over its share of
    // x's columns, the share its thread owns in a layer below split alike.
    torch::Tensor partials = want_x && blocks > 1 ? torch::empty({blocks, x.size(0), x.size(1)}, x.options()) : torch::Tensor();
    std::vector<BlockStep> steps{[&](std::int64_t block) {
      const auto [first, end] = block_rows(block, rows, blocks);
      const auto grad_block = activation_gradient(activation, grad_y, y, grad_z, first, end);
      if (want_weight) {
        auto rows_of_grad = grad_weight.narrow(0, first, end - first);
        at::mm_out(rows_of_grad, grad_block.t(), x);
      }
      if (want_bias) {
        auto rows_of_grad = grad_bias.narrow(0, first, end - first);
        at::sum_out(rows_of_grad, grad_block, {0});
      }
      if (want_x) {
        auto partial = blocks > 1 ? partials[block] : grad_x;
        at::mm_out(partial, grad_block, weight.narrow(0, first, end - first));
      }
    }};
    if (partials.defined()) {
      steps.emplace_back([&](std::int64_t block) {
        const auto [first, end] = block_rows(block, x.size(1), blocks);
        auto columns = grad_x.narrow(1, first, end - first);
        const auto share = partials.narrow(2, first, end - first);
        at::add_out(columns, share[0], share[1]);
        for (std::int64_t k = 2; k < blocks; ++k) columns.add_(share[k]);
      });
    }
    run_owned_blocks(blocks, steps);
    return {grad_x, grad_weight, grad_bias, torch::Tensor()};
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
  return input.dim() >= 1 && weight.dim() == 2 && cpu_kernel_takes(input) && cpu_kernel_takes(weight) && weight.is_contiguous() &&
         (!bias.defined() || (cpu_kernel_takes(bias) && bias.dim() == 1 && bias.is_contiguous())) && input.size(-1) == weight.size(1) &&
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
  run_owned_blocks(blocks, {[&](std::int64_t block) {
                     const auto [first, end] = block_rows(block, rows, blocks);
                     fn(block, first, end);
                   }});
}

std::string activation_script(Activation activation, const std::string& z) {
  switch (activation) {
    case Activation::kSigmoid:
      return "torch.sigmoid(" + z + ")";
    case Activation::kRelu:
      return "torch.relu(" + z + ")";
    case Activation::kTanh:
      return "torch.tanh(" + z + ")";
    case Activation::kLinear:
      break;
  }
  return z;
}

std::string linear_script(const std::string& input, const std::string& weight, const std::string& bias, Activation activation) {
  return activation_script(activation, "torch.linear(" + input + ", " + weight + ", " + bias + ")");
}

torch::Tensor activate(Activation activation, const torch::Tensor& z) {
  switch (activation) {
    case Activation::kSigmoid:
      return torch::sigmoid(z);
    case Activation::kRelu:
      return torch::relu(z);
    case Activation::kTanh:
      return torch::tanh(z);
    case Activation::kLinear:
      return z;
  }
  return z;
}

torch::Tensor logistic_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
  if (!cpu_kernel_takes(logits) || !cpu_kernel_takes(targets) || targets.requires_grad() || logits.sizes() != targets.sizes()) {
    return torch::binary_cross_entropy_with_logits(logits, targets, {}, {}, at::Reduction::Sum);
  }
  return LogisticLossSum::apply(logits, targets);
}

torch::Tensor linear(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias, Activation activation) {
  if (!owned_linear_applies(input, weight, bias)) return activate(activation, torch::linear(input, weight, bias));
  auto sizes = input.sizes().vec();
  const auto x = input.reshape({-1, weight.size(1)}).contiguous();
  sizes.back() = weight.size(0);
  const auto optional_bias = bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt;
  return OwnedLinear::apply(x, weight, optional_bias, activation).view(sizes);
}

std::optional<torch::Tensor> gather_scaled_rows(const torch::Tensor& features, const torch::Tensor& rows, const torch::Tensor& offset,
                                                const torch::Tensor& multiplier) {
  const auto count = rows.size(0);
  const auto d = features.numel() / std::max<std::int64_t>(features.size(0), 1);
  const bool fast_type = features.scalar_type() == torch::kUInt8 || features.scalar_type() == torch::kFloat32;
  if (!cpu_kernels || !fast_type || !features.is_contiguous() || !features.device().is_cpu() || offset.numel() != d) return std::nullopt;
  const auto index = rows.to(torch::kInt64).contiguous();
  const auto* row = index.data_ptr<std::int64_t>();
  for (std::int64_t r = 0; r < count; ++r) {
    TORCH_CHECK(row[r] >= 0 && row[r] < features.size(0), "row ", row[r], " is outside the ", features.size(0), " examples");
  }
  auto out = torch::empty({count, d}, torch::kFloat32);
  const auto* offset_data = offset.data_ptr<float>();
  const auto* multiplier_data = multiplier.data_ptr<float>();
  float* target = out.data_ptr<float>();
  // The rows lie anywhere in the data set, so copying them waits on memory: threads share them.
  at::parallel_for(
      0, count, std::max<std::int64_t>(1, (1 << 14) / std::max<std::int64_t>(d, 1)), [&](std::int64_t begin, std::int64_t end) {
        if (features.scalar_type() == torch::kUInt8) {
          kernels::gather_scaled(features.data_ptr<std::uint8_t>(), row + begin, end - begin, d, offset_data, multiplier_data,
                                 target + begin * d);
        } else {
          kernels::gather_scaled(features.data_ptr<float>(), row + begin, end - begin, d, offset_data, multiplier_data, target + begin * d);
        }
      });
  return out;
}

}  // namespace encore::core
