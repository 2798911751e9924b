#pragma once
/// Tensor operations of the training step done in one pass where LibTorch needs several.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <torch/types.h>

namespace encore::core {

/// Whether encore's CPU kernels take the tensors they handle (the default): float32 tensors on the
/// CPU, in masking_noise, logistic_loss_sum, linear, gather_scaled_rows and the FusedAdam update.
/// With `false` (the config's `cpu_kernels: false`) LibTorch's own operations run instead, as they
/// always do for tensors on other devices: the generic path, which gives the same results to
/// rounding. Process-wide; set before training starts.
void use_cpu_kernels(bool enabled);

/// The setting of use_cpu_kernels (true unless turned off).
bool cpu_kernels_enabled();

/// Whether an encore CPU kernel may take `t`: the kernels are enabled, t is a float32 CPU tensor,
/// and autocast is off on the CPU.
bool cpu_kernel_takes(const torch::Tensor& t);

/// x with each element set to 0 with probability `level`. The mask is a hash of one draw of
/// LibTorch's default CPU generator (so seeding and checkpointed generator state govern it) and of
/// the element's position: the same for any number of threads, for any number of data-parallel
/// ranks (BatchRowOffset), and on any device. Float32 CPU tensors that need no gradient are masked in
/// one pass by a CPU kernel; others by tensor operations computing the same mask.
torch::Tensor masking_noise(const torch::Tensor& x, double level);

/// Standard normal noise shaped as x (its dtype and device), keyed as masking_noise's mask is: by
/// one draw of LibTorch's default CPU generator and each element's position in the global batch
/// (BatchRowOffset), so data-parallel ranks draw what one process draws for their rows.
torch::Tensor gaussian_noise_like(const torch::Tensor& x);

/// Noise uniform in [0, 1) shaped as x (its dtype and device), keyed as gaussian_noise_like's.
torch::Tensor uniform_noise_like(const torch::Tensor& x);

/// While alive, the rows of the batches this thread masks are rows `first_row`, `first_row + 1`, ...
/// of a larger batch: a data-parallel rank holding rows [first_row, ...) of the global batch draws
/// the masks one process would draw for those rows (and ranks do not repeat each other's masks).
class BatchRowOffset {
 public:
  /// Sets the offset to `first_row` until destroyed.
  explicit BatchRowOffset(std::int64_t first_row);
  ~BatchRowOffset();
  BatchRowOffset(const BatchRowOffset&) = delete;
  BatchRowOffset& operator=(const BatchRowOffset&) = delete;
  /// The offset in force on this thread (0 outside any BatchRowOffset).
  static std::int64_t current();

 private:
  std::int64_t previous_;
};

/// The sum over all elements of the binary cross-entropy of sigmoid(logits) against targets, from
/// the logits: torch::binary_cross_entropy_with_logits(logits, targets, {}, {}, Sum) in one pass
/// forward and one backward (LibTorch's composes several operations). Tensors a CPU kernel takes, of one shape,
/// whose targets need no gradient take this path; others go to LibTorch's.
torch::Tensor logistic_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets);

/// The elementwise nonlinearities of dense layers.
enum class Activation { kSigmoid, kRelu, kTanh, kLinear };

/// activation(z) with LibTorch's operations (kLinear returns z).
torch::Tensor activate(Activation activation, const torch::Tensor& z);

/// The TorchScript expression of activation(z) for the expression `z` ("torch.sigmoid(z)"), for the
/// methods of saved models.
std::string activation_script(Activation activation, const std::string& z);

/// The TorchScript expression of activation(input W^T + bias) (core::linear) for the expressions given.
std::string linear_script(const std::string& input, const std::string& weight, const std::string& bias, Activation activation);

/// activation(input W^T + bias): torch::linear (input (..., in), weight (out, in), bias (out) or
/// undefined) followed by the activation, with the work on the weight split by owner: each intra-op
/// thread computes the output features of its own block of the weight's rows (for_each_owned_rows),
/// activation included, in forward and backward, so a weight block, its gradient and its optimizer
/// state are only ever touched by one core. Where cores do not share a cache this keeps them out of
/// each other's way: the weight-gradient and optimizer passes run on data in the core's own cache.
/// The input gradient is summed from the per-block partial products, each thread summing the
/// columns the layer below owns. Contiguous weights a CPU kernel takes take this path; anything else (a
/// transposed tied weight, other types and devices) goes to torch::linear and activate().
torch::Tensor linear(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias,
                     Activation activation = Activation::kLinear);

/// Splits a parameter of `rows` rows of `row_size` elements into one block of rows per intra-op
/// thread (fewer when blocks would hold under 64K elements; one block runs on the calling thread)
/// and runs fn(block, first_row, end_row) for each, block b on thread b. linear() and the fused
/// optimizers split alike, so a block stays with one thread from forward to update.
void for_each_owned_rows(std::int64_t rows, std::int64_t row_size,
                         const std::function<void(std::int64_t block, std::int64_t first_row, std::int64_t end_row)>& fn);

/// How many blocks for_each_owned_rows splits such a parameter into.
std::int64_t owned_row_blocks(std::int64_t rows, std::int64_t row_size);

/// (features[rows] - offset) * multiplier as float32 [rows, D], gathered and scaled in one pass with the
/// rows shared between threads: the batch cut of every training step. Contiguous uint8 or float32 CPU
/// features whose example size is offset's take this path while the CPU kernels are enabled; nullopt
/// for anything else.
std::optional<torch::Tensor> gather_scaled_rows(const torch::Tensor& features, const torch::Tensor& rows, const torch::Tensor& offset,
                                                const torch::Tensor& multiplier);

}  // namespace encore::core
