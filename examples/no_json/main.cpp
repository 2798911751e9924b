// encore from C++ alone, no JSON anywhere: a denoising stack built from its options, pretrained
// greedily then end to end on Fashion-MNIST, fine-tuned with a one-versus-all head on 100 labels per
// class, evaluated on test images, saved as model.pt, read back and used to predict.
//
//   no_json OUTPUT_DIR
//
// same_experiment.json beside this file describes the same experiment for `encore run`; for the
// same seed both give bitwise-identical model.pt weights (a ctest checks it).
#include <torch/torch.h>

#include <filesystem>
#include <iostream>

#include "encore/core/callbacks.h"
#include "encore/core/data_config.h"
#include "encore/core/files.h"
#include "encore/core/random.h"
#include "encore/core/runtime.h"
#include "encore/finetune/components.h"
#include "encore/finetune/evaluation.h"
#include "encore/finetune/experiment_config.h"
#include "encore/finetune/run_policy.h"
#include "encore/finetune/trained_model.h"

namespace core = encore::core;
namespace models = encore::models;
namespace finetune = encore::finetune;

namespace {

// What the experiment is, in typed options: data, model, pretraining and fine-tuning.
finetune::ExperimentConfig describe_experiment() {
  finetune::ExperimentConfig config;
  config.name = "no_json";
  config.runtime.threads = 2;
  config.runtime.device = "cpu";
  config.runtime.seed = 7;

  const std::string fashion = "/usr/share/datasets/fashion-mnist/";
  config.data.train_images = fashion + "train-images-idx3-ubyte.gz";
  config.data.train_labels = fashion + "train-labels-idx1-ubyte.gz";
  config.data.test_images = fashion + "t10k-images-idx3-ubyte.gz";
  config.data.test_labels = fashion + "t10k-labels-idx1-ubyte.gz";
  config.data.limit_train = 4000;
  config.data.limit_test = 1000;
  config.data.labelled_per_class = 100;

  config.model = models::model_config(
      "stacked_autoencoder",
      models::StackedAutoencoderOptions().hidden_dims({128, 64}).corruption(models::Corruption::kMasking).corruption_levels({0.2}));

  config.pretrain.mode = "greedy_then_end_to_end";
  config.pretrain.loss = models::ReconstructionLoss::kBinaryCrossEntropy;
  config.pretrain.greedy.epochs = 3;
  config.pretrain.end_to_end.epochs = 2;
  core::AdamOptions end_to_end_adam;
  end_to_end_adam.lr = 3e-4;
  config.pretrain.end_to_end.optimizer = std::make_shared<core::AdamOptions>(end_to_end_adam);

  finetune::FinetuneConfig tuning;
  tuning.head = finetune::head_config("one_vs_all", finetune::OneVsAllHeadOptions());
  finetune::PhaseConfig head_only;
  head_only.name = "head_only";
  head_only.trainable = {"head"};
  head_only.train.epochs = 10;
  core::AdamOptions head_adam;
  head_adam.lr = 3e-3;
  head_only.train.optimizer = std::make_shared<core::AdamOptions>(head_adam);
  finetune::PhaseConfig all;
  all.name = "all";
  all.train.epochs = 10;
  tuning.phases = {head_only, all};
  config.finetune = tuning;
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: no_json OUTPUT_DIR\n";
    return 2;
  }
  // As every encore program: the BLAS kernel `encore` itself runs, so the same experiment computes the same
  // numbers here and there.
  encore::core::prepare_process(argv);
  try {
    const std::filesystem::path output_dir = argv[1];
    const auto config = describe_experiment();
    const auto components = finetune::builtin_components();
    const auto seed = config.runtime.seed;

    // The run policy encore applies to every run: threads first, then the BLAS check.
    finetune::configure_run_threads(config.runtime, std::cerr);
    finetune::check_matrix_products(std::cerr);

    // Data: the seed fixes weight initialisation, the split and every batch order.
    core::seed_everything(seed);
    const auto data = core::load_data(config.data);
    const auto split = core::split_data(config.data, data.train, seed);
    const auto scaler = core::Scaler::fit(config.data.scaling, data.train, split.all_training);

    // The models, in the order a run builds them: the stack, then the classifier around it.
    auto stack = models::build_model(config.model, components.models, data.train.example_shape());
    auto classifier = finetune::build_classifier(*config.finetune, stack, components.heads, data.train.num_classes());

    // Each stage draws its batches from its own random stream of the seed; progress goes to stderr.
    core::StageContext context;
    context.seed = seed;
    auto progress = std::make_shared<core::ProgressReporter>(std::cerr, false);
    context.attach_callbacks = [progress](core::Trainer& trainer) { trainer.add_callback(progress); };
    const core::BatchSource validation(data.train, split.validation, scaler, finetune::kEvaluationBatch, false, seed);
    const core::BatchSource unlabelled(data.train, split.all_training, scaler, finetune::kEvaluationBatch, true, seed);
    models::pretrain(stack, config.pretrain, unlabelled, &validation, context);
    std::cout << "validation reconstruction MSE " << finetune::mean_reconstruction_mse(*stack, validation) << "\n";

    const core::BatchSource labelled(data.train, split.labelled, scaler, finetune::kEvaluationBatch, true, seed);
    finetune::finetune(classifier, *config.finetune, labelled, &validation, context);
    const core::BatchSource test(*data.test, torch::arange(data.test->size()), scaler, finetune::kEvaluationBatch, false, seed);
    const auto evaluation = finetune::evaluate_classifier(*classifier, test);
    std::cout << "test accuracy " << evaluation.accuracy << ", macro-F1 " << evaluation.macro_f1 << "\n";

    // model.pt holds the weights with the config, scaler and class names: it needs nothing else.
    std::filesystem::create_directories(output_dir);
    const auto model_file = output_dir / "model.pt";
    core::write_file_atomically(model_file, finetune::trained_model_bytes(*classifier, config, components, scaler, data.train));
    auto model = finetune::load_trained_model(model_file, components);
    const auto [scores, predictions] = finetune::predict(model, data.test->features);
    const auto agree = predictions.eq(classifier->classify(scaler.apply(data.test->features)).second).sum().item<std::int64_t>();
    std::cout << "model.pt read back: " << agree << " of " << predictions.size(0) << " test predictions as before saving\n";
  } catch (const std::exception& e) {
    std::cerr << "no_json: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
