#pragma once
/// Classification heads on top of an encoder's codes: one-versus-all logistic units (the default)
/// or a softmax.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/cloneable.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "encore/core/config.h"
#include "encore/core/ops.h"
#include "encore/core/options.h"
#include "encore/core/registry.h"

namespace encore::finetune {

/// What fine-tuning needs of a head.
class Head {
 public:
  virtual ~Head() = default;
  /// The head as a module (for parameters, saving and devices).
  virtual torch::nn::Module& module() = 0;
  /// Scores [B, K] (logits) of features [B, d].
  virtual torch::Tensor forward(const torch::Tensor& features) = 0;
  /// Mean loss of a batch given its scores and class indices [B].
  virtual torch::Tensor loss(const torch::Tensor& scores, const torch::Tensor& labels) const = 0;
  /// Per-class probabilities [B, K] of scores, as the head defines them.
  virtual torch::Tensor probabilities(const torch::Tensor& scores) const = 0;
  /// Predicted class indices [B]: the argmax of the scores, or -1 ("none of the K classes") where
  /// the head abstains.
  virtual torch::Tensor predict(const torch::Tensor& scores) const = 0;
  /// TorchScript source of the head's methods in model.pt, compiled on a TorchScript copy of
  /// module() (same parameter and child names): `scores_of(self, features: Tensor) -> Tensor`,
  /// `probabilities_of(self, scores: Tensor) -> Tensor` and `classes_of(self, scores: Tensor) ->
  /// Tensor`, computing what forward, probabilities and predict do. Empty, the default: model.pt
  /// holds the weights without methods.
  virtual std::string torchscript() const { return {}; }
};

/// A head that is one Linear(d, K) layer, named "linear": its outputs are the scores. Derived heads
/// register it in reset() and say what the scores mean.
template <class Derived>
class LinearHead : public torch::nn::Cloneable<Derived>, public Head {
 public:
  /// This head.
  torch::nn::Module& module() override { return *this; }
  /// The scores: one Linear layer.
  torch::Tensor forward(const torch::Tensor& features) override { return core::linear(features, linear->weight, linear->bias); }
  /// The layer's scores_of followed by the derived head's `probabilities_of` and `classes_of` bodies.
  std::string torchscript() const override {
    return "def scores_of(self, features: Tensor) -> Tensor:\n    return " +
           core::linear_script("features", "self.linear.weight", "self.linear.bias", core::Activation::kLinear) +
           "\n\ndef probabilities_of(self, scores: Tensor) -> Tensor:\n    " + probabilities_script() +
           "\n\ndef classes_of(self, scores: Tensor) -> Tensor:\n    " + classes_script() + "\n";
  }

  /// The layer.
  torch::nn::Linear linear = nullptr;

 protected:
  /// The body of `probabilities_of(self, scores)` in TorchScript (statements at one indent).
  virtual std::string probabilities_script() const = 0;
  /// The body of `classes_of(self, scores)` in TorchScript.
  virtual std::string classes_script() const = 0;
};

/// Options of a one-versus-all head. The config's `head` object for `"type": "one_vs_all"` holds
/// the fields below (the sizes come from the encoder and the data).
struct OneVsAllHeadOptions {
  /// Options whose sizes are set when the head is built.
  OneVsAllHeadOptions() = default;
  /// Options for `input_dim` features and `classes` classes.
  OneVsAllHeadOptions(std::int64_t input_dim, std::int64_t classes) : input_dim_(input_dim), classes_(classes) {}
  /// Features the head sees.
  TORCH_ARG(std::int64_t, input_dim) = 0;
  /// Classes K.
  TORCH_ARG(std::int64_t, classes) = 0;
  /// Abstain ("none of the K classes", predicted -1) when no class's probability reaches this.
  TORCH_ARG(std::optional<double>, abstain_threshold) = std::nullopt;

 public:  // TORCH_ARG leaves the access private
  /// The fields a config sets (core/options.h).
  template <class Fields>
  void fields(Fields& f) {
    f("abstain_threshold", abstain_threshold_, "predict \"none\" (-1) when no class's probability reaches this; null: never",
      core::Rule<double>{[](const double& v) { return v > 0 && v < 1; }, "in (0, 1)"});
  }
};

/// K independent logistic units: one Linear(d, K) trained with binary cross-entropy on one-hot
/// targets. The loss of a batch is the sum over the K units of their logistic losses, averaged over
/// examples. Probabilities are the K sigmoids; they need not sum to 1.
class OneVsAllHeadImpl : public LinearHead<OneVsAllHeadImpl> {
 public:
  /// A head as `options` say.
  explicit OneVsAllHeadImpl(const OneVsAllHeadOptions& options_);
  /// Builds the layer (checks the options).
  void reset() override;
  /// Prints the head's shape.
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor loss(const torch::Tensor& scores, const torch::Tensor& labels) const override;
  torch::Tensor probabilities(const torch::Tensor& scores) const override;
  torch::Tensor predict(const torch::Tensor& scores) const override;

  /// The options it was built with.
  OneVsAllHeadOptions options;

 protected:
  std::string probabilities_script() const override;
  std::string classes_script() const override;
};
TORCH_MODULE(OneVsAllHead);

/// The K one-versus-all probabilities rescaled to sum to 1 (a view for users who want one).
torch::Tensor normalized_probabilities(const torch::Tensor& probabilities);

/// Options of a softmax head: nothing beyond the sizes, which come from the encoder and the data.
struct SoftmaxHeadOptions {
  /// No fields (core/options.h).
  template <class Fields>
  void fields(Fields& /*f*/) {}
};

/// A softmax over K classes trained with cross-entropy.
class SoftmaxHeadImpl : public LinearHead<SoftmaxHeadImpl> {
 public:
  /// A softmax head from `input_dim` features to `classes` classes.
  SoftmaxHeadImpl(std::int64_t input_dim, std::int64_t classes);
  /// Builds the layer.
  void reset() override;
  /// Prints the head's shape.
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor loss(const torch::Tensor& scores, const torch::Tensor& labels) const override;
  torch::Tensor probabilities(const torch::Tensor& scores) const override;
  torch::Tensor predict(const torch::Tensor& scores) const override;

  /// Features the head sees.
  std::int64_t input_dim;
  /// Classes K.
  std::int64_t classes;

 protected:
  std::string probabilities_script() const override;
  std::string classes_script() const override;
};
TORCH_MODULE(SoftmaxHead);

/// How a head type is read from config and built; made by add_head(). `parse` reads and checks the
/// `head` object (its "type" already read) and returns every option spelled out; `build` makes the
/// head for `input_dim` features and `classes` classes; `options` describes the fields.
struct HeadFactory {
  /// Reads the `head` object.
  std::function<core::Json(core::JsonReader&)> parse;
  /// Builds the head.
  std::function<std::shared_ptr<Head>(const core::Json& resolved, std::int64_t input_dim, std::int64_t classes)> build;
  /// The fields, for help texts.
  std::vector<core::OptionDescription> options;
};

/// The registry of head types (Components::heads).
using HeadRegistry = core::Registry<HeadFactory>;

/// Registers head type `name` with options of type `Options` (default-constructible, with a
/// `fields` member template; see core/options.h) and `build(const Options&, std::int64_t input_dim,
/// std::int64_t classes)` returning a `std::shared_ptr<Head>`. A core::OptionError thrown by `build`
/// becomes a ConfigError at `/finetune/head/<option>`.
template <class Options, class Build>
void add_head(HeadRegistry& registry, const std::string& name, std::string description, Build build) {
  HeadFactory factory;
  factory.parse = [](core::JsonReader& reader) { return core::options_json(core::read_options<Options>(reader)); };
  factory.build = [build](const core::Json& resolved, std::int64_t input_dim, std::int64_t classes) -> std::shared_ptr<Head> {
    return core::build_from_options<Options>(resolved, "/finetune/head",
                                             [&](const Options& options) { return build(options, input_dim, classes); });
  };
  factory.options = core::describe_options<Options>();
  registry.add(name, std::move(description), std::move(factory));
}

/// A `head` section from typed options, as C++ code fills a FinetuneConfig without JSON.
template <class Options>
core::Json head_config(const std::string& type, const Options& options) {
  core::check_options(options);
  auto config = core::options_json(options);
  config["type"] = type;
  return config;
}

/// Adds one_vs_all and softmax.
void register_builtin_heads(HeadRegistry& registry);

}  // namespace encore::finetune
