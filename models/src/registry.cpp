#include "encore/models/registry.h"

#include <torch/torch.h>

#include "encore/models/convolutional.h"
#include "encore/models/ladder.h"
#include "encore/models/variational.h"

namespace encore::models {

void register_builtin_models(ModelRegistry& registry) {
  add_model<StackedAutoencoderOptions>(registry, "stacked_autoencoder",
                                       "dense stacked autoencoder (plain, denoising, sparse or contractive; tied or untied)",
                                       [](StackedAutoencoderOptions options, std::int64_t input_dim) -> std::shared_ptr<AutoencoderModel> {
                                         options.input_dim(input_dim);
                                         return StackedAutoencoder(options).ptr();
                                       });
  add_model<LadderNetworkOptions>(registry, "ladder_network",
                                  "ladder network: a batch-normalised dense encoder, its noisy and clean paths, a denoising decoder "
                                  "with lateral connections (trained in semi-supervised fine-tuning phases)",
                                  [](LadderNetworkOptions options, std::int64_t input_dim) -> std::shared_ptr<AutoencoderModel> {
                                    options.input_dim(input_dim);
                                    return LadderNetwork(options).ptr();
                                  });
  add_model<ConvolutionalAutoencoderOptions>(
      registry, "convolutional_autoencoder",
      "convolutional autoencoder over images: convolution blocks (stride, pooling, batch norm), an optional dense code, a mirrored decoder",
      [](ConvolutionalAutoencoderOptions options, std::int64_t input_dim) -> std::shared_ptr<AutoencoderModel> {
        options.input_dim(input_dim);
        return ConvolutionalAutoencoder(options).ptr();
      });
  add_model<VariationalAutoencoderOptions>(
      registry, "variational_autoencoder",
      "dense variational autoencoder: a Gaussian latent, reparameterised samples, a KL term with a weight and a warm-up (generative: "
      "encore sample)",
      [](VariationalAutoencoderOptions options, std::int64_t input_dim) -> std::shared_ptr<AutoencoderModel> {
        options.input_dim(input_dim);
        return VariationalAutoencoder(options).ptr();
      });
}

ModelConfig parse_model_config(core::JsonReader reader, const ModelRegistry& registry) {
  ModelConfig c;
  c.type = reader.choice("type", registry.names(), "stacked_autoencoder");
  c.options = registry.at(c.type).factory.parse(reader);
  // A user's parse need not spell the type; the resolved config always does.
  c.options["type"] = c.type;
  return c;
}

std::shared_ptr<AutoencoderModel> build_model(const ModelConfig& config, const ModelRegistry& registry, std::int64_t input_dim) {
  return registry.at(config.type).factory.build(config.options, input_dim);
}

}  // namespace encore::models
