#pragma once
/// The run settings at a config's top level, read into RuntimeConfig and written back.

#include "encore/core/config.h"
#include "encore/core/runtime.h"

namespace encore::core {

/// Reads `threads`, `device`, `seed`, `on_non_finite`, `checkpoint_every_steps` and `cpu_kernels` from a top-level
/// reader (other keys are left to the caller).
RuntimeConfig parse_runtime(JsonReader& reader);
/// Writes those keys into a resolved top-level object.
void add_runtime_json(Json& out, const RuntimeConfig& config);

}  // namespace encore::core
