#include "encore/models/registry.h"

#include <torch/torch.h>

#include "encore/models/convolutional.h"
#include "encore/models/ladder.h"
#include "encore/models/variational.h"

namespace encore::models {

namespace {

// A built-in model: its options (input width from the data) make its module, held by Holder.
template <class Holder, class Options>
void add_builtin_model(ModelRegistry& registry, const std::string& name, std::string description) {
  add_model<Options>(registry, name, std::move(description),
                     [](Options options, std::int64_t input_dim) -> std::shared_ptr<AutoencoderModel> {
                       options.input_dim(input_dim);
                       return Holder(options).ptr();
                     });
}

}  // namespace

void register_builtin_models(ModelRegistry& registry) {
  add_builtin_model<StackedAutoencoder, StackedAutoencoderOptions>(
      registry, "stacked_autoencoder", "dense stacked autoencoder (plain, denoising, sparse or contractive; tied or untied)");
  add_builtin_model<LadderNetwork, LadderNetworkOptions>(
      registry, "ladder_network",
      "ladder network: a batch-normalised dense encoder, its noisy and clean paths, a denoising decoder with lateral connections "
      "(trained in semi-supervised fine-tuning phases)");
  add_model<ConvolutionalAutoencoderOptions>(
      registry, "convolutional_autoencoder",
      "convolutional autoencoder over images: convolution blocks (stride, pooling, batch norm), an optional dense code, a mirrored "
      "decoder",
      [](ConvolutionalAutoencoderOptions options, const std::vector<std::int64_t>& example_shape) -> std::shared_ptr<AutoencoderModel> {
        options.input_dim(feature_count(example_shape)).example_shape(example_shape);
        return ConvolutionalAutoencoder(options).ptr();
      });
  add_builtin_model<VariationalAutoencoder, VariationalAutoencoderOptions>(
      registry, "variational_autoencoder",
      "dense variational autoencoder: a Gaussian latent, reparameterised samples, a KL term with a weight and a warm-up (generative: "
      "encore sample)");
}

ModelConfig parse_model_config(core::JsonReader reader, const ModelRegistry& registry) {
  ModelConfig c;
  c.type = reader.choice("type", registry.names(), "stacked_autoencoder");
  c.options = registry.at(c.type).factory.parse(reader);
  // A user's parse need not spell the type; the resolved config always does.
  c.options["type"] = c.type;
  return c;
}

std::int64_t feature_count(const std::vector<std::int64_t>& example_shape) {
  std::int64_t features = 1;
  for (const auto side : example_shape) features *= side;
  return features;
}

std::shared_ptr<AutoencoderModel> build_model(const ModelConfig& config, const ModelRegistry& registry,
                                              const std::vector<std::int64_t>& example_shape) {
  return registry.at(config.type).factory.build(config.options, example_shape);
}

}  // namespace encore::models
