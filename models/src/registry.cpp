#include "encore/models/registry.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include "encore/core/runtime.h"

namespace encore::models {

namespace {

template <class Enum>
std::vector<std::string> names_of(std::initializer_list<Enum> values, std::string (*name)(Enum)) {
  std::vector<std::string> out;
  for (auto v : values) out.push_back(name(v));
  return out;
}

// Training holds four copies of the weights (themselves, gradients, Adam's two moments): sizes
// whose copies exceed the machine's memory are refused before anything is allocated.
void check_stack_fits_in_memory(core::JsonReader& r, std::int64_t input_dim, const std::vector<std::int64_t>& hidden, bool tied) {
  const auto memory = core::physical_memory_bytes();
  if (memory == 0) return;
  long double parameters = 0;
  long double in = static_cast<long double>(input_dim);
  for (const auto out : hidden) {
    parameters += in * static_cast<long double>(out) * (tied ? 1 : 2) + in + static_cast<long double>(out);
    in = static_cast<long double>(out);
  }
  constexpr long double kCopies = 4, kBytesPerFloat = 4, kGiB = 1024.0L * 1024 * 1024;
  const long double bytes = parameters * kCopies * kBytesPerFloat;
  if (bytes <= static_cast<long double>(memory)) return;
  // Parsing happens before the data is read, with one input feature standing for the real width.
  const auto inputs = input_dim > 1 ? fmt::format("for {} inputs", input_dim) : std::string("even for one input");
  r.fail("hidden_dims",
         fmt::format("{:.3g} parameters {} need {:.1f} GiB to train (weights, gradients and Adam's two moments), "
                     "more than this machine's {:.1f} GiB of memory",
                     static_cast<double>(parameters), inputs, static_cast<double>(bytes / kGiB), static_cast<double>(memory / kGiB)));
}

StackedAutoencoderOptions read_stack_options(core::JsonReader& r, std::int64_t input_dim) {
  const auto hidden = r.get<std::vector<std::int64_t>>("hidden_dims");
  if (hidden.empty()) r.fail("hidden_dims", "must list at least one layer size");
  for (std::size_t k = 0; k < hidden.size(); ++k) {
    if (hidden[k] < 1) r.fail("hidden_dims", "sizes must be >= 1, got " + std::to_string(hidden[k]) + " at index " + std::to_string(k));
  }
  const auto activations = names_of({Activation::kSigmoid, Activation::kRelu, Activation::kTanh, Activation::kLinear}, activation_name);
  StackedAutoencoderOptions o(input_dim, hidden);
  o.activation(parse_activation(r.choice("activation", activations, "sigmoid")));
  o.output_activation(parse_activation(r.choice("output_activation", activations, "sigmoid")));
  o.tied(r.get<bool>("tied", false));
  check_stack_fits_in_memory(r, input_dim, hidden, o.tied());
  o.corruption(parse_corruption(r.choice(
      "corruption", names_of({Corruption::kNone, Corruption::kMasking, Corruption::kGaussian, Corruption::kSaltAndPepper}, corruption_name),
      "none")));
  const auto levels = r.get<std::vector<double>>("corruption_levels", {});
  if (levels.size() > 1 && levels.size() != hidden.size()) {
    r.fail("corruption_levels",
           "needs one level per layer (" + std::to_string(hidden.size()) + ") or one for all, got " + std::to_string(levels.size()));
  }
  for (double level : levels) {
    const bool fraction = o.corruption() != Corruption::kGaussian;
    if (level < 0 || (fraction && level >= 1)) {
      r.fail("corruption_levels", std::string("levels must be ") + (fraction ? "in [0, 1)" : ">= 0") + ", got " +
                                      core::describe_value(r.json()["corruption_levels"]));
    }
  }
  o.corruption_levels(levels);
  o.sparsity(parse_sparsity(r.choice("sparsity", {"none", "kl", "l1"}, "none")));
  o.sparsity_target(
      r.get<double>("sparsity_target", 0.05, core::Rule<double>{[](const double& v) { return v > 0 && v < 1; }, "in (0, 1)"}));
  o.sparsity_weight(r.get<double>("sparsity_weight", 0.0, core::at_least(0.0)));
  if (o.sparsity() == Sparsity::kKl && o.activation() != Activation::kSigmoid) {
    r.fail("sparsity", "\"kl\" needs sigmoid codes; use \"l1\" with activation \"" + activation_name(o.activation()) + "\"");
  }
  o.contractive_weight(r.get<double>("contractive_weight", 0.0, core::at_least(0.0)));
  r.finish();
  return o;
}

core::Json stack_json(const StackedAutoencoderOptions& o) {
  return core::Json{{"type", "stacked_autoencoder"},
                    {"hidden_dims", o.hidden_dims()},
                    {"activation", activation_name(o.activation())},
                    {"output_activation", activation_name(o.output_activation())},
                    {"tied", o.tied()},
                    {"corruption", corruption_name(o.corruption())},
                    {"corruption_levels", o.corruption_levels()},
                    {"sparsity", sparsity_name(o.sparsity())},
                    {"sparsity_target", o.sparsity_target()},
                    {"sparsity_weight", o.sparsity_weight()},
                    {"contractive_weight", o.contractive_weight()}};
}

}  // namespace

void register_builtin_models(ModelRegistry& registry) {
  registry.add("stacked_autoencoder", "dense stacked autoencoder (plain, denoising, sparse or contractive; tied or untied)",
               {[](core::JsonReader& r) { return stack_json(read_stack_options(r, 1)); },
                [](const core::Json& resolved, std::int64_t input_dim) -> std::shared_ptr<AutoencoderModel> {
                  core::JsonReader r(resolved, "/model");
                  r.has("type");
                  return StackedAutoencoder(read_stack_options(r, input_dim)).ptr();
                }});
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
