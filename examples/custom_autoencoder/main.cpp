// A user's own autoencoder, registered by name, pretrained, fine-tuned and evaluated by encore's
// machinery from a JSON config:
//
//   custom_autoencoder CONFIG RUN_DIR
//
// The model is a one-hidden-layer autoencoder with tanh codes and dropout on the code, which
// encore's built-in stack does not offer. It pretrains end to end; fine-tuning puts a
// one-versus-all head on its code. It has no layers to pick from, so its "encoder" block holds the
// whole model (decoder included): freezing "encoder" freezes all of it.
#include <torch/torch.h>

#include <iostream>

#include "encore/core/config.h"
#include "encore/core/ops.h"
#include "encore/core/options.h"
#include "encore/core/runtime.h"
#include "encore/finetune/experiment.h"
#include "encore/models/model.h"
#include "encore/models/registry.h"

namespace {

// The options a config's `model` object sets, declared once: encore reads, checks and writes them.
struct DropoutAutoencoderOptions {
  std::int64_t code_dim = 64;
  double dropout = 0.2;

  template <class Fields>
  void fields(Fields& f) {
    f("code_dim", code_dim, "width of the code", encore::core::at_least(std::int64_t{1}));
    f("dropout", dropout, "probability of zeroing a code unit while training", encore::core::in_unit_interval_open_right());
  }
};

class DropoutAutoencoderImpl : public torch::nn::Cloneable<DropoutAutoencoderImpl>, public encore::models::AutoencoderModel {
 public:
  DropoutAutoencoderImpl(const DropoutAutoencoderOptions& options_, std::int64_t input_dim_) : options(options_), input_dim(input_dim_) {
    reset();
  }

  void reset() override {
    encoder = register_module("encoder", torch::nn::Linear(input_dim, options.code_dim));
    dropout = register_module("dropout", torch::nn::Dropout(options.dropout));
    decoder = register_module("decoder", torch::nn::Linear(options.code_dim, input_dim));
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
  std::int64_t code_dim() const override { return options.code_dim; }
  // The same computations in TorchScript (eval mode: no dropout): model.pt and pretrained.pt then
  // have forward, encode and predict methods that work without encore.
  std::string torchscript() const override {
    return "def code_of(self, x: Tensor, depth: int) -> Tensor:\n"
           "    return torch.tanh(torch.linear(x, self.encoder.weight, self.encoder.bias))\n\n"
           "def reconstruction_of(self, x: Tensor) -> Tensor:\n"
           "    return torch.sigmoid(torch.linear(self.code_of(x, 1), self.decoder.weight, self.decoder.bias))\n";
  }

  DropoutAutoencoderOptions options;
  std::int64_t input_dim;
  torch::nn::Linear encoder = nullptr, decoder = nullptr;
  torch::nn::Dropout dropout = nullptr;
};
TORCH_MODULE(DropoutAutoencoder);

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: custom_autoencoder CONFIG RUN_DIR\n";
    return 2;
  }
  encore::core::prepare_process(argv);
  auto components = encore::finetune::builtin_components();
  encore::models::add_model<DropoutAutoencoderOptions>(
      components.models, "dropout_autoencoder", "one tanh layer with dropout on the code (example)",
      [](const DropoutAutoencoderOptions& options, std::int64_t input_dim) { return DropoutAutoencoder(options, input_dim).ptr(); });
  try {
    const auto config = encore::finetune::load_experiment(argv[1], {}, components);
    encore::finetune::RunOptions options;
    options.run_dir = argv[2];
    options.log = &std::cerr;
    const auto summary = encore::finetune::run_experiment(config, components, options);
    std::cout << "validation reconstruction MSE " << summary["pretrain"]["validation"]["reconstruction_mse"] << "\n";
    std::cout << "test accuracy " << summary["test"]["accuracy"] << "\n";
  } catch (const encore::core::ConfigError& e) {
    std::cerr << argv[1] << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
