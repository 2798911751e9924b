#include "encore/core/distributed.h"

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "encore/core/config.h"
#include "nccl_collectives.h"

namespace encore::core {

namespace {

std::shared_ptr<ProcessGroup>& default_group() {
  static std::shared_ptr<ProcessGroup> group;
  return group;
}

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

int environment_int(const char* name, std::optional<int> fallback, int minimum, int maximum) {
  const auto text = environment(name);
  if (!text) {
    if (fallback) return *fallback;
    throw ConfigError(std::string("$") + name, "is needed for a run of several processes (torchrun sets it)");
  }
  std::size_t used = 0;
  long value = 0;
  try {
    value = std::stol(*text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text->size() || value < minimum || value > maximum) {
    throw ConfigError(std::string("$") + name, fmt::format("must be an integer in [{}, {}], got \"{}\"", minimum, maximum, *text));
  }
  return static_cast<int>(value);
}

std::string alive_key(int rank) { return fmt::format("encore/alive/{}", rank); }
std::string arrived_key(int rank) { return fmt::format("encore/arrived/{}", rank); }

bool is_loopback(const std::string& address) { return address == "localhost" || address == "::1" || address.rfind("127.", 0) == 0; }

}  // namespace

std::string WorldInfo::store_address() const {
  return store_file.empty() ? fmt::format("{}:{}", master_addr, master_port) : "file " + store_file;
}

WorldInfo world_from_environment(std::chrono::milliseconds timeout) {
  WorldInfo world;
  world.timeout = timeout;
  world.world_size = environment_int("WORLD_SIZE", 1, 1, 65536);
  if (world.world_size == 1) return world;
  world.rank = environment_int("RANK", std::nullopt, 0, world.world_size - 1);
  world.local_rank = environment_int("LOCAL_RANK", 0, 0, world.world_size - 1);
  world.local_world_size = environment_int("LOCAL_WORLD_SIZE", 1, 1, world.world_size);
  if (const auto file = environment("ENCORE_STORE_FILE")) {
    world.store_file = *file;
    world.master_addr = "127.0.0.1";
    return world;
  }
  const auto address = environment("MASTER_ADDR");
  if (!address) throw ConfigError("$MASTER_ADDR", "is needed for a run of several processes (torchrun sets it)");
  world.master_addr = *address;
  world.master_port = environment_int("MASTER_PORT", std::nullopt, 1, 65535);
  world.agent_store = environment("TORCHELASTIC_USE_AGENT_STORE") == std::optional<std::string>("True");
  if (world.agent_store) world.restart_count = environment_int("TORCHELASTIC_RESTART_COUNT", 0, 0, 1 << 30);
  return world;
}

struct ProcessGroup::State {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  // Opened by the first collective on CUDA tensors, which every rank reaches at the same point.
  std::unique_ptr<detail::NcclCollectives> nccl;
  // The heartbeat: a counter per rank in the store, bumped by a thread of its own.
  std::chrono::milliseconds beat_interval{1000};
  std::thread beat_thread;
  std::mutex beat_mutex;
  std::condition_variable beat_stop;
  bool stopping = false;

  // The collectives for `tensors` (one tensor): Gloo's on the CPU, NCCL's on CUDA.
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<torch::Tensor>& tensors, const WorldInfo& world) {
    if (!tensors.front().is_cuda()) return gloo->allreduce(tensors);
    return nccl_for(world).allreduce(tensors);
  }
  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<torch::Tensor>& tensors, const WorldInfo& world) {
    if (!tensors.front().is_cuda()) return gloo->broadcast(tensors);
    return nccl_for(world).broadcast(tensors);
  }
  detail::NcclCollectives& nccl_for(const WorldInfo& world) {
    if (!nccl) nccl = detail::open_nccl(store, world);
    return *nccl;
  }
};

namespace {

c10::intrusive_ptr<c10d::Store> open_store(const WorldInfo& world) {
  if (!world.store_file.empty()) {
    auto store = c10::make_intrusive<c10d::FileStore>(world.store_file, world.world_size);
    store->setTimeout(world.timeout);
    return store;
  }
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(world.master_port);
  options.isServer = world.rank == 0 && !world.agent_store;
  options.waitWorkers = false;
  options.timeout = world.timeout;
  try {
    auto store = c10::make_intrusive<c10d::TCPStore>(world.master_addr, options);
    if (!world.agent_store) return store;
    return c10::make_intrusive<c10d::PrefixStore>(fmt::format("/worker/attempt_{}", world.restart_count), store);
  } catch (const std::exception& e) {
    if (options.isServer) throw DistributedError(fmt::format("rank 0 cannot host the store at {}: {}", world.store_address(), e.what()));
    throw DistributedError(fmt::format("rank {} of {}: {} at {} did not answer within {} s: {}", world.rank, world.world_size,
                                       world.agent_store ? "the launcher's store" : "rank 0 (the store host)", world.store_address(),
                                       world.timeout.count() / 1000.0, e.what()));
  }
}

std::shared_ptr<::gloo::transport::Device> gloo_device(const WorldInfo& world) {
  // Gloo listens on the address its device names: loopback for local runs, else the interface
  // GLOO_SOCKET_IFNAME names (as in PyTorch) or the one this host's name resolves to.
  if (is_loopback(world.master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  if (const auto interface = environment("GLOO_SOCKET_IFNAME")) return c10d::ProcessGroupGloo::createDeviceForInterface(*interface);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// Waits for every rank's arrival key; names the ranks still missing at the deadline.
void rendezvous(c10d::Store& store, const WorldInfo& world) {
  store.set(arrived_key(world.rank), std::vector<std::uint8_t>{1});
  const auto deadline = std::chrono::steady_clock::now() + world.timeout;
  while (true) {
    std::vector<int> missing;
    for (int r = 0; r < world.world_size; ++r) {
      if (!store.check({arrived_key(r)})) missing.push_back(r);
    }
    if (missing.empty()) return;
    if (std::chrono::steady_clock::now() > deadline) {
      throw DistributedError(fmt::format("rank {} of {}: rank{} {} did not arrive at the store {} within {} s", world.rank,
                                         world.world_size, missing.size() > 1 ? "s" : "", fmt::join(missing, ", "), world.store_address(),
                                         world.timeout.count() / 1000.0));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

ProcessGroup::ProcessGroup(const WorldInfo& world) : world_(world), state_(std::make_unique<State>()) {
  TORCH_CHECK(world_.distributed(), "a process group needs at least two ranks");
  state_->store = open_store(world_);
  try {
    rendezvous(*state_->store, world_);
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->timeout = world_.timeout;
    options->devices.push_back(gloo_device(world_));
    // PyTorch's default: two Gloo threads, so that one bucket's all-reduce can run while the next
    // one starts.
    options->threads = 2;
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("gloo", state_->store);
    state_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, world_.rank, world_.world_size, options);
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistributedError(fmt::format("rank {} of {}: joining the run through the store {} failed: {}", world_.rank, world_.world_size,
                                       world_.store_address(), e.what()));
  }
  // Beats often enough that a lost rank is told apart well within the timeout.
  state_->beat_interval = std::clamp(world_.timeout / 8, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  state_->beat_thread = std::thread([state = state_.get(), key = alive_key(world_.rank)] {
    std::unique_lock<std::mutex> lock(state->beat_mutex);
    while (!state->stopping) {
      try {
        state->store->add(key, 1);
      } catch (const std::exception&) {
        return;  // the store is gone (rank 0 ended): nobody is left to tell
      }
      state->beat_stop.wait_for(lock, state->beat_interval);
    }
  });
}

ProcessGroup::~ProcessGroup() {
  {
    std::lock_guard<std::mutex> lock(state_->beat_mutex);
    state_->stopping = true;
  }
  state_->beat_stop.notify_all();
  if (state_->beat_thread.joinable()) state_->beat_thread.join();
}

void ProcessGroup::fail(const std::string& cause) {
  // A rank is lost when its heartbeat stands still over several beats. An unreachable store means
  // its host is gone: rank 0, or torchrun's agent.
  std::vector<int> lost;
  bool store_lost = false;
  try {
    auto read_beats = [&] {
      std::vector<std::int64_t> beats;
      for (int r = 0; r < world_.world_size; ++r) beats.push_back(r == world_.rank ? 0 : state_->store->add(alive_key(r), 0));
      return beats;
    };
    const auto before = read_beats();
    std::this_thread::sleep_for(state_->beat_interval * 3);
    const auto after = read_beats();
    for (int r = 0; r < world_.world_size; ++r) {
      if (r != world_.rank && before[r] == after[r]) lost.push_back(r);
    }
  } catch (const std::exception&) {
    store_lost = true;
    if (!world_.agent_store) lost = {0};
  }
  const auto where = fmt::format("rank {} of {}, store {}", world_.rank, world_.world_size, world_.store_address());
  if (store_lost && world_.agent_store) throw DistributedError(fmt::format("{}: the launcher's store is gone: {}", where, cause));
  if (lost.empty()) throw DistributedError(fmt::format("{}: a collective failed while every other rank is alive: {}", where, cause));
  throw DistributedError(fmt::format("{}: lost rank{} {} (no heartbeat for {} s): {}", where, lost.size() > 1 ? "s" : "",
                                     fmt::join(lost, ", "), (state_->beat_interval * 3).count() / 1000.0, cause));
}

void ProcessGroup::broadcast(std::vector<torch::Tensor> tensors) {
  try {
    for (auto& tensor : tensors) {
      std::vector<torch::Tensor> one{tensor};
      state_->broadcast(one, world_)->wait();
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

std::vector<std::string> ProcessGroup::all_gather(const std::string& text) {
  try {
    // Lengths first, then the texts padded to the longest.
    std::vector<torch::Tensor> length{torch::tensor({static_cast<std::int64_t>(text.size())}, torch::kInt64)};
    std::vector<std::vector<torch::Tensor>> lengths(1);
    for (int r = 0; r < world_.world_size; ++r) lengths[0].push_back(torch::empty({1}, torch::kInt64));
    state_->gloo->allgather(lengths, length)->wait();
    std::int64_t longest = 1;
    for (const auto& l : lengths[0]) longest = std::max(longest, l.item<std::int64_t>());
    std::vector<torch::Tensor> mine{torch::zeros({longest}, torch::kUInt8)};
    std::memcpy(mine[0].data_ptr(), text.data(), text.size());
    std::vector<std::vector<torch::Tensor>> all(1);
    for (int r = 0; r < world_.world_size; ++r) all[0].push_back(torch::empty({longest}, torch::kUInt8));
    state_->gloo->allgather(all, mine)->wait();
    std::vector<std::string> out;
    for (int r = 0; r < world_.world_size; ++r) {
      out.emplace_back(static_cast<const char*>(all[0][r].data_ptr()), static_cast<std::size_t>(lengths[0][r].item<std::int64_t>()));
    }
    return out;
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

void set_process_group(std::shared_ptr<ProcessGroup> group) { default_group() = std::move(group); }

const std::shared_ptr<ProcessGroup>& process_group() { return default_group(); }

bool is_main_process() { return !default_group() || default_group()->rank() == 0; }

struct GradientAverager::State {
  struct Bucket {
    torch::Tensor flat;
    std::vector<std::size_t> members;
    std::size_t arrived = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  /// Bucket of each parameter, and its place there shaped like the parameter.
  std::vector<std::size_t> bucket_of;
  std::vector<torch::Tensor> slots;
  std::vector<bool> arrived;
  /// 1 / ranks: gradients are scaled on the way in, so that the all-reduced sum is the average.
  torch::Tensor scale;
  /// Buckets are all-reduced strictly in order: Gloo pairs the ranks' collectives by order.
  std::size_t next_launch = 0;
};

GradientAverager::GradientAverager(ProcessGroup& group, std::vector<torch::Tensor> parameters)
    : group_(group), parameters_(std::move(parameters)), state_(std::make_unique<State>()) {
  constexpr std::int64_t kFirstBucketBytes = 1 << 20;
  constexpr std::int64_t kBucketBytes = 25 << 20;
  state_->bucket_of.resize(parameters_.size());
  state_->arrived.assign(parameters_.size(), false);
  state_->scale = torch::scalar_tensor(1.0 / group_.world_size());
  std::vector<std::int64_t> sizes, offsets(parameters_.size());
  const auto device = parameters_.empty() ? torch::Device(torch::kCPU) : parameters_.front().device();
  for (std::size_t i = parameters_.size(); i-- > 0;) {
    const auto& p = parameters_[i];
    TORCH_CHECK(p.scalar_type() == torch::kFloat32 && p.device() == device,
                "gradient averaging handles float32 parameters on one device, got ", p.scalar_type(), " on ", p.device(), " beside ",
                device);
    const auto limit = state_->buckets.size() <= 1 ? kFirstBucketBytes : kBucketBytes;
    if (state_->buckets.empty() || sizes.back() * 4 >= limit) {
      state_->buckets.emplace_back();
      sizes.push_back(0);
    }
    state_->bucket_of[i] = state_->buckets.size() - 1;
    offsets[i] = sizes.back();
    state_->buckets.back().members.push_back(i);
    sizes.back() += p.numel();
  }
  for (std::size_t b = 0; b < state_->buckets.size(); ++b)
    state_->buckets[b].flat = torch::zeros({sizes[b]}, torch::TensorOptions(torch::kFloat32).device(device));
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const auto& p = parameters_[i];
    state_->slots.push_back(state_->buckets[state_->bucket_of[i]].flat.narrow(0, offsets[i], p.numel()).view(p.sizes()));
  }
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    hooks_.push_back(parameters_[i].register_hook([this, i](torch::Tensor gradient) { gradient_ready(i, gradient); }));
  }
}

GradientAverager::~GradientAverager() {
  for (std::size_t i = 0; i < parameters_.size(); ++i) parameters_[i].remove_hook(hooks_[i]);
}

void GradientAverager::begin_step() {
  for (auto& bucket : state_->buckets) {
    bucket.arrived = 0;
    bucket.work.reset();
  }
  state_->arrived.assign(parameters_.size(), false);
  state_->next_launch = 0;
}

void GradientAverager::gradient_ready(std::size_t index, const torch::Tensor& gradient) {
  TORCH_CHECK(!state_->arrived[index], "parameter ", index, " received two gradients in one backward pass");
  auto& bucket = state_->buckets[state_->bucket_of[index]];
  torch::mul_out(state_->slots[index], gradient, state_->scale);
  state_->arrived[index] = true;
  if (++bucket.arrived == bucket.members.size()) launch_full_buckets();
}

void GradientAverager::launch_full_buckets() {
  auto& s = *state_;
  while (s.next_launch < s.buckets.size() && s.buckets[s.next_launch].arrived == s.buckets[s.next_launch].members.size()) {
    std::vector<torch::Tensor> tensors{s.buckets[s.next_launch].flat};
    s.buckets[s.next_launch].work = group_.state_->allreduce(tensors, group_.world());
    ++s.next_launch;
  }
}

void GradientAverager::finish_step() {
  auto& s = *state_;
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    if (s.arrived[i]) continue;
    s.slots[i].zero_();
    s.arrived[i] = true;
    ++s.buckets[s.bucket_of[i]].arrived;
  }
  try {
    launch_full_buckets();
    for (auto& bucket : s.buckets) bucket.work->wait();
  } catch (const std::exception& e) {
    group_.fail(e.what());
  }
  for (std::size_t i = 0; i < parameters_.size(); ++i) parameters_[i].mutable_grad() = s.slots[i];
}

std::pair<std::int64_t, std::int64_t> shard_bounds(std::int64_t rows, int rank, int world_size) {
  const auto begin = rows * rank / world_size;
  const auto end = rows * (rank + 1) / world_size;
  return {begin, end};
}

}  // namespace encore::core
