// A classification head of one's own, registered by name and used from a JSON config:
//
//   custom_head CONFIG RUN_DIR
//
// The head is a cosine classifier: the scores are the cosines between the (normalised) code and one
// (normalised) weight vector per class, times a scale, under a softmax. Few-shot learners use it
// because no class can win by the length of its weights alone. encore reads and checks its options
// from the config's `finetune.head` object; nothing here touches JSON.
#include <torch/torch.h>

#include <cmath>
#include <iostream>

#include "encore/core/config.h"
#include "encore/core/options.h"
#include "encore/core/runtime.h"
#include "encore/finetune/experiment.h"
#include "encore/finetune/heads.h"

namespace {

struct CosineHeadOptions {
  double scale = 10.0;
  bool learn_scale = true;

  template <class Fields>
  void fields(Fields& f) {
    f("scale", scale, "the cosines' multiplier before the softmax (its start value when learnt)", encore::core::greater_than(0.0));
    f("learn_scale", learn_scale, "train the scale with the weights");
  }
};

class CosineHeadImpl : public torch::nn::Cloneable<CosineHeadImpl>, public encore::finetune::Head {
 public:
  CosineHeadImpl(const CosineHeadOptions& options_, std::int64_t input_dim_, std::int64_t classes_)
      : options(options_), input_dim(input_dim_), classes(classes_) {
    reset();
  }

  void reset() override {
    weight = register_parameter("weight", torch::randn({classes, input_dim}) * 0.01);
    log_scale = register_parameter("log_scale", torch::tensor(std::log(options.scale)), options.learn_scale);
  }

  torch::nn::Module& module() override { return *this; }
  torch::Tensor forward(const torch::Tensor& features) override {
    namespace F = torch::nn::functional;
    const auto cosines =
        F::normalize(features, F::NormalizeFuncOptions().dim(1)).mm(F::normalize(weight, F::NormalizeFuncOptions().dim(1)).t());
    return cosines * log_scale.exp();
  }
  torch::Tensor loss(const torch::Tensor& scores, const torch::Tensor& labels) const override {
    return torch::cross_entropy_loss(scores, labels);
  }
  torch::Tensor probabilities(const torch::Tensor& scores) const override { return torch::softmax(scores, 1); }
  torch::Tensor predict(const torch::Tensor& scores) const override { return scores.argmax(1); }

  CosineHeadOptions options;
  std::int64_t input_dim, classes;
  torch::Tensor weight, log_scale;
};
TORCH_MODULE(CosineHead);

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: custom_head CONFIG RUN_DIR\n";
    return 2;
  }
  encore::core::prepare_process(argv);
  auto components = encore::finetune::builtin_components();
  encore::finetune::add_head<CosineHeadOptions>(
      components.heads, "cosine_softmax", "scaled cosines between the code and one weight vector per class, under a softmax (example)",
      [](const CosineHeadOptions& options, std::int64_t input_dim, std::int64_t classes) {
        return CosineHead(options, input_dim, classes).ptr();
      });
  try {
    const auto config = encore::finetune::load_experiment(argv[1], {}, components);
    encore::finetune::RunOptions options;
    options.run_dir = argv[2];
    options.log = &std::cerr;
    const auto summary = encore::finetune::run_experiment(config, components, options);
    std::cout << "test accuracy " << summary["test"]["accuracy"] << "\n";
    // The saved model rebuilds its head by name: reading it back needs the same registration.
    auto model = encore::finetune::load_trained_model(options.run_dir / "model.pt", components);
    const bool cosine = dynamic_cast<CosineHeadImpl*>(&model.classifier->head()) != nullptr;
    std::cout << "model.pt read back " << (cosine ? "with its cosine head" : "WITHOUT its cosine head") << "\n";
    if (!cosine) return 1;
  } catch (const encore::core::ConfigError& e) {
    std::cerr << argv[1] << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
