#pragma once
/// Process-wide settings made once at start-up, before the first tensor operation: threads, device,
/// seed; and a description of the math libraries actually in use.

#include <cstdint>
#include <string>

#include <torch/types.h>

namespace encore::core {

/// The most intra-op threads a config may ask for: more only adds threads waiting on each other.
constexpr int kMaxThreads = 256;

/// Run settings shared by every command: read from the config's top level.
struct RuntimeConfig {
  /// Intra-op threads; 0 means one per available core. At most kMaxThreads.
  int threads = 0;
  /// "auto" (CUDA if available), "cpu" or "cuda" (in a run of several processes, the GPU of the
  /// process's local rank).
  std::string device = "auto";
  /// "off" (float32) or "bf16": bfloat16 autocast of the training steps' forward passes
  /// (core::MixedPrecision).
  std::string mixed_precision = "off";
  /// Seed of every random stream of the run (random.h).
  std::uint64_t seed = 1;
  /// "error" (stop, exit 3) or "skip_step" (leave the weights, count the step, go on).
  std::string on_non_finite = "error";
  /// Checkpoint every this many optimizer steps inside epochs too (0: at epoch ends only).
  std::int64_t checkpoint_every_steps = 0;
  /// encore's CPU kernels for float32 CPU tensors (core::use_cpu_kernels); false: LibTorch's own
  /// operations, the path of every other device, on the CPU too.
  bool cpu_kernels = true;
};

/// Cores this process may run on (its CPU affinity), at least 1.
int available_cores();

/// The machine's physical memory in bytes (0 when the system does not say).
std::uint64_t physical_memory_bytes();

/// From now on SIGINT and SIGTERM do not end the process at once: the first one is noted, and
/// training stops at the next step boundary with core::Interrupted (so that the caller can say where
/// the run stopped and how to resume it); a second one ends the process as usual.
void watch_for_interrupts();

/// The signal noted by watch_for_interrupts' handler, or 0.
int interrupt_signal();

/// Sets the intra-op thread count (0 = available cores); returns the count in effect.
int configure_threads(int threads);

/// Resolves "auto" / "cpu" / "cuda" to a device: CUDA's device `local_rank` (one GPU per process of
/// a machine). "cuda" without a CUDA build or device, or without a device for `local_rank`, is an error.
torch::Device resolve_device(const std::string& name, int local_rank = 0);

/// Start-up of every encore program, first thing in main(), before any thread starts:
/// - selects the fastest OpenBLAS kernel this processor runs (best_blas_kernel()). OpenBLAS fixes
///   its kernel when it loads, from OPENBLAS_CORETYPE, and without it does not recognise recent
///   processors (it falls back to a kernel several times slower), so the program re-executes itself
///   once with that variable set. ENCORE_BLAS_KERNEL=NAME forces a kernel, =openblas keeps
///   OpenBLAS's own choice;
/// - flushes denormal floats to zero (threads started later inherit it): Adam's moments of weights
///   whose gradient stays zero decay into denormals, which the processor handles 10-100x slower;
/// - configure_allocator().
/// `argv` is main's, used for the re-execution.
void prepare_process(char** argv);

/// The OpenBLAS kernel name for this processor's instruction set ("SkylakeX", "Haswell",
/// "Sandybridge"), or "" when OpenBLAS's own choice is as good.
std::string best_blas_kernel();

/// The kernel the loaded OpenBLAS uses ("SkylakeX"), or "" when the BLAS is not OpenBLAS.
std::string blas_kernel();

/// Largest relative error of float matrix products on the loaded BLAS against a double-precision
/// reference, over the shapes of a dense layer's training step. About 1e-7 for a correct kernel.
double blas_product_error();

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
