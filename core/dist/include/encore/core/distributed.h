#pragma once
/// Data-parallel training across processes on PyTorch's own c10d: a Gloo process group (NCCL needs a
/// CUDA build of LibTorch), a store for the rendezvous (TCPStore; a FileStore for local launches, so
/// no port is opened), and gradient averaging in buckets that are all-reduced while backward runs.
/// The c10d headers stay in distributed.cpp.

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/types.h>

namespace encore::core {

/// Where this process sits in a run, after torchrun's conventions.
struct WorldInfo {
  /// This process's rank (RANK).
  int rank = 0;
  /// Processes in the run (WORLD_SIZE).
  int world_size = 1;
  /// This process's rank on its machine (LOCAL_RANK).
  int local_rank = 0;
  /// Processes of the run on this machine (shares its cores).
  int local_world_size = 1;
  /// TCPStore address (MASTER_ADDR, MASTER_PORT), hosted by rank 0.
  std::string master_addr;
  /// Rank 0's port (MASTER_PORT).
  int master_port = 0;
  /// FileStore used instead of a TCPStore when set (`encore run --nproc`: ENCORE_STORE_FILE).
  std::string store_file;
  /// torchrun's agent hosts the TCPStore (TORCHELASTIC_USE_AGENT_STORE=True): every rank is a
  /// client, under the key prefix of the agent's restart count, as PyTorch's env:// rendezvous does.
  bool agent_store = false;
  /// Times the launcher restarted the workers (TORCHELASTIC_RESTART_COUNT).
  int restart_count = 0;
  /// How long a collective, a store operation or the rendezvous may wait for another rank.
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};

  /// Whether more than one process runs.
  bool distributed() const { return world_size > 1; }
  /// "127.0.0.1:29500" or "file /tmp/...": how messages name the store.
  std::string store_address() const;
};

/// Reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT,
/// TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT and ENCORE_STORE_FILE. Without
/// WORLD_SIZE (or WORLD_SIZE=1) the process runs alone. A malformed or missing value is a
/// ConfigError naming the variable.
WorldInfo world_from_environment(std::chrono::milliseconds timeout);

/// A collective failed: a rank died, hung past the timeout or never arrived. The message names the
/// lost ranks (when known) and the store.
class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The ranks of a data-parallel run, joined through the store. Collectives are in rank order and
/// every rank must call them in the same order.
class ProcessGroup {
 public:
  /// Rendezvous, then Gloo connects every pair of ranks. A rank missing after the timeout is named in
  /// a DistributedError. Starts a heartbeat (a counter in the store) that tells live ranks from lost
  /// ones when a collective fails.
  explicit ProcessGroup(const WorldInfo& world);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  /// The world this group spans.
  const WorldInfo& world() const { return world_; }
  /// This process's rank.
  int rank() const { return world_.rank; }
  /// Processes in the group.
  int world_size() const { return world_.world_size; }

  /// Copies rank 0's values into these tensors on every rank.
  void broadcast(std::vector<torch::Tensor> tensors);
  /// Every rank's text, in rank order.
  std::vector<std::string> all_gather(const std::string& text);
  /// Throws DistributedError naming the ranks whose heartbeat stopped, with `cause`.
  [[noreturn]] void fail(const std::string& cause);

 private:
  friend class GradientAverager;
  struct State;
  WorldInfo world_;
  std::unique_ptr<State> state_;
};

/// Sets the process group that trainers and file writers of this process use (torch.distributed's
/// default group); nullptr for a process running alone.
void set_process_group(std::shared_ptr<ProcessGroup> group);
/// The process group set, or nullptr.
const std::shared_ptr<ProcessGroup>& process_group();
/// Rank 0, or a process running alone: the one process that writes files and logs progress.
bool is_main_process();

/// Averages the gradients of `parameters` across ranks, as PyTorch's DistributedDataParallel does:
/// the parameters are packed in reverse order (the order backward produces their gradients) into
/// flat buckets (1 MiB the first, 25 MiB the others); a hook on each parameter copies its gradient
/// in, and a full bucket's all-reduce starts on Gloo's threads while backward goes on with earlier
/// layers. (c10d's own Reducer would do this, but Debian's LibTorch ships its header without the
/// headers it includes.) A parameter without a gradient in a step counts as a zero gradient.
class GradientAverager {
 public:
  /// Averages the gradients of `parameters` across `group` after each backward pass.
  GradientAverager(ProcessGroup& group, std::vector<torch::Tensor> parameters);
  ~GradientAverager();
  GradientAverager(const GradientAverager&) = delete;
  GradientAverager& operator=(const GradientAverager&) = delete;
  /// Before backward: forget the last step's gradients.
  void begin_step();
  /// After backward: all-reduces what is left, waits for every bucket, and makes each parameter's
  /// gradient the average (a view into its bucket).
  void finish_step();

 private:
  struct State;
  void gradient_ready(std::size_t index, const torch::Tensor& gradient);
  void launch_full_buckets();
  ProcessGroup& group_;
  std::vector<torch::Tensor> parameters_;
  std::vector<unsigned> hooks_;
  std::unique_ptr<State> state_;
};

/// The rows [begin, end) of a batch of `rows` that `rank` of `world_size` trains on: contiguous,
/// sizes differing by at most one.
std::pair<std::int64_t, std::int64_t> shard_bounds(std::int64_t rows, int rank, int world_size);

}  // namespace encore::core
