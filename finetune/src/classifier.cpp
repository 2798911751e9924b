#include "encore/finetune/classifier.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "encore/core/ops.h"
#include "encore/core/zip_archive.h"

namespace encore::finetune {

ClassifierImpl::ClassifierImpl(std::shared_ptr<models::AutoencoderModel> autoencoder, std::optional<int> encoder_depth,
                               std::optional<HiddenLayerConfig> hidden, const HeadMaker& make_head)
    : autoencoder_(std::move(autoencoder)) {
  register_module("encoder", autoencoder_->module().shared_from_this());
  const auto all_layers = autoencoder_->greedy_layers();
  Block encoder{"encoder", {}, {autoencoder_->module().shared_from_this()}, std::nullopt};
  std::int64_t features = autoencoder_->code_dim();
  if (all_layers.empty()) {
    if (encoder_depth) throw std::invalid_argument("Classifier: encoder_depth needs a model with layers; this model encodes in one piece");
    encoder.parameters = autoencoder_->module().parameters();
    int index = 0;
    for (auto& part : autoencoder_->encoder_parts()) {
      blocks_.push_back(Block{"encoder." + part.name, std::move(part.parameters), {std::move(part.module)}, index++});
    }
  } else {
    const int depth = encoder_depth.value_or(static_cast<int>(all_layers.size()));
    if (depth < 1 || depth > static_cast<int>(all_layers.size())) {
      throw std::invalid_argument(fmt::format("Classifier: encoder_depth must be in [1, {}], got {}", all_layers.size(), depth));
    }
    layers_.assign(all_layers.begin(), all_layers.begin() + depth);
    // Only the encoder half of a layer takes part in classification; its decoder stays as pretrained
    // unless a semi-supervised phase trains it (the block "decoder"). The layers' modes follow
    // their encoder blocks: "decoder" holds no module of its own.
    Block decoder{"decoder", {}, {}, std::nullopt};
    for (int k = 0; k < depth; ++k) {
      auto& layer = layers_[static_cast<std::size_t>(k)];
      Block block{fmt::format("encoder.layer{}", k), {layer->encoder_weight, layer->encoder_bias}, {layer.ptr()}, k};
      encoder.parameters.insert(encoder.parameters.end(), block.parameters.begin(), block.parameters.end());
      blocks_.push_back(std::move(block));
      // A tied layer decodes with its encoder's weight: only its bias is the decoder's own.
      if (!layer->options.tied()) decoder.parameters.push_back(layer->decoder_weight_);
      decoder.parameters.push_back(layer->decoder_bias);
    }
    blocks_.push_back(std::move(decoder));
    features = layers_.back()->options.hidden_dim();
  }
  blocks_.insert(blocks_.begin(), std::move(encoder));
  if (hidden) {
    hidden_ = register_module("hidden", torch::nn::Linear(features, hidden->units));
    hidden_dropout_ = register_module("hidden_dropout", torch::nn::Dropout(hidden->dropout));
    hidden_activation_ = hidden->activation;
    blocks_.push_back(Block{"hidden", hidden_->parameters(), {hidden_.ptr(), hidden_dropout_.ptr()}, std::nullopt});
    features = hidden->units;
  }
  head_ = make_head(features);
  register_module("head", head_->module().shared_from_this());
  blocks_.push_back(Block{"head", head_->module().parameters(), {head_->module().shared_from_this()}, std::nullopt});
}

torch::Tensor ClassifierImpl::features(const torch::Tensor& x) { return noisy_features(x, 0.0); }

torch::Tensor ClassifierImpl::noisy_features(const torch::Tensor& x, double deviation) {
  const auto noise = [deviation](const torch::Tensor& t) { return deviation > 0 ? t + torch::randn_like(t) * deviation : t; };
  torch::Tensor h;
  if (layers_.empty()) {
    h = noise(autoencoder_->encode(x));
  } else {
    h = noise(x);
    for (auto& layer : layers_) h = noise(layer->encode(h));
  }
  if (hidden_) h = hidden_dropout_(core::linear(h, hidden_->weight, hidden_->bias, hidden_activation_));
  return h;
}

torch::Tensor ClassifierImpl::forward(const torch::Tensor& x) { return head_->forward(features(x)); }

std::vector<std::string> ClassifierImpl::block_names() const {
  std::vector<std::string> names;
  for (const auto& b : blocks_) names.push_back(b.name);
  return names;
}

std::pair<torch::Tensor, torch::Tensor> ClassifierImpl::classify(const torch::Tensor& x) {
  const auto scores = forward(x);
  return {head().probabilities(scores).cpu(), head().predict(scores).cpu()};
}

const Block& ClassifierImpl::block(const std::string& name) const {
  for (const auto& b : blocks_) {
    if (b.name == name) return b;
  }
  std::string known;
  for (const auto& b : blocks_) known += (known.empty() ? "" : ", ") + b.name;
  throw std::invalid_argument(fmt::format("unknown block \"{}\" (available: {})", name, known));
}

void ClassifierImpl::set_trainable(const std::set<std::string>& names) {
  for (auto& p : parameters()) p.requires_grad_(false);
  for (const auto& name : names) {
    // Tensor handles share their parameter: setting the flag on a copy sets it on the parameter.
    for (auto p : block(name).parameters) p.requires_grad_(true);
  }
}

void ClassifierImpl::keep_frozen_blocks_in_eval(const std::set<std::string>& trainable) {
  // "encoder" is the union of the encoder layers: frozen only when no part of it trains.
  auto trains = [&](const Block& b) {
    if (trainable.count(b.name)) return true;
    if (b.name == "encoder") {
      return std::any_of(trainable.begin(), trainable.end(), [](const std::string& n) { return n.rfind("encoder.", 0) == 0; });
    }
    return b.encoder_layer.has_value() && trainable.count("encoder") > 0;
  };
  for (const auto& b : blocks_) {
    if (trains(b)) continue;
    for (const auto& m : b.modules) m->eval();
  }
}

core::Json LoadReport::to_json() const {
  core::Json out{{"matched", matched}, {"missing", missing}, {"unexpected", unexpected}, {"mismatched", core::Json::array()}};
  for (const auto& m : mismatched) out["mismatched"].push_back({{"name", m.name}, {"expected", m.expected}, {"found", m.found}});
  return out;
}

namespace {

// The archive's tensors by parameter name; the files' own "encore_*" entries (scaler, metadata)
// are not weights.
void flatten(torch::serialize::InputArchive& archive, const std::string& prefix, std::map<std::string, torch::Tensor>& out) {
  for (const auto& key : archive.keys()) {
    if (key.rfind("encore_", 0) == 0) continue;
    torch::Tensor tensor;
    if (archive.try_read(key, tensor)) {
      out[prefix + key] = tensor;
      continue;
    }
    torch::serialize::InputArchive child;
    if (archive.try_read(key, child)) flatten(child, prefix + key + ".", out);
  }
}

}  // namespace

torch::serialize::InputArchive read_module_archive(const std::string& file) {
  const auto bytes = core::read_zip_archive(file);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes.data(), bytes.size());
  } catch (const c10::Error& e) {
    throw core::DataError(fmt::format("{}: not a readable LibTorch archive: {}", file, e.what_without_backtrace()));
  }
  return archive;
}

LoadReport load_by_name(torch::nn::Module& module, const std::string& file) {
  auto archive = read_module_archive(file);
  return load_by_name(module, archive);
}

LoadReport load_by_name(torch::nn::Module& module, torch::serialize::InputArchive& archive) {
  std::map<std::string, torch::Tensor> saved;
  flatten(archive, "", saved);
  LoadReport report;
  torch::NoGradGuard no_grad;
  auto copy_in = [&](const std::string& name, torch::Tensor& target) {
    auto it = saved.find(name);
    if (it == saved.end()) {
      report.missing.push_back(name);
      return;
    }
    if (it->second.sizes() != target.sizes()) {
      report.mismatched.push_back({name, target.sizes().vec(), it->second.sizes().vec()});
    } else {
      target.copy_(it->second);
      report.matched.push_back(name);
    }
    saved.erase(it);
  };
  for (auto& item : module.named_parameters()) copy_in(item.key(), item.value());
  for (auto& item : module.named_buffers()) copy_in(item.key(), item.value());
  for (const auto& [name, tensor] : saved) report.unexpected.push_back(name);
  return report;
}

}  // namespace encore::finetune
