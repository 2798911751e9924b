// A user's own autoencoder, registered by name and pretrained by encore's machinery:
//
//   custom_autoencoder CONFIG RUN_DIR
//
// The model is a one-hidden-layer autoencoder with tanh codes and dropout on the code, which
// encore's built-in stack does not offer. It trains end to end.
#include <torch/torch.h>

#include <iostream>

#include "encore/core/config.h"
#include "encore/core/ops.h"
#include "encore/core/runtime.h"
#include "encore/finetune/experiment.h"
#include "encore/models/model.h"

namespace {

struct DropoutAutoencoderOptions {
  DropoutAutoencoderOptions(std::int64_t input_dim, std::int64_t code_dim) : input_dim_(input_dim), code_dim_(code_dim) {}
  TORCH_ARG(std::int64_t, input_dim);
  TORCH_ARG(std::int64_t, code_dim);
  TORCH_ARG(double, dropout) = 0.2;
};

class DropoutAutoencoderImpl : public torch::nn::Cloneable<DropoutAutoencoderImpl>, public encore::models::AutoencoderModel {
 public:
  explicit DropoutAutoencoderImpl(const DropoutAutoencoderOptions& options_) : options(options_) { reset(); }

  void reset() override {
    encoder = register_module("encoder", torch::nn::Linear(options.input_dim(), options.code_dim()));
    dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
    decoder = register_module("decoder", torch::nn::Linear(options.code_dim(), options.input_dim()));
  }

  torch::nn::Module& module() override { return *this; }
  // encore::core::linear computes the nn::Linear layers and their activations with each core
  // keeping its block of the weights.
  torch::Tensor encode(const torch::Tensor& x) override {
    return encore::core::linear(x, encoder->weight, encoder->bias, encore::core::Activation::kTanh);
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    return encore::core::linear(dropout(encode(x)), decoder->weight, decoder->bias, encore::core::Activation::kSigmoid);
  }
  std::int64_t code_dim() const override { return options.code_dim(); }

  DropoutAutoencoderOptions options;
  torch::nn::Linear encoder = nullptr, decoder = nullptr;
  torch::nn::Dropout dropout = nullptr;
};
TORCH_MODULE(DropoutAutoencoder);

// Reads this model's `model` section; the same function validates the user's file and rebuilds
// the model from the resolved config, so both see the same rules.
DropoutAutoencoderOptions read_options(encore::core::JsonReader& r, std::int64_t input_dim) {
  DropoutAutoencoderOptions options(input_dim, r.get<std::int64_t>("code_dim", 64, encore::core::at_least(std::int64_t{1})));
  options.dropout(r.get<double>("dropout", 0.2, encore::core::in_unit_interval_open_right()));
  r.finish();
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: custom_autoencoder CONFIG RUN_DIR\n";
    return 2;
  }
  encore::core::prepare_process(argv);
  auto components = encore::finetune::builtin_components();
  components.models.add(
      "dropout_autoencoder", "one tanh layer with dropout on the code (example)",
      {[](encore::core::JsonReader& r) {
         const auto o = read_options(r, 1);
         return encore::core::Json{{"type", "dropout_autoencoder"}, {"code_dim", o.code_dim()}, {"dropout", o.dropout()}};
       },
       [](const encore::core::Json& resolved, std::int64_t input_dim) -> std::shared_ptr<encore::models::AutoencoderModel> {
         encore::core::JsonReader r(resolved);
         r.has("type");
         return DropoutAutoencoder(read_options(r, input_dim)).ptr();
       }});
  try {
    const auto config = encore::finetune::load_experiment(argv[1], {}, components);
    encore::finetune::RunOptions options;
    options.run_dir = argv[2];
    options.log = &std::cerr;
    const auto summary = encore::finetune::run_experiment(config, components, options);
    std::cout << "validation reconstruction MSE " << summary["pretrain"]["validation"]["reconstruction_mse"] << "\n";
  } catch (const encore::core::ConfigError& e) {
    std::cerr << argv[1] << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
