#include "encore/finetune/finetune.h"

#include <torch/torch.h>

#include "encore/core/ops.h"
#include "encore/finetune/classifier.h"
#include "encore/models/model.h"
#include "encore/models/pretrain.h"
#include "support/support.h"

using namespace encore;

namespace {

core::Dataset labelled_data() {
  torch::manual_seed(21);
  core::Dataset d;
  d.labels = torch::arange(120, torch::kInt64).remainder(3);
  const auto centres = torch::rand({3, 12});
  d.features = (centres.index_select(0, d.labels) * 0.8 + torch::rand({120, 12}) * 0.2);
  d.class_names = {"a", "b", "c"};
  return d;
}

finetune::Classifier stacked_classifier(std::optional<int> depth = std::nullopt) {
  torch::manual_seed(4);
  models::StackedAutoencoder stack(models::StackedAutoencoderOptions(12, {8, 6, 4}));
  return finetune::Classifier(stack.ptr(), depth, std::nullopt,
                              [](std::int64_t d) { return finetune::OneVsAllHead(finetune::OneVsAllHeadOptions(d, 3)).ptr(); });
}

finetune::PhaseConfig phase(std::vector<std::string> trainable, int epochs, const std::string& optimizer = "adam") {
  finetune::PhaseConfig p;
  p.name = "p";
  p.trainable = std::move(trainable);
  core::Json j = {{"epochs", epochs}, {"batch_size", 16}, {"optimizer", {{"type", optimizer}, {"lr", 0.01}, {"weight_decay", 0.1}}}};
  p.train = core::parse_train_config(core::JsonReader(j), encore::testing::builtin_optimizers(), core::TrainConfig{});
  return p;
}

std::map<std::string, torch::Tensor> snapshot(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : m.named_parameters()) out[item.key()] = item.value().detach().clone();
  for (const auto& item : m.named_buffers()) out[item.key()] = item.value().detach().clone();
  return out;
}

}  // namespace

TEST(Classifier, BlocksAreNamedAndUnknownNamesListTheAvailableOnes) {
  auto classifier = stacked_classifier(2);
  EXPECT_EQ(classifier->block_names(), (std::vector<std::string>{"encoder", "encoder.layer0", "encoder.layer1", "decoder", "head"}));
  EXPECT_EQ(classifier->forward(torch::rand({5, 12})).sizes(), (std::vector<std::int64_t>{5, 3}));
  EXPECT_THROW_WITH(classifier->block("encoder.layer2"), std::invalid_argument,
                    "unknown block \"encoder.layer2\" (available: encoder, encoder.layer0, encoder.layer1, decoder, head)");
}

TEST(Finetune, FrozenParametersStayBitwiseAndTrainableOnesMoveEvenWithWeightDecay) {
  const auto data = labelled_data();
  const auto scaler = core::Scaler::fit(core::Scaling::kNone, data, torch::arange(120));
  core::BatchSource train(data, torch::arange(100), scaler, 16, true, 1);
  core::BatchSource validation(data, torch::arange(100, 120), scaler, 20, false, 1);
  auto classifier = stacked_classifier();
  const auto before = snapshot(*classifier);
  finetune::FinetuneConfig config;
  config.phases = {phase({"encoder.layer2", "head"}, 3, "adamw")};
  const auto registry = encore::testing::builtin_optimizers();
  core::StageContext context;
  finetune::finetune(classifier, config, train, &validation, context);
  const auto after = snapshot(*classifier);
  for (const auto& [name, tensor] : before) {
    const bool trainable = name.rfind("encoder.layer2.encoder_", 0) == 0 || name.rfind("head.", 0) == 0;
    if (trainable) {
      EXPECT_FALSE(encore::testing::bitwise_equal(tensor, after.at(name))) << name << " should have trained";
    } else {
      EXPECT_TRUE(encore::testing::bitwise_equal(tensor, after.at(name))) << name << " should be frozen";
    }
  }
}

namespace {

// A denoising stack 12-8-6-4 with a head, its three layers' costs weighted alike; a labelled set of
// 3 rows per class and 111 rows without labels.
struct SemiSupervisedSetup {
  core::Dataset data = labelled_data();
  core::Scaler scaler = core::Scaler::fit(core::Scaling::kNone, data, torch::arange(120));
  core::BatchSource labelled{data, torch::arange(9), scaler, 6, true, 1};
  core::BatchSource unlabelled{data, torch::arange(9, 120), scaler, 16, true, 1};
  models::StackedAutoencoder stack = [] {
    torch::manual_seed(4);
    return models::StackedAutoencoder(
        models::StackedAutoencoderOptions(12, {8, 6, 4}).corruption(models::Corruption::kMasking).corruption_levels({0.2}));
  }();
  finetune::Classifier classifier{stack.ptr(), std::nullopt, std::nullopt,
                                  [](std::int64_t d) { return finetune::OneVsAllHead(finetune::OneVsAllHeadOptions(d, 3)).ptr(); }};
  std::vector<double> weights{1.0, 1.0, 1.0};

  finetune::FinetuneConfig config(std::vector<std::string> trainable) const {
    finetune::FinetuneConfig c;
    c.phases = {phase(std::move(trainable), 4)};
    c.phases[0].semi_supervised = finetune::SemiSupervisedConfig{};
    c.phases[0].semi_supervised->layer_weights = weights;
    return c;
  }
  // The mean squared distance between the head's probabilities of the unlabelled rows with noise
  // (deviation 0.3, a fixed draw) and without.
  double noise_sensitivity() {
    torch::NoGradGuard no_grad;
    classifier->eval();
    const auto x = unlabelled.rows(unlabelled.indices()).inputs;
    torch::manual_seed(99);
    auto& head = classifier->head();
    const auto noisy = head.probabilities(head.forward(classifier->noisy_features(x, 0.3)));
    return (noisy - head.probabilities(classifier->forward(x))).pow(2).sum(1).mean().item<double>();
  }
  // The layers' summed reconstruction cost of the unlabelled rows, without corruption.
  double unlabelled_cost() {
    torch::NoGradGuard no_grad;
    stack->eval();
    return models::layerwise_denoising_cost(stack->greedy_layers(), unlabelled.rows(unlabelled.indices()).inputs, weights,
                                            models::ReconstructionLoss::kMse)
        .item<double>();
  }
};

}  // namespace

TEST(Finetune, SemiSupervisedPhaseLowersTheLayersDenoisingCostOnRowsWithoutLabels) {
  SemiSupervisedSetup semi, supervised;
  const double before = semi.unlabelled_cost();
  core::StageContext context;
  const auto results =
      finetune::finetune(semi.classifier, semi.config({"encoder", "decoder", "head"}), semi.labelled, nullptr, context, &semi.unlabelled);
  const auto& metrics = results.at("finetune/p");
  EXPECT_GT(metrics.at("train/unlabelled_cost"), 0);
  EXPECT_GT(metrics.at("train/supervised_loss"), 0);
  EXPECT_NEAR(metrics.at("train/loss"), metrics.at("train/supervised_loss") + metrics.at("train/unlabelled_cost"), 1e-5);
  // The same phase without its unlabelled rows, from the same weights.
  auto config = supervised.config({"encoder", "decoder", "head"});
  config.phases[0].semi_supervised.reset();
  finetune::finetune(supervised.classifier, config, supervised.labelled, nullptr, context);
  const double after = semi.unlabelled_cost();
  const double after_supervised = supervised.unlabelled_cost();
  EXPECT_LT(after, 0.9 * before) << "the unlabelled rows' reconstruction cost went from " << before << " to " << after;
  EXPECT_LT(after, 0.9 * after_supervised) << "supervised only: " << after_supervised << ", semi-supervised: " << after;
}

TEST(Finetune, TheHeadsDenoisingCostMakesPredictionsOfRowsWithoutLabelsLessSensitiveToNoise) {
  SemiSupervisedSetup semi, supervised;
  core::StageContext context;
  auto config = semi.config({"encoder", "head"});
  config.phases[0].semi_supervised->layer_weights = {0.0};
  config.phases[0].semi_supervised->consistency_weight = 10.0;
  config.phases[0].train.epochs = 30;
  finetune::finetune(semi.classifier, config, semi.labelled, nullptr, context, &semi.unlabelled);
  config.phases[0].semi_supervised.reset();
  finetune::finetune(supervised.classifier, config, supervised.labelled, nullptr, context);
  EXPECT_LT(semi.noise_sensitivity(), 0.8 * supervised.noise_sensitivity())
      << "semi-supervised " << semi.noise_sensitivity() << ", supervised only " << supervised.noise_sensitivity();
}

TEST(Classifier, NoisyFeaturesAddNoiseToTheInputAndEveryCodeAndNoneAtDeviationZero) {
  auto classifier = stacked_classifier();
  const auto x = torch::rand({5, 12});
  EXPECT_TRUE(torch::equal(classifier->noisy_features(x, 0.0), classifier->features(x)));
  const auto noisy = classifier->noisy_features(x, 0.3);
  EXPECT_EQ(noisy.sizes(), classifier->features(x).sizes());
  EXPECT_FALSE(torch::allclose(noisy, classifier->features(x)));
}

TEST(Finetune, TheDecoderTrainsOnlyWhenAPhaseNamesIt) {
  SemiSupervisedSetup setup;
  const auto before = snapshot(*setup.classifier);
  core::StageContext context;
  finetune::finetune(setup.classifier, setup.config({"encoder", "head"}), setup.labelled, nullptr, context, &setup.unlabelled);
  const auto after = snapshot(*setup.classifier);
  for (const auto& [name, tensor] : before) {
    const bool decoder = name.find(".decoder_") != std::string::npos;
    EXPECT_EQ(encore::testing::bitwise_equal(tensor, after.at(name)), decoder) << name;
  }
}

TEST(Finetune, ASemiSupervisedPhaseWithoutUnlabelledDataIsAnErrorNamingIt) {
  SemiSupervisedSetup setup;
  core::StageContext context;
  EXPECT_THROW_WITH(finetune::finetune(setup.classifier, setup.config({"head"}), setup.labelled, nullptr, context), std::invalid_argument,
                    "fine-tuning phase \"p\" is semi-supervised, but no unlabelled data was given");
}

TEST(Finetune, EachPhasesOptimizerHoldsExactlyItsTrainableParameters) {
  auto classifier = stacked_classifier();
  auto p = phase({"encoder.layer1", "head"}, 1);
  p.lr_decay_per_depth = 0.5;
  finetune::ClassificationTask task(classifier, p);
  const auto registry = encore::testing::builtin_optimizers();
  core::Trainer trainer(task, p.train, "finetune/p");
  std::set<const void*> in_optimizer;
  std::vector<double> lrs;
  for (const auto& group : trainer.optimizer().param_groups()) {
    for (const auto& t : group.params()) in_optimizer.insert(t.unsafeGetTensorImpl());
    lrs.push_back(group.options().get_lr());
  }
  std::set<const void*> expected;
  for (const auto& name : {"encoder.layer1", "head"}) {
    for (const auto& t : classifier->block(name).parameters) expected.insert(t.unsafeGetTensorImpl());
  }
  EXPECT_EQ(in_optimizer, expected);
  // encoder.layer1 is one below the top of 3 layers: half the learning rate.
  std::sort(lrs.begin(), lrs.end());
  EXPECT_EQ(lrs, (std::vector<double>{0.005, 0.01}));
  for (const auto& item : classifier->named_parameters()) {
    EXPECT_EQ(item.value().requires_grad(), expected.count(item.value().unsafeGetTensorImpl()) > 0) << item.key();
  }
}

namespace {

/// A user's autoencoder with batch normalisation in its encoder, to check frozen-block modes.
class BatchNormAutoencoderImpl : public torch::nn::Module, public models::AutoencoderModel {
 public:
  BatchNormAutoencoderImpl()
      : linear(register_module("linear", torch::nn::Linear(12, 5))),
        norm(register_module("norm", torch::nn::BatchNorm1d(5))),
        decoder(register_module("decoder", torch::nn::Linear(5, 12))) {}
  torch::nn::Module& module() override { return *this; }
  torch::Tensor encode(const torch::Tensor& x) override { return torch::relu(norm(linear(x))); }
  torch::Tensor forward(const torch::Tensor& x) override { return torch::sigmoid(decoder(encode(x))); }
  std::int64_t code_dim() const override { return 5; }
  torch::nn::Linear linear;
  torch::nn::BatchNorm1d norm;
  torch::nn::Linear decoder;
};

}  // namespace

TEST(Finetune, BatchNormRunningStatisticsInAFrozenBlockDoNotMove) {
  const auto data = labelled_data();
  const auto scaler = core::Scaler::fit(core::Scaling::kNone, data, torch::arange(120));
  core::BatchSource train(data, torch::arange(100), scaler, 16, true, 1);
  core::BatchSource validation(data, torch::arange(100, 120), scaler, 20, false, 1);
  auto autoencoder = std::make_shared<BatchNormAutoencoderImpl>();
  finetune::Classifier classifier(autoencoder, std::nullopt, std::nullopt,
                                  [](std::int64_t d) { return finetune::OneVsAllHead(finetune::OneVsAllHeadOptions(d, 3)).ptr(); });
  const auto mean_before = autoencoder->norm->running_mean.clone();
  const auto var_before = autoencoder->norm->running_var.clone();
  finetune::FinetuneConfig config;
  config.phases = {phase({"head"}, 2)};
  const auto registry = encore::testing::builtin_optimizers();
  core::StageContext context;
  finetune::finetune(classifier, config, train, &validation, context);
  EXPECT_TRUE(encore::testing::bitwise_equal(autoencoder->norm->running_mean, mean_before));
  EXPECT_TRUE(encore::testing::bitwise_equal(autoencoder->norm->running_var, var_before));
  // Trained, the same statistics do move: the check above can fail.
  config.phases = {phase({"encoder", "head"}, 1)};
  finetune::finetune(classifier, config, train, &validation, context);
  EXPECT_FALSE(encore::testing::bitwise_equal(autoencoder->norm->running_mean, mean_before));
}

namespace {

/// A semi-supervised step's batch: 16 labelled rows and 8 without labels.
core::Batch semi_supervised_batch(const core::Dataset& data) {
  core::Batch batch;
  batch.inputs = data.features.narrow(0, 0, 16);
  batch.labels = data.labels.narrow(0, 0, 16);
  batch.unlabelled = data.features.narrow(0, 16, 8);
  return batch;
}

/// A semi-supervised phase whose only cost on rows without labels is the head's denoising cost,
/// without noise.
finetune::PhaseConfig consistency_only_phase() {
  auto p = phase({"encoder", "head"}, 1);
  p.semi_supervised = finetune::SemiSupervisedConfig{};
  p.semi_supervised->layer_weights = {0.0};
  p.semi_supervised->consistency_weight = 1.0;
  p.semi_supervised->consistency_noise = 0.0;
  return p;
}

}  // namespace

TEST(Finetune, TheAugmentedLabelledRowsOfASemiSupervisedStepAreDrawnAlikeOnEveryRank) {
  const auto data = labelled_data();
  auto classifier = stacked_classifier();
  auto p = phase({"encoder", "head"}, 1);
  p.semi_supervised = finetune::SemiSupervisedConfig{};
  const auto batch = semi_supervised_batch(data);
  // The 12 features as 3 x 4 images; the stack has no corruption, so only the moves draw noise.
  const auto loss_at = [&](std::optional<finetune::AugmentConfig> augment, std::int64_t rank_first_row) {
    finetune::ClassificationTask task(classifier, p, augment, {3, 4});
    core::MetricSums metrics;
    torch::manual_seed(9);
    core::BatchRowOffset rank_rows(rank_first_row);
    return task.training_loss(batch, metrics).item<double>();
  };
  const double first_rank = loss_at(finetune::AugmentConfig{1, true}, 0);
  EXPECT_EQ(loss_at(finetune::AugmentConfig{1, true}, 4), first_rank);
  EXPECT_NE(loss_at(std::nullopt, 0), first_rank);
}

TEST(Finetune, AnAugmentedConsistencyCostComparesTheMovedRowsWithoutLabelsWithTheRowsAsTheyAre) {
  const auto data = labelled_data();
  auto classifier = stacked_classifier();
  auto p = consistency_only_phase();
  const auto batch = semi_supervised_batch(data);
  const auto unlabelled_cost = [&](bool augmented) {
    p.semi_supervised->consistency_augmented = augmented;
    finetune::ClassificationTask task(classifier, p, finetune::AugmentConfig{1, true}, {3, 4});
    core::MetricSums metrics;
    torch::manual_seed(9);
    task.training_loss(batch, metrics);
    return metrics.averages("").at("unlabelled_cost");
  };
  // Without noise the two paths see the same rows: no cost. Moved and mirrored, they differ.
  EXPECT_EQ(unlabelled_cost(false), 0.0);
  EXPECT_GT(unlabelled_cost(true), 0.0);
}

TEST(Finetune, AConfidentClassConsistencyCostTrainsTheHeadOnTheClassesItIsSureOf) {
  const auto data = labelled_data();
  auto classifier = stacked_classifier();
  auto p = consistency_only_phase();
  p.semi_supervised->consistency_target = finetune::SemiSupervisedConfig::ConsistencyTarget::kConfidentClass;
  const auto batch = semi_supervised_batch(data);
  const auto unlabelled_cost = [&](double threshold) {
    p.semi_supervised->consistency_threshold = threshold;
    finetune::ClassificationTask task(classifier, p);
    core::MetricSums metrics;
    task.training_loss(batch, metrics);
    return metrics.averages("").at("unlabelled_cost");
  };
  torch::Tensor confidence, scores;
  {
    torch::NoGradGuard no_grad;
    scores = classifier->forward(batch.unlabelled);
    confidence = std::get<0>(torch::sigmoid(scores).max(1));
  }
  // Every row is sure enough: the head's loss against each row's most probable class.
  const double every_row = classifier->head().loss(scores, scores.argmax(1)).item<double>();
  EXPECT_NEAR(unlabelled_cost(1e-9), every_row, 1e-6);
  // The surer half only: its share of the sum, so less, but not nothing.
  const double half = unlabelled_cost(confidence.median().item<double>());
  EXPECT_GT(half, 0.0);
  EXPECT_LT(half, every_row);
  // No row is sure of a class: no cost.
  EXPECT_EQ(unlabelled_cost(1.0), 0.0);
}

TEST(Finetune, GradualUnfreezingAddsOneBlockEveryNEpochs) {
  const auto data = labelled_data();
  const auto scaler = core::Scaler::fit(core::Scaling::kNone, data, torch::arange(120));
  core::BatchSource train(data, torch::arange(100), scaler, 16, true, 1);
  auto classifier = stacked_classifier();
  auto p = phase({"encoder.layer1", "encoder.layer2", "head"}, 5);
  p.unfreeze_every_epochs = 2;
  finetune::ClassificationTask task(classifier, p);
  const auto registry = encore::testing::builtin_optimizers();
  core::Trainer trainer(task, p.train, "finetune/p");
  trainer.add_callback(
      std::make_shared<finetune::GradualUnfreezing>(task, std::vector<std::string>{"encoder.layer1", "encoder.layer2"}, 2));
  EXPECT_EQ(task.trainable(), (std::set<std::string>{"head"}));
  trainer.fit(train, nullptr);
  EXPECT_EQ(task.trainable(), (std::set<std::string>{"encoder.layer1", "encoder.layer2", "head"}));
  EXPECT_EQ(trainer.optimizer().param_groups().size(), 3u);
}

TEST(LoadByName, ReportsMatchedMissingUnexpectedAndMismatchedTensors) {
  encore::testing::TempDir dir;
  models::StackedAutoencoder saved(models::StackedAutoencoderOptions(12, {8, 5}));
  torch::save(saved, (dir / "pretrained.pt").string());
  models::StackedAutoencoder target(models::StackedAutoencoderOptions(12, {8, 6, 4}).tied(true));
  const auto report = finetune::load_by_name(*target, (dir / "pretrained.pt").string());
  EXPECT_EQ(report.matched,
            (std::vector<std::string>{"layer0.encoder_weight", "layer0.encoder_bias", "layer0.decoder_bias", "layer1.decoder_bias"}));
  EXPECT_EQ(report.missing, (std::vector<std::string>{"layer2.encoder_weight", "layer2.encoder_bias", "layer2.decoder_bias"}));
  EXPECT_EQ(report.unexpected, (std::vector<std::string>{"layer0.decoder_weight", "layer1.decoder_weight"}));
  ASSERT_EQ(report.mismatched.size(), 2u);
  EXPECT_EQ(report.mismatched[0].name, "layer1.encoder_weight");
  EXPECT_EQ(report.mismatched[0].expected, (std::vector<std::int64_t>{6, 8}));
  EXPECT_EQ(report.mismatched[0].found, (std::vector<std::int64_t>{5, 8}));
  EXPECT_TRUE(encore::testing::bitwise_equal(target->layer(0)->encoder_weight, saved->layer(0)->encoder_weight));
  EXPECT_FALSE(report.complete());
}
