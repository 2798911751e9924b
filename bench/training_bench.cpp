// Training throughput of encore on the five jobs of bench/peer_training.py (and a semi-supervised
// fine-tuning step), through the same library
// calls `encore run` makes (pretrain(), finetune(), Trainer), and the matrix-multiply rate of the
// shapes those jobs use: the limit a GEMM-bound step can reach on this machine.
//
// Usage: training_bench CASE [--samples N] [--device cpu|cuda] [--batch-size B]
//   CASE: gemm_denoising_layer | gemm_finetune | denoising_layer | greedy_stack | small_relu | finetune | conv_autoencoder |
//         semi_supervised (encore alone: its throughput against finetune's supervised step) |
//         ladder_finetune | ladder_semi_supervised (encore alone: a ladder network's supervised and semi-supervised steps)
//   --device cuda: the training jobs on the GPU (scripts/device-check); --batch-size: every job's
//   batch size instead of its own (128, or 64 for small_relu).
// Prints one JSON line per case.
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <string>

#include <fmt/format.h>

#include "encore/core/config.h"
#include "encore/core/dataset.h"
#include "encore/core/ops.h"
#include "encore/core/optim.h"
#include "encore/core/runtime.h"
#include "encore/finetune/experiment.h"
#include "encore/finetune/finetune.h"
#include "encore/finetune/heads.h"
#include "encore/models/convolutional.h"
#include "encore/models/ladder.h"
#include "encore/models/model.h"
#include "encore/models/pretrain.h"

namespace {

using encore::core::Json;
using encore::core::JsonReader;
namespace core = encore::core;
namespace models = encore::models;
namespace ft = encore::finetune;

const std::string kData = "/usr/share/datasets/fashion-mnist";

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Result {
  std::int64_t samples;
  double seconds;
  /// Floating-point operations of the matrix products per trained example, when counted.
  double gemm_flops_per_sample = 0;
};

/// Where and in what batches the training jobs run.
struct JobSettings {
  std::int64_t samples = 60000;
  torch::Device device = torch::kCPU;
  /// 0: each job's own batch size.
  std::int64_t batch_size = 0;
};

struct Fixture {
  JobSettings settings;
  core::Dataset data;
  core::Scaler scaler;
  torch::Tensor train_rows, validation_rows;
  ft::Components components = ft::builtin_components();
  const core::OptimizerRegistry& optimizers = components.optimizers;

  explicit Fixture(JobSettings job) : settings(job) {
    data = core::load_idx_dataset(kData + "/train-images-idx3-ubyte.gz", kData + "/train-labels-idx1-ubyte.gz");
    const auto samples = std::min(settings.samples, data.size());
    train_rows = torch::arange(samples);
    // A small validation set: pretrain() and finetune() always validate, and the peer does not.
    validation_rows = torch::arange(data.size() - 256, data.size());
    scaler = core::Scaler::fit(core::Scaling::kUnit, data, train_rows);
  }
  core::BatchSource source(const torch::Tensor& rows, std::int64_t batch_size, bool shuffle) const {
    return core::BatchSource(data, rows, scaler, batch_size, shuffle, 1);
  }
  std::int64_t batch(std::int64_t job_batch_size) const { return settings.batch_size > 0 ? settings.batch_size : job_batch_size; }
  core::StageContext context() const {
    core::StageContext out;
    out.device = settings.device;
    return out;
  }
};

std::shared_ptr<models::StackedAutoencoder::Impl> stack(std::vector<std::int64_t> hidden, models::Activation activation,
                                                        std::vector<double> noise) {
  auto options = models::StackedAutoencoderOptions(784, std::move(hidden))
                     .activation(activation)
                     .output_activation(models::Activation::kSigmoid)
                     .corruption(noise.empty() ? models::Corruption::kNone : models::Corruption::kMasking)
                     .corruption_levels(std::move(noise));
  return std::make_shared<models::StackedAutoencoderImpl>(options);
}

Result pretrain_case(const Fixture& f, const std::shared_ptr<models::AutoencoderModel>& model, const Json& pretrain_json,
                     std::int64_t stages) {
  const auto config = models::parse_pretrain_config(JsonReader(pretrain_json), f.optimizers);
  const auto batch = config.runs_greedy() ? config.greedy.batch_size : config.end_to_end.batch_size;
  const auto train = f.source(f.train_rows, batch, true);
  const auto validation = f.source(f.validation_rows, 256, false);
  model->module().to(f.settings.device);
  const auto start = std::chrono::steady_clock::now();
  models::pretrain(model, config, train, &validation, f.context());
  return {train.size() * stages, seconds_since(start)};
}

Json one_epoch(std::int64_t batch_size) {
  return Json{{"epochs", 1}, {"batch_size", batch_size}, {"optimizer", {{"type", "adam"}, {"lr", 1e-3}}}};
}

Result denoising_layer(const Fixture& f) {
  auto result = pretrain_case(f, stack({1000}, models::Activation::kSigmoid, {0.3}),
                              Json{{"mode", "greedy"}, {"loss", "bce"}, {"greedy", one_epoch(f.batch(128))}}, 1);
  result.gemm_flops_per_sample = 5 * 2.0 * 784 * 1000;
  return result;
}

Result greedy_stack(const Fixture& f) {
  return pretrain_case(f, stack({1000, 1000, 1000}, models::Activation::kSigmoid, {0.1, 0.2, 0.3}),
                       Json{{"mode", "greedy"}, {"loss", "bce"}, {"greedy", one_epoch(f.batch(128))}}, 3);
}

Result small_relu(const Fixture& f) {
  return pretrain_case(f, stack({256, 64}, models::Activation::kRelu, {}),
                       Json{{"mode", "end_to_end"}, {"loss", "mse"}, {"end_to_end", one_epoch(f.batch(64))}}, 1);
}

// A convolutional autoencoder over the 28x28 images: 32 maps of 3x3 kernels, ReLU, max pooling 2,
// then 64 maps the same way, and the mirrored decoder (upsampling, transposed convolutions, a
// sigmoid reconstruction), trained end to end with MSE in batches of 128.
Result conv_autoencoder(const Fixture& f) {
  const auto options = models::ConvolutionalAutoencoderOptions(784, {32, 64}).pooling({2});
  return pretrain_case(f, std::make_shared<models::ConvolutionalAutoencoderImpl>(options),
                       Json{{"mode", "end_to_end"}, {"loss", "mse"}, {"end_to_end", one_epoch(f.batch(128))}}, 1);
}

// One epoch of fine-tuning `model` (784-1000-1000-1000) + 10 one-vs-all on the whole training set
// (`phase` adds to the phase's settings). A semi-supervised phase's epoch is a pass over the training set
// as unlabelled rows, each step with `labelled_batch` rows of its first 1,000 as labelled ones.
Result finetune_case(const Fixture& f, Json phase, std::int64_t labelled_batch, std::shared_ptr<models::AutoencoderModel> model) {
  const auto& heads = f.components.heads;
  phase.update(one_epoch(labelled_batch));
  phase["name"] = "all";
  const Json json{{"head", {{"type", "one_vs_all"}}}, {"phases", Json::array({phase})}};
  const auto config = ft::parse_finetune_config(JsonReader(json), f.optimizers, heads);
  auto classifier = ft::build_classifier(config, std::move(model), heads, 10);
  const bool semi_supervised = config.phases.front().semi_supervised.has_value();
  const auto labelled = semi_supervised ? f.train_rows.narrow(0, 0, std::min<std::int64_t>(1000, f.train_rows.size(0))) : f.train_rows;
  const auto train = f.source(labelled, labelled_batch, true);
  const auto unlabelled = f.source(f.train_rows, 256, true);
  const auto validation = f.source(f.validation_rows, 256, false);
  classifier->to(f.settings.device);
  const auto start = std::chrono::steady_clock::now();
  ft::finetune(classifier, config, train, &validation, f.context(), &unlabelled);
  if (!semi_supervised) return {train.size(), seconds_since(start)};
  const auto unlabelled_batch = config.phases.front().semi_supervised->unlabelled_batch_size;
  const auto steps = (f.train_rows.size(0) + unlabelled_batch - 1) / unlabelled_batch;
  return {f.train_rows.size(0) + steps * labelled_batch, seconds_since(start)};
}

Result finetune(const Fixture& f) {
  auto result =
      finetune_case(f, Json{{"trainable", {"encoder", "head"}}}, f.batch(128), stack({1000, 1000, 1000}, models::Activation::kSigmoid, {}));
  // Forward and weight gradients of every layer, input gradients of all but the first.
  const double weights = 784 * 1000 + 2 * 1000 * 1000 + 1000 * 10;
  result.gemm_flops_per_sample = 2.0 * (3 * weights - 784 * 1000);
  return result;
}

// The supervised step of finetune plus every layer's denoising reconstruction cost (masking 0.2) on
// 128 unlabelled rows per 32 labelled ones; samples are labelled plus unlabelled rows.
Result semi_supervised(const Fixture& f) {
  return finetune_case(
      f,
      Json{{"trainable", {"encoder", "decoder", "head"}},
           {"semi_supervised", {{"unlabelled_batch_size", f.batch(128)}, {"layer_weights", {1.0, 0.1, 0.1}}, {"loss", "bce"}}}},
      32, stack({1000, 1000, 1000}, models::Activation::kSigmoid, {0.2}));
}

std::shared_ptr<models::AutoencoderModel> ladder() {
  return std::make_shared<models::LadderNetworkImpl>(models::LadderNetworkOptions(784, {1000, 1000, 1000}));
}

// A ladder network 784-1000-1000-1000 trained on labels alone: its step is a clean pass for the
// running statistics and a noisy one for the head.
Result ladder_finetune(const Fixture& f) { return finetune_case(f, Json{{"trainable", {"encoder", "head"}}}, f.batch(128), ladder()); }

// The same ladder's semi-supervised step: 32 labelled rows, and 128 unlabelled ones through the
// clean path, the noisy path and the decoder with every level's cost.
Result ladder_semi_supervised(const Fixture& f) {
  return finetune_case(f,
                       Json{{"trainable", {"encoder", "head"}},
                            {"semi_supervised", {{"unlabelled_batch_size", f.batch(128)}, {"layer_weights", {1000.0, 10.0, 0.1, 0.1}}}}},
                       32, ladder());
}

// The matrix products of one training step, timed on their own, computed both ways encore could:
// each product by the BLAS's own threads, and split by weight rows into one single-threaded
// product per thread as core::linear does. The faster is the limit (both are printed).
struct GemmRate {
  Result threaded, owned_blocks;
};

GemmRate gemm_rate(const std::vector<std::int64_t>& widths, std::int64_t batch) {
  std::vector<torch::Tensor> weights, inputs, output_grads, outputs, weight_grads, partials;
  for (std::size_t k = 0; k + 1 < widths.size(); ++k) {
    weights.push_back(torch::randn({widths[k + 1], widths[k]}));
    inputs.push_back(torch::rand({batch, widths[k]}));
    output_grads.push_back(torch::randn({batch, widths[k + 1]}));
    outputs.push_back(torch::empty({batch, widths[k + 1]}));
    weight_grads.push_back(torch::empty({widths[k + 1], widths[k]}));
    partials.push_back(torch::empty({core::owned_row_blocks(widths[k + 1], widths[k]), batch, widths[k]}));
  }
  const auto threaded = [&] {
    for (std::size_t k = 0; k < weights.size(); ++k) {
      torch::mm(inputs[k], weights[k].t());
      torch::mm(output_grads[k].t(), inputs[k]);
      // The first layer needs no gradient with respect to the data.
      if (k > 0) torch::mm(output_grads[k], weights[k]);
    }
  };
  const auto owned_blocks = [&] {
    for (std::size_t k = 0; k < weights.size(); ++k) {
      core::for_each_owned_rows(weights[k].size(0), weights[k].size(1), [&](std::int64_t block, std::int64_t first, std::int64_t end) {
        const auto rows = end - first;
        auto output = outputs[k].narrow(1, first, rows);
        auto weight_grad = weight_grads[k].narrow(0, first, rows);
        at::mm_out(output, inputs[k], weights[k].narrow(0, first, rows).t());
        at::mm_out(weight_grad, output_grads[k].narrow(1, first, rows).t(), inputs[k]);
        if (k > 0) {
          auto partial = partials[k][block];
          at::mm_out(partial, output_grads[k].narrow(1, first, rows), weights[k].narrow(0, first, rows));
        }
      });
    }
  };
  double flops = 0;
  for (std::size_t k = 0; k < weights.size(); ++k) flops += (k > 0 ? 3 : 2) * 2.0 * static_cast<double>(weights[k].numel() * batch);
  const auto time = [&](const std::function<void()>& step) {
    for (int i = 0; i < 20; ++i) step();
    const int repeats = 400;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < repeats; ++i) step();
    return Result{repeats * batch, seconds_since(start), flops / static_cast<double>(batch)};
  };
  return {time(threaded), time(owned_blocks)};
}

Json gemm_json(const GemmRate& rate) {
  const auto gflops = [](const Result& r) { return r.samples / r.seconds * r.gemm_flops_per_sample / 1e9; };
  const auto& best = gflops(rate.threaded) >= gflops(rate.owned_blocks) ? rate.threaded : rate.owned_blocks;
  return Json{{"samples", best.samples},
              {"seconds", best.seconds},
              {"samples_per_second", best.samples / best.seconds},
              {"gemm_gflops", gflops(best)},
              {"threaded_gemm_gflops", gflops(rate.threaded)},
              {"owned_blocks_gemm_gflops", gflops(rate.owned_blocks)}};
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "usage: training_bench CASE [--samples N] [--device cpu|cuda] [--batch-size B]\n";
  if (argc < 2 || argc % 2 != 0) {
    std::cerr << usage;
    return 2;
  }
  const std::string name = argv[1];
  JobSettings job;
  for (int i = 2; i < argc; i += 2) {
    const std::string option = argv[i], value = argv[i + 1];
    if (option == "--samples") {
      job.samples = std::stoll(value);
    } else if (option == "--device") {
      job.device = core::resolve_device(value);
    } else if (option == "--batch-size") {
      job.batch_size = std::stoll(value);
    } else {
      std::cerr << usage;
      return 2;
    }
  }
  core::prepare_process(argv);
  core::configure_threads(0);
  torch::manual_seed(0);
  const std::map<std::string, std::function<Json()>> gemm_cases{
      {"gemm_denoising_layer",
       [] {
         return gemm_json(gemm_rate({784, 1000, 784}, 128));
       }},
      {"gemm_finetune",
       [] {
         return gemm_json(gemm_rate({784, 1000, 1000, 1000, 10}, 128));
       }},
  };
  const std::map<std::string, std::function<Result()>> cases{
      {"denoising_layer", [&] { return denoising_layer(Fixture(job)); }},
      {"greedy_stack", [&] { return greedy_stack(Fixture(job)); }},
      {"small_relu", [&] { return small_relu(Fixture(job)); }},
      {"finetune", [&] { return finetune(Fixture(job)); }},
      {"conv_autoencoder", [&] { return conv_autoencoder(Fixture(job)); }},
      {"semi_supervised", [&] { return semi_supervised(Fixture(job)); }},
      {"ladder_finetune", [&] { return ladder_finetune(Fixture(job)); }},
      {"ladder_semi_supervised", [&] { return ladder_semi_supervised(Fixture(job)); }},
  };
  Json out;
  if (const auto gemm = gemm_cases.find(name); gemm != gemm_cases.end()) {
    out = gemm->second();
  } else if (const auto found = cases.find(name); found != cases.end()) {
    const auto r = found->second();
    out = Json{{"samples", r.samples}, {"seconds", r.seconds}, {"samples_per_second", r.samples / r.seconds}};
    if (r.gemm_flops_per_sample > 0) out["gemm_gflops"] = r.samples / r.seconds * r.gemm_flops_per_sample / 1e9;
  } else {
    std::cerr << "training_bench: unknown case \"" << name << "\"\n";
    return 2;
  }
  out["case"] = name;
  out["blas"] = core::blas_description();
  out["kernel"] = core::blas_kernel();
  out["threads"] = at::get_num_threads();
  out["libtorch"] = TORCH_VERSION;
  std::cout << out.dump() << "\n";
  return 0;
}
