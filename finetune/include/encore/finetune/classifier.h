#pragma once
/// A classifier = a (pretrained) encoder + an optional hidden layer + a head, with named blocks for
/// freezing, and loading of pretrained weights by parameter name with a report.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "encore/core/config.h"
#include "encore/finetune/heads.h"
#include "encore/models/model.h"

namespace encore::finetune {

/// An optional fully connected layer between the encoder and the head.
struct HiddenLayerConfig {
  /// Width of the layer.
  std::int64_t units = 256;
  /// Activation of the layer.
  models::Activation activation = models::Activation::kRelu;
  /// Dropout on the layer's outputs while training.
  double dropout = 0.0;

  /// The fields of the config's `finetune.hidden` object (core/options.h).
  template <class Fields>
  void fields(Fields& f) {
    f("units", units, "width of the layer", core::at_least(std::int64_t{1}));
    f("activation", activation, "activation of the layer", models::activation_choices());
    f("dropout", dropout, "dropout on the layer's outputs while training", core::in_unit_interval_open_right());
  }
};

/// A group of parameters frozen and unfrozen together, addressed by name: "encoder",
/// "encoder.layer0", ..., "decoder", "hidden", "head". For a model with greedy layers, "encoder" is
/// the encoder halves of the layers used and "decoder" their decoder halves (which only a
/// semi-supervised phase's reconstruction costs train); for a model without them (one that encodes
/// in one piece), "encoder" is every parameter of the model, its decoder's included, there is no
/// "decoder" block, and the model's encoder parts (AutoencoderModel::encoder_parts) are the blocks
/// "encoder.PART" ("encoder.block0", ..., "encoder.code" for a convolutional autoencoder).
struct Block {
  /// The name phases use.
  std::string name;
  /// Its parameters.
  std::vector<torch::Tensor> parameters;
  /// Modules put in eval mode while the block is frozen (dropout, batch norm).
  std::vector<std::shared_ptr<torch::nn::Module>> modules;
  /// For encoder layers and encoder parts: 0 for the bottom one; used by per-depth learning-rate decay.
  std::optional<int> encoder_layer;
};

/// An encoder, an optional hidden layer and a head (see Block for freezing by name).
class ClassifierImpl : public torch::nn::Module {
 public:
  /// Makes a head for features of the given width.
  using HeadMaker = std::function<std::shared_ptr<Head>(std::int64_t input_dim)>;

  /// Uses the first `encoder_depth` greedy layers of the autoencoder (all of its code when absent).
  /// An `encoder_depth` outside [1, layers], or given for a model without layers, is a
  /// std::invalid_argument saying so.
  ClassifierImpl(std::shared_ptr<models::AutoencoderModel> autoencoder, std::optional<int> encoder_depth,
                 std::optional<HiddenLayerConfig> hidden, const HeadMaker& make_head);

  /// Features the head sees.
  torch::Tensor features(const torch::Tensor& x);
  /// Features the head sees when Gaussian noise of deviation `deviation` is added to the input and
  /// to every encoder layer's code (to the code alone for a model that encodes in one piece).
  torch::Tensor noisy_features(const torch::Tensor& x, double deviation);
  /// Head scores [B, K].
  torch::Tensor forward(const torch::Tensor& x);
  /// Per-class probabilities [B, K] and predictions [B] (class index, -1 where the head abstains)
  /// of a batch of model inputs, both on the CPU. Call in eval mode without gradients.
  std::pair<torch::Tensor, torch::Tensor> classify(const torch::Tensor& x);

  /// Every block, from the input up.
  const std::vector<Block>& blocks() const { return blocks_; }
  /// Their names.
  std::vector<std::string> block_names() const;
  /// The block of a name; an unknown name is an error listing the available ones.
  const Block& block(const std::string& name) const;
  /// Makes exactly the parameters of the named blocks trainable (requires_grad); all others frozen.
  void set_trainable(const std::set<std::string>& names);
  /// Puts frozen blocks' modules in eval mode; call after train().
  void keep_frozen_blocks_in_eval(const std::set<std::string>& trainable);

  /// The head.
  Head& head() { return *head_; }
  /// The autoencoder whose encoder it uses.
  models::AutoencoderModel& autoencoder() { return *autoencoder_; }
  /// The greedy layers whose encoders it uses, from the input up (empty for a model that encodes in one piece).
  const std::vector<models::AutoencoderLayer>& encoder_layers() const { return layers_; }
  /// Encoder layers used.
  int encoder_layer_count() const { return static_cast<int>(layers_.size()); }
  /// What a semi-supervised phase's layer weights weigh: the encoder layers used, or for a model
  /// that encodes in one piece the levels it scores itself (AutoencoderModel::denoising_levels).
  int denoising_levels() const { return layers_.empty() ? autoencoder_->denoising_levels() : encoder_layer_count(); }

 private:
  std::shared_ptr<models::AutoencoderModel> autoencoder_;
  std::vector<models::AutoencoderLayer> layers_;
  torch::nn::Linear hidden_ = nullptr;
  torch::nn::Dropout hidden_dropout_ = nullptr;
  models::Activation hidden_activation_ = models::Activation::kRelu;
  std::shared_ptr<Head> head_;
  std::vector<Block> blocks_;
};
TORCH_MODULE(Classifier);

/// What loading by name found.
struct LoadReport {
  /// A tensor whose shape differs.
  struct Mismatch {
    /// Its name.
    std::string name;
    /// Its shape in the model.
    std::vector<std::int64_t> expected;
    /// Its shape in the file.
    std::vector<std::int64_t> found;
  };
  /// Tensors copied.
  std::vector<std::string> matched;
  /// Tensors of the model that the file lacks (they keep their values).
  std::vector<std::string> missing;
  /// Tensors of the file that the model lacks.
  std::vector<std::string> unexpected;
  /// Tensors of different shapes (not copied).
  std::vector<Mismatch> mismatched;

  /// Whether every tensor of the model was loaded.
  bool complete() const { return missing.empty() && mismatched.empty(); }
  /// `{"matched", "missing", "unexpected", "mismatched"}` for load_report.json.
  core::Json to_json() const;
};

/// A saved module archive (pretrained.pt, model.pt), its ZIP checksums verified before LibTorch
/// parses it; a damaged or unreadable file is a DataError naming it.
torch::serialize::InputArchive read_module_archive(const std::string& file);

/// Copies the tensors of a module archive into `module` by parameter name, with shape checks.
/// Copies only matching tensors; reports the rest.
LoadReport load_by_name(torch::nn::Module& module, torch::serialize::InputArchive& archive);
/// The same, from a file read with read_module_archive.
LoadReport load_by_name(torch::nn::Module& module, const std::string& file);

}  // namespace encore::finetune
