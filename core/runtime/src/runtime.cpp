#include "encore/core/runtime.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <strings.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <torch/cuda.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include "encore/core/random.h"

namespace encore::core {

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

namespace {

volatile std::sig_atomic_t noted_signal = 0;

void note_signal(int signal_number) { noted_signal = signal_number; }

}  // namespace

void watch_for_interrupts() {
  struct sigaction action {};
  action.sa_handler = note_signal;
  sigemptyset(&action.sa_mask);
  // One signal is a request to stop cleanly; the handler resets itself so that a second one kills.
  action.sa_flags = SA_RESETHAND;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

int interrupt_signal() { return noted_signal; }

std::uint64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size) : 0;
}

int configure_threads(int threads) {
  const int count = threads > 0 ? threads : available_cores();
  at::set_num_threads(count);
  // ATen sets each worker thread's count on the thread's first parallel operation by calling
  // set_num_threads there, which also recreates LibTorch's pthreadpool (unused by encore) whose new
  // thread then busy-waits on one of the cores for a while. Here, at start-up, rather than in the
  // middle of the first training step.
  at::parallel_for(0, count, 1, [](std::int64_t, std::int64_t) { (void)at::get_num_threads(); });
  return at::get_num_threads();
}

torch::Device resolve_device(const std::string& name, int local_rank) {
  if (name == "cpu") return torch::kCPU;
  const bool cuda = torch::cuda::is_available();
  if (name == "cuda" && !cuda)
    throw std::runtime_error("device \"cuda\" was asked for, but this LibTorch build sees no CUDA device; use \"auto\" or \"cpu\"");
  if (!cuda) return torch::kCPU;
  const auto devices = torch::cuda::device_count();
  if (local_rank >= static_cast<int>(devices)) {
    throw std::runtime_error(
        fmt::format("local rank {} needs GPU {}, and this machine has {} (one GPU per process: start at most {} "
                    "processes on it, or use \"cpu\")",
                    local_rank, local_rank, devices, devices));
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

void configure_allocator() {
  // Blocks up to 32 MiB (glibc's ceiling for this setting) come from the heap instead of fresh
  // mappings, and freed heap memory stays with the process instead of being trimmed each step.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void seed_everything(std::uint64_t seed) { torch::manual_seed(seed); }

namespace {

using OpenBlasName = char* (*)();

// OpenBLAS exports these; asking the loaded symbols tells what LibTorch really calls.
OpenBlasName openblas_function(const char* name) { return reinterpret_cast<OpenBlasName>(dlsym(RTLD_DEFAULT, name)); }

constexpr const char* kSelectedMarker = "ENCORE_BLAS_KERNEL_SELECTED";
constexpr const char* kReplacedVariable = "ENCORE_BLAS_KERNEL_REPLACED";

void select_blas_kernel(char** argv) {
  if (std::getenv(kSelectedMarker)) {
    // This is the re-executed process: whatever OpenBLAS made of the request stands.
    unsetenv(kSelectedMarker);
    return;
  }
  const auto loaded = openblas_function("openblas_get_corename");
  if (!loaded) return;
  const char* forced = std::getenv("ENCORE_BLAS_KERNEL");
  const std::string wanted = forced ? forced : best_blas_kernel();
  if (wanted.empty() || wanted == "openblas" || strcasecmp(wanted.c_str(), loaded()) == 0) return;
  if (const char* previous = std::getenv("OPENBLAS_CORETYPE")) setenv(kReplacedVariable, previous, 1);
  setenv("OPENBLAS_CORETYPE", wanted.c_str(), 1);
  setenv(kSelectedMarker, "1", 1);
  execv("/proc/self/exe", argv);
  // The re-execution failed: carry on with the kernel already loaded (the start-up log names it).
  unsetenv(kSelectedMarker);
}

}  // namespace

std::string best_blas_kernel() {
  __builtin_cpu_init();
  // libgcc reports AVX features only when the operating system saves their registers.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  if (__builtin_cpu_supports("avx")) return "Sandybridge";
  return "";
}

void prepare_process(char** argv) {
  select_blas_kernel(argv);
  at::globalContext().setFlushDenormal(true);
  configure_allocator();
}

std::string blas_kernel() {
  const auto core = openblas_function("openblas_get_corename");
  return core ? core() : "";
}

double blas_product_error() {
  torch::NoGradGuard no_grad;
  auto generator = seeded_generator(stream_seed(0, RandomStream::kProductCheck));
  double worst = 0;
  // Forward, weight-gradient and input-gradient products of a 784-1000 layer at batch 128, and a
  // small one that OpenBLAS may route to a different kernel.
  const std::vector<std::array<std::int64_t, 3>> shapes{{128, 784, 1000}, {1000, 128, 784}, {128, 1000, 784}, {16, 24, 10}};
  for (const auto& [m, k, n] : shapes) {
    const auto a = torch::rand({m, k}, generator) - 0.5;
    const auto b = torch::rand({k, n}, generator) - 0.5;
    const auto reference = torch::mm(a.to(torch::kFloat64), b.to(torch::kFloat64));
    const auto error = (torch::mm(a, b).to(torch::kFloat64) - reference).abs().max().item<double>();
    worst = std::max(worst, error / reference.abs().max().item<double>());
  }
  return worst;
}

std::string blas_description() {
  const auto config = openblas_function("openblas_get_config");
  if (config) {
    std::string how;
    if (const char* replaced = std::getenv(kReplacedVariable)) {
      how = fmt::format("; OPENBLAS_CORETYPE={} from the environment replaced, set ENCORE_BLAS_KERNEL to force one", replaced);
    }
    return fmt::format("{} (kernel {}{})", config(), blas_kernel(), how);
  }
  Dl_info info{};
  // PyPI's LibTorch carries Intel's MKL inside libtorch_cpu.
  using MklVersion = void (*)(char*, int);
  if (auto mkl = reinterpret_cast<MklVersion>(dlsym(RTLD_DEFAULT, "MKL_Get_Version_String"));
      mkl && dladdr(reinterpret_cast<void*>(mkl), &info)) {
    char version[256] = {};
    mkl(version, sizeof version - 1);
    return fmt::format("{} (in {})", version, info.dli_fname);
  }
  if (auto sgemm = dlsym(RTLD_DEFAULT, "sgemm_"); sgemm && dladdr(sgemm, &info) && info.dli_fname) {
    return fmt::format("{} (not OpenBLAS: expect slow matrix products unless it is an optimised BLAS)", info.dli_fname);
  }
  return "no BLAS symbols found";
}

}  // namespace encore::core
