#include "encore/core/runtime_section.h"

#include <fmt/format.h>

namespace encore::core {

RuntimeConfig parse_runtime(JsonReader& r) {
  RuntimeConfig c;
  c.threads = static_cast<int>(r.get<std::int64_t>("threads", c.threads, at_least(std::int64_t{0})));
  if (c.threads > kMaxThreads) {
    r.fail("threads", fmt::format("must be at most {} (threads beyond the cores only wait on each other), got {}", kMaxThreads, c.threads));
  }
  c.device = r.choice("device", {"auto", "cpu", "cuda"}, c.device);
  c.seed = static_cast<std::uint64_t>(r.get<std::int64_t>("seed", static_cast<std::int64_t>(c.seed), at_least(std::int64_t{0})));
  c.on_non_finite = r.choice("on_non_finite", {"error", "skip_step"}, c.on_non_finite);
  c.checkpoint_every_steps = r.get<std::int64_t>("checkpoint_every_steps", c.checkpoint_every_steps, at_least(std::int64_t{0}));
  c.cpu_kernels = r.get<bool>("cpu_kernels", c.cpu_kernels);
  c.mixed_precision = r.choice("mixed_precision", {"off", "bf16"}, c.mixed_precision);
  return c;
}

void add_runtime_json(Json& out, const RuntimeConfig& c) {
  out["threads"] = c.threads;
  out["device"] = c.device;
  out["seed"] = c.seed;
  out["on_non_finite"] = c.on_non_finite;
  out["checkpoint_every_steps"] = c.checkpoint_every_steps;
  out["cpu_kernels"] = c.cpu_kernels;
  out["mixed_precision"] = c.mixed_precision;
}

}  // namespace encore::core
