#include "encore/core/runtime.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>

#include <torch/cuda.h>
#include <torch/torch.h>

#include <fmt/format.h>

namespace encore::core {

RuntimeConfig parse_runtime(JsonReader& r) {
  RuntimeConfig c;
  c.threads = static_cast<int>(r.get<std::int64_t>("threads", c.threads, at_least(std::int64_t{0})));
  c.device = r.choice("device", {"auto", "cpu", "cuda"}, c.device);
  c.seed = static_cast<std::uint64_t>(r.get<std::int64_t>("seed", static_cast<std::int64_t>(c.seed), at_least(std::int64_t{0})));
  return c;
}

void add_runtime_json(Json& out, const RuntimeConfig& c) {
  out["threads"] = c.threads;
  out["device"] = c.device;
  out["seed"] = c.seed;
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

int configure_threads(int threads) {
  const int count = threads > 0 ? threads : available_cores();
  at::set_num_threads(count);
  return at::get_num_threads();
}

torch::Device resolve_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  const bool cuda = torch::cuda::is_available();
  if (name == "cuda") {
    if (!cuda) throw std::runtime_error("device \"cuda\" was asked for, but this LibTorch build sees no CUDA device; use \"auto\" or \"cpu\"");
    return torch::kCUDA;
  }
  return cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

void configure_allocator() {
  // Blocks up to 32 MiB (glibc's ceiling for this setting) come from the heap instead of fresh
  // mappings, and freed heap memory stays with the process instead of being trimmed each step.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void seed_everything(std::uint64_t seed) { torch::manual_seed(seed); }

std::string blas_description() {
  // OpenBLAS exports these; asking the loaded symbols tells what LibTorch really calls.
  using ConfigFn = char* (*)();
  auto config = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  auto core = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (config && core) return fmt::format("{} (kernel {})", config(), core());
  Dl_info info{};
  if (auto sgemm = dlsym(RTLD_DEFAULT, "sgemm_"); sgemm && dladdr(sgemm, &info) && info.dli_fname) {
    return fmt::format("{} (not OpenBLAS: expect slow matrix products unless it is an optimised BLAS)", info.dli_fname);
  }
  return "no BLAS symbols found";
}

}  // namespace encore::core
