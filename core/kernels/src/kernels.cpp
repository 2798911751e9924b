#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

// Each loop is compiled for AVX-512, AVX2 and the baseline; the loader picks the widest the
// processor runs. Feature names, not "arch=" names: GCC dispatches those on the exact processor
// model, and a model it does not know (this machine's) silently gets the scalar baseline.
#define ENCORE_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

namespace encore::core::kernels {

namespace {

// Follows LibTorch's order of operations: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
// p -= step_size * m / (sqrt(v) / sqrt(c2) + eps). With kFirst, m and v are taken as 0 (the
// results are the same bits: b1*0 + x is x).
template <bool kFirst>
inline void adam_update_loop(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, std::int64_t n,
                             const AdamCoefficients& c) {
  const float beta1 = c.beta1, beta2 = c.beta2, eps = c.eps, step_size = c.step_size;
  const float inverse_sqrt_correction2 = c.inverse_sqrt_correction2, gradient_decay = c.gradient_decay, shrink = c.shrink;
  const float one_minus_beta1 = 1.0f - beta1;
  const float one_minus_beta2 = 1.0f - beta2;
  for (std::int64_t i = 0; i < n; ++i) {
    const float param = p[i] * shrink;
    const float grad = g[i] + gradient_decay * param;
    const float mean = (kFirst ? 0.0f : m[i] * beta1) + one_minus_beta1 * grad;
    const float square = (kFirst ? 0.0f : v[i] * beta2) + one_minus_beta2 * grad * grad;
    m[i] = mean;
    v[i] = square;
    p[i] = param - step_size * mean / (std::sqrt(square) * inverse_sqrt_correction2 + eps);
  }
}

}  // namespace

ENCORE_VECTOR_CLONES
void adam_update(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, std::int64_t n,
                 const AdamCoefficients& c) {
  if (c.first_update) {
    adam_update_loop<true>(p, g, m, v, n, c);
  } else {
    adam_update_loop<false>(p, g, m, v, n, c);
  }
}

namespace {

// MurmurHash3's 32-bit finaliser: every input bit flips each output bit with probability ~1/2.
inline std::uint32_t mix32(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

}  // namespace

ENCORE_VECTOR_CLONES
void masking_noise(const float* __restrict x, float* __restrict out, std::int64_t n, std::uint64_t seed, std::uint64_t first,
                   std::uint32_t drop_threshold) {
  const auto seed_low = static_cast<std::uint32_t>(seed);
  const auto seed_high = static_cast<std::uint32_t>(seed >> 32);
  const auto base = static_cast<std::uint32_t>(first);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t counter = base + static_cast<std::uint32_t>(i);
    const std::uint32_t u = mix32(mix32(counter * 0x9e3779b9u + seed_low) ^ seed_high);
    out[i] = u >= drop_threshold ? x[i] : 0.0f;
  }
}

namespace {

template <class T>
inline void gather_scaled_rows(const T* __restrict data, const std::int64_t* rows, std::int64_t count, std::int64_t d,
                               const float* __restrict offset, const float* __restrict multiplier, float* __restrict out) {
  for (std::int64_t r = 0; r < count; ++r) {
    const T* __restrict row = data + rows[r] * d;
    float* __restrict target = out + r * d;
    for (std::int64_t j = 0; j < d; ++j) target[j] = (static_cast<float>(row[j]) - offset[j]) * multiplier[j];
  }
}

}  // namespace

ENCORE_VECTOR_CLONES
void gather_scaled(const std::uint8_t* data, const std::int64_t* rows, std::int64_t count, std::int64_t d, const float* offset,
                   const float* multiplier, float* out) {
  gather_scaled_rows(data, rows, count, d, offset, multiplier, out);
}

ENCORE_VECTOR_CLONES
void gather_scaled(const float* data, const std::int64_t* rows, std::int64_t count, std::int64_t d, const float* offset,
                   const float* multiplier, float* out) {
  gather_scaled_rows(data, rows, count, d, offset, multiplier, out);
}

namespace {

// exp(x) for x <= 0, as loops over it vectorise (std::exp does not without -ffast-math): Cephes'
// single-precision range reduction and polynomial (relative error about 1e-7). Below -87 the result
// would leave the normal range; exp(-87) ~ 1.6e-38 is used instead, far below any loss term.
inline float exp_of_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float k = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float mantissa = p * r * r + r + 1.0f;
  const std::int32_t exponent_bits = (static_cast<std::int32_t>(k) + 127) << 23;
  float two_to_k;
  std::memcpy(&two_to_k, &exponent_bits, sizeof two_to_k);
  return mantissa * two_to_k;
}

// log(1 + e) for e in [0, 1], as 2 atanh(s) with s = e / (2 + e) in [0, 1/3] (no rounding of 1 + e,
// so tiny e keep their precision); the series' first omitted term is below 2e-8 relative.
inline float log1p_of_unit(float e) {
  const float s = e / (2.0f + e);
  const float s2 = s * s;
  float series = 1.0f / 13.0f;
  series = series * s2 + 1.0f / 11.0f;
  series = series * s2 + 1.0f / 9.0f;
  series = series * s2 + 1.0f / 7.0f;
  series = series * s2 + 1.0f / 5.0f;
  series = series * s2 + 1.0f / 3.0f;
  series = series * s2 + 1.0f;
  return 2.0f * s * series;
}

}  // namespace

ENCORE_VECTOR_CLONES
double logistic_loss_sum(const float* __restrict logits, const float* __restrict targets, std::int64_t n) {
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (std::int64_t i = 0; i < n; ++i) {
    const float z = logits[i];
    const float positive_part = z > 0.0f ? z : 0.0f;
    const float loss = positive_part - z * targets[i] + log1p_of_unit(exp_of_nonpositive(-std::fabs(z)));
    sum += static_cast<double>(loss);
  }
  return sum;
}

namespace {

// sigmoid(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) below, e = exp(-|z|): never overflows.
inline float sigmoid_of(float z) {
  const float e = exp_of_nonpositive(-std::fabs(z));
  const float numerator = z >= 0.0f ? 1.0f : e;
  return numerator / (1.0f + e);
}

}  // namespace

ENCORE_VECTOR_CLONES
void logistic_loss_gradient(const float* __restrict logits, const float* __restrict targets, float scale, float* __restrict out,
                            std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = scale * (sigmoid_of(logits[i]) - targets[i]);
}

ENCORE_VECTOR_CLONES
void sigmoid(float* __restrict x, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) x[i] = sigmoid_of(x[i]);
}

}  // namespace encore::core::kernels
