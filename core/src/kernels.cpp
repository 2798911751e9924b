#include "kernels.h"

#include <cmath>

// Each loop is compiled for AVX-512, AVX2 and the baseline; the loader picks the widest the
// processor runs. Feature names, not "arch=" names: GCC dispatches those on the exact processor
// model, and a model it does not know (this machine's) silently gets the scalar baseline.
#define ENCORE_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

namespace encore::core::kernels {

// Follows LibTorch's order of operations: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
// p -= step_size * m / (sqrt(v) / sqrt(c2) + eps).
ENCORE_VECTOR_CLONES
void adam_update(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, std::int64_t n,
                 const AdamCoefficients& c) {
  const float beta1 = c.beta1, beta2 = c.beta2, eps = c.eps, step_size = c.step_size;
  const float inverse_sqrt_correction2 = c.inverse_sqrt_correction2, gradient_decay = c.gradient_decay, shrink = c.shrink;
  const float one_minus_beta1 = 1.0f - beta1;
  const float one_minus_beta2 = 1.0f - beta2;
  for (std::int64_t i = 0; i < n; ++i) {
    const float param = p[i] * shrink;
    const float grad = g[i] + gradient_decay * param;
    const float mean = m[i] * beta1 + one_minus_beta1 * grad;
    const float square = v[i] * beta2 + one_minus_beta2 * grad * grad;
    m[i] = mean;
    v[i] = square;
    p[i] = param - step_size * mean / (std::sqrt(square) * inverse_sqrt_correction2 + eps);
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

}  // namespace encore::core::kernels
