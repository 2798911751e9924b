#pragma once
// Element loops the training step runs on every batch, written once as plain loops so the compiler
// vectorises them for the processor at hand. LibTorch-free: this file is compiled with flags of its
// own (no errno from sqrt, so sqrt vectorises) and without the shared precompiled header.

#include <cstdint>

namespace encore::core::kernels {

struct AdamCoefficients {
  float beta1, beta2, eps;
  /// lr / (1 - beta1^t).
  float step_size;
  /// 1 / sqrt(1 - beta2^t).
  float inverse_sqrt_correction2;
  /// Adam's L2 term added to the gradient (0 for AdamW).
  float gradient_decay;
  /// AdamW's decoupled shrink factor 1 - lr * weight_decay (1 for Adam).
  float shrink;
  /// The moments start at zero: m and v are written, not read (they may hold anything).
  bool first_update;
};

/// One Adam(W) update of n elements: reads p, g, m, v once (m, v not on the first update) and
/// writes p, m, v once.
void adam_update(float* p, const float* g, float* m, float* v, std::int64_t n, const AdamCoefficients& c);

/// out[i] = x[i] where a uniform 32-bit hash of (seed, first + i) is >= drop_threshold, else 0.
/// The mask depends only on the seed and the element's index: the same for any thread split.
void masking_noise(const float* x, float* out, std::int64_t n, std::uint64_t seed, std::uint64_t first, std::uint32_t drop_threshold);

/// out[r, j] = (data[rows[r], j] - offset[j]) * multiplier[j] for `count` rows of width d.
void gather_scaled(const std::uint8_t* data, const std::int64_t* rows, std::int64_t count, std::int64_t d, const float* offset,
                   const float* multiplier, float* out);
void gather_scaled(const float* data, const std::int64_t* rows, std::int64_t count, std::int64_t d, const float* offset,
                   const float* multiplier, float* out);

/// Sum over n elements of the logistic loss of logit z against target t, softplus(z) - z t, in the
/// stable form max(z, 0) - z t + log(1 + exp(-|z|)); accumulated in double.
double logistic_loss_sum(const float* logits, const float* targets, std::int64_t n);

/// out[i] = scale * (sigmoid(logits[i]) - targets[i]): the gradient of logistic_loss_sum, scaled.
void logistic_loss_gradient(const float* logits, const float* targets, float scale, float* out, std::int64_t n);

/// x[i] = 1 / (1 + exp(-x[i])), in place.
void sigmoid(float* x, std::int64_t n);

}  // namespace encore::core::kernels
