// encore's CPU kernels (owned-row linear, fused Adam, one-pass masking, loss and batch gathering)
// against LibTorch's own operations, the path every other device takes: `cpu_kernels: false` runs
// the latter on the CPU, and whole experiments must end where the kernels' runs end.
// Mixed precision (bf16 autocast) takes the same path.
#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <string>

#include "encore/core/ops.h"
#include "encore/finetune/experiment.h"
#include "support/support.h"

using namespace encore;
using encore::testing::toy_experiment_config;

namespace {

// Every number of `b` within a relative 1e-3 of `a`'s, but timings, which no two runs share.
void expect_same_results(const core::Json& a, const core::Json& b, const std::string& path = "") {
  if (a.is_object()) {
    ASSERT_TRUE(b.is_object()) << path;
    for (const auto& [key, value] : a.items()) {
      if (key.find("second") != std::string::npos) continue;
      ASSERT_TRUE(b.contains(key)) << path << "/" << key;
      expect_same_results(value, b[key], path + "/" + key);
    }
  } else if (a.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << path;
    for (std::size_t i = 0; i < a.size(); ++i) expect_same_results(a[i], b[i], path + "/" + std::to_string(i));
  } else if (a.is_number()) {
    const double x = a.get<double>();
    const double y = b.get<double>();
    EXPECT_NEAR(x, y, 1e-3 * std::max(1.0, std::abs(x))) << path;
  } else {
    EXPECT_EQ(a, b) << path;
  }
}

core::Json run_summary(core::Json json, bool cpu_kernels) {
  json["cpu_kernels"] = cpu_kernels;
  const auto components = finetune::builtin_components();
  const auto config = finetune::parse_experiment(json, components);
  std::ostringstream log;
  finetune::RunOptions options;
  options.log = &log;
  options.write_files = false;
  auto summary = finetune::run_experiment(config, components, options);
  core::use_cpu_kernels(true);
  return summary;
}

// The toy experiment with `model` and `finetune` merged over its own sections.
core::Json variant(const encore::testing::TempDir& dir, const core::Json& model, const core::Json& finetune) {
  auto json = toy_experiment_config(dir);
  json["model"].update(model);
  json["finetune"] = finetune;
  return json;
}

core::Json two_phases(const core::Json& head, const core::Json& optimizer) {
  return {{"head", head},
          {"phases",
           {{{"name", "head_only"}, {"trainable", {"head"}}, {"epochs", 2}, {"batch_size", 8}, {"optimizer", optimizer}},
            {{"name", "all"}, {"trainable", {"encoder", "head"}}, {"epochs", 2}, {"batch_size", 8}, {"optimizer", optimizer}}}}};
}

}  // namespace

TEST(CpuKernels, EveryModelHeadAndStageEndsWhereLibTorchsOwnOperationsEnd) {
  encore::testing::TempDir dir;
  const std::vector<std::pair<std::string, core::Json>> variants{
      {"sigmoid, masking, untied, KL sparsity, one-vs-all, adam",
       variant(dir, {{"corruption", "masking"}, {"sparsity", "kl"}, {"sparsity_weight", 0.1}},
               two_phases({{"type", "one_vs_all"}}, {{"type", "adam"}, {"lr", 0.01}}))},
      {"relu, gaussian, tied, L1 sparsity, softmax, adamw", variant(dir,
                                                                    {{"activation", "relu"},
                                                                     {"tied", true},
                                                                     {"corruption", "gaussian"},
                                                                     {"corruption_levels", {0.1}},
                                                                     {"sparsity", "l1"},
                                                                     {"sparsity_weight", 0.01}},
                                                                    two_phases({{"type", "softmax"}}, {{"type", "adamw"}, {"lr", 0.01}}))},
      {"tanh, salt and pepper, contractive, hidden layer, abstaining one-vs-all, sgd",
       [&] {
         auto json = variant(dir,
                             {{"activation", "tanh"},
                              {"output_activation", "linear"},
                              {"corruption", "salt_and_pepper"},
                              {"corruption_levels", {0.1}},
                              {"contractive_weight", 0.1}},
                             two_phases({{"type", "one_vs_all"}, {"abstain_threshold", 0.2}}, {{"type", "sgd"}, {"lr", 0.05}}));
         json["finetune"]["hidden"] = {{"units", 8}, {"dropout", 0.2}};
         json["pretrain"]["loss"] = "mse";
         return json;
       }()},
  };
  for (const auto& [name, json] : variants) {
    SCOPED_TRACE(name);
    const auto kernels = run_summary(json, true);
    const auto generic = run_summary(json, false);
    ASSERT_TRUE(kernels["test"]["accuracy"].is_number());
    expect_same_results(kernels, generic);
  }
}

TEST(CpuKernels, LibTorchsOperationsDrawTheKernelsMaskingNoise) {
  torch::manual_seed(5);
  const auto x = torch::rand({37, 29}) + 0.5;
  torch::manual_seed(11);
  const auto kernel = core::masking_noise(x, 0.3);
  core::use_cpu_kernels(false);
  torch::manual_seed(11);
  const auto generic = core::masking_noise(x, 0.3);
  // A rank holding rows from 7 on draws the rows a single process draws there.
  torch::manual_seed(11);
  const auto offset = [&] {
    core::BatchRowOffset rows_from(7);
    return core::masking_noise(x.narrow(0, 7, 30), 0.3);
  }();
  core::use_cpu_kernels(true);
  EXPECT_TRUE(torch::equal(kernel, generic));
  EXPECT_TRUE(torch::equal(offset, kernel.narrow(0, 7, 30)));
  const double kept = kernel.ne(0).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(kept, 0.7, 0.05);
}

// bfloat16 autocast on the CPU runs LibTorch's operations (the kernels step aside under autocast):
// against float32 on those same operations, the experiment learns alike and its figures show
// bfloat16's rounding (were autocast ignored, they would be bitwise the same).
TEST(CpuKernels, MixedPrecisionExperimentLearnsAsFloat32DoesInBfloat16) {
  encore::testing::TempDir dir;
  auto json = toy_experiment_config(dir);
  json["finetune"] = two_phases({{"type", "one_vs_all"}}, {{"type", "adam"}, {"lr", 0.01}});
  const auto float32 = run_summary(json, false);
  json["mixed_precision"] = "bf16";
  const auto bf16 = run_summary(json, false);
  const double float32_mse = float32["pretrain"]["test"]["reconstruction_mse"].get<double>();
  const double bf16_mse = bf16["pretrain"]["test"]["reconstruction_mse"].get<double>();
  EXPECT_NEAR(bf16_mse, float32_mse, 0.25 * float32_mse);
  EXPECT_NE(bf16_mse, float32_mse) << "bf16 ended bitwise where float32 did: autocast did nothing";
  EXPECT_NEAR(bf16["test"]["accuracy"].get<double>(), float32["test"]["accuracy"].get<double>(), 0.15);
}
