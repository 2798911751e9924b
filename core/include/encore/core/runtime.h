#pragma once
/// Process-wide settings made once at start-up, before the first tensor operation: threads, device,
/// seed; and a description of the math libraries actually in use.

#include <cstdint>
#include <string>

#include <torch/types.h>

#include "encore/core/config.h"

namespace encore::core {

/// Run settings shared by every command: read from the config's top level.
struct RuntimeConfig {
  /// Intra-op threads; 0 means one per available core.
  int threads = 0;
  /// "auto" (CUDA if available), "cpu" or "cuda".
  std::string device = "auto";
  std::uint64_t seed = 1;
};

/// Reads `threads`, `device` and `seed` from a top-level reader (other keys are left to the caller).
RuntimeConfig parse_runtime(JsonReader& reader);
/// Writes those keys into a resolved top-level object.
void add_runtime_json(Json& out, const RuntimeConfig& config);

/// Cores this process may run on (its CPU affinity), at least 1.
int available_cores();

/// Sets the intra-op thread count (0 = available cores); returns the count in effect.
int configure_threads(int threads);

/// Resolves "auto" / "cpu" / "cuda" to a device; "cuda" without a CUDA build or device is an error.
torch::Device resolve_device(const std::string& name);

/// Keeps glibc from returning and re-mapping the large tensor buffers of every training step (its
/// default mmap and trim thresholds make each step pay page faults; about 4x on a 784-1000 layer).
/// Call once at start-up, before tensors are allocated.
void configure_allocator();

/// Seeds LibTorch's global generators.
void seed_everything(std::uint64_t seed);

/// One line naming the BLAS library and the kernel it selected, e.g.
/// "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64 (kernel SkylakeX)".
std::string blas_description();

}  // namespace encore::core
