#include "encore/finetune/finetune.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "encore/core/callbacks.h"
#include "encore/core/ops.h"
#include "encore/core/random.h"

namespace encore::finetune {

namespace {

/// Fine-tuning defaults: 10 epochs of batches of 64.
PhaseConfig parse_phase(core::JsonReader r, const core::OptimizerRegistry& optimizers, std::size_t index) {
  PhaseConfig p;
  p.name = r.get<std::string>("name", fmt::format("phase{}", index));
  if (p.name.empty() || p.name.find_first_of("/ ") != std::string::npos) {
    r.fail("name", "must be a non-empty name without '/' or spaces, got " + core::describe_value(r.json()["name"]));
  }
  p.trainable = r.get<std::vector<std::string>>("trainable", p.trainable);
  if (p.trainable.empty()) r.fail("trainable", "must name at least one block");
  for (std::size_t j = 1; j < p.trainable.size(); ++j) {
    if (std::find(p.trainable.begin(), p.trainable.begin() + static_cast<std::ptrdiff_t>(j), p.trainable[j]) !=
        p.trainable.begin() + static_cast<std::ptrdiff_t>(j)) {
      throw core::ConfigError(r.path_of("trainable") + "/" + std::to_string(j), "block \"" + p.trainable[j] + "\" is listed twice");
    }
  }
  p.lr_decay_per_depth = r.get<double>("lr_decay_per_depth", p.lr_decay_per_depth,
                                       core::Rule<double>{[](const double& v) { return v > 0 && v <= 1; }, "in (0, 1]"});
  p.unfreeze_every_epochs =
      static_cast<int>(r.get<std::int64_t>("unfreeze_every_epochs", p.unfreeze_every_epochs, core::at_least(std::int64_t{0})));
  if (auto semi = r.optional_object("semi_supervised")) p.semi_supervised = core::read_options<SemiSupervisedConfig>(*semi);
  p.train = core::parse_train_config(r, optimizers, p.train);
  return p;
}

core::Json phase_json(const PhaseConfig& p, const core::OptimizerRegistry& optimizers) {
  core::Json out{{"name", p.name},
                 {"trainable", p.trainable},
                 {"lr_decay_per_depth", p.lr_decay_per_depth},
                 {"unfreeze_every_epochs", p.unfreeze_every_epochs}};
  out["semi_supervised"] = p.semi_supervised ? core::options_json(*p.semi_supervised) : core::Json(nullptr);
  out.update(core::to_json(p.train, optimizers));
  return out;
}

}  // namespace

const core::Choices<SemiSupervisedConfig::ConsistencyTarget>& SemiSupervisedConfig::consistency_target_choices() {
  static const core::Choices<ConsistencyTarget> choices{{"probabilities", ConsistencyTarget::kProbabilities},
                                                        {"confident_class", ConsistencyTarget::kConfidentClass}};
  return choices;
}

void SemiSupervisedConfig::check() const {
  if (layer_weights.empty()) throw core::OptionError("layer_weights", "must give at least one weight (0 for none)");
  if (consistency_weight == 0 && !reconstructs()) {
    throw core::OptionError("layer_weights",
                            "must have a weight > 0 when consistency_weight is 0 (a phase without unlabelled costs is a supervised one)");
  }
  if (consistency_augmented && consistency_weight == 0) {
    throw core::OptionError("consistency_augmented", "needs a consistency_weight > 0: it changes the head's denoising cost");
  }
  if (teacher_decay > 0 && consistency_weight == 0) {
    throw core::OptionError("teacher_decay", "needs a consistency_weight > 0: it gives the head's denoising cost its targets");
  }
}

bool SemiSupervisedConfig::reconstructs() const {
  return std::any_of(layer_weights.begin(), layer_weights.end(), [](double w) { return w > 0; });
}

std::vector<double> SemiSupervisedConfig::weights_for(int layers) const {
  return layer_weights.size() == 1 ? std::vector<double>(static_cast<std::size_t>(layers), layer_weights.front()) : layer_weights;
}

FinetuneConfig parse_finetune_config(core::JsonReader r, const core::OptimizerRegistry& optimizers, const HeadRegistry& heads) {
  FinetuneConfig c;
  c.encoder_depth = r.get<std::optional<int>>("encoder_depth", std::nullopt);
  if (c.encoder_depth && *c.encoder_depth < 1) r.fail("encoder_depth", "must be >= 1, got " + std::to_string(*c.encoder_depth));
  if (auto h = r.optional_object("hidden")) c.hidden = core::read_options<HiddenLayerConfig>(*h);
  const core::Json empty = core::Json::object();
  auto head = r.has("head") ? r.object("head") : core::JsonReader(empty, r.path_of("head"));
  const auto type = head.choice("type", heads.names(), "one_vs_all");
  c.head = heads.at(type).factory.parse(head);
  c.head["type"] = type;
  c.allow_partial_load = r.get<bool>("allow_partial_load", c.allow_partial_load);
  if (r.has("phases")) {
    const auto phases = r.array("phases");
    if (phases.empty()) r.fail("phases", "must list at least one phase");
    for (std::size_t i = 0; i < phases.size(); ++i) c.phases.push_back(parse_phase(phases[i], optimizers, i));
  } else {
    c.phases.push_back(parse_phase(core::JsonReader(empty, r.path_of("phases") + "/0"), optimizers, 0));
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < c.phases.size(); ++i) {
    if (!names.insert(c.phases[i].name).second) {
      throw core::ConfigError(r.path_of("phases") + "/" + std::to_string(i) + "/name",
                              "phase name \"" + c.phases[i].name + "\" is used twice");
    }
  }
  if (auto a = r.optional_object("augment")) c.augment = core::read_options<AugmentConfig>(*a);
  for (std::size_t i = 0; i < c.phases.size(); ++i) {
    const auto& semi = c.phases[i].semi_supervised;
    if (semi && semi->consistency_augmented && !c.augment) {
      throw core::ConfigError(fmt::format("{}/{}/semi_supervised/consistency_augmented", r.path_of("phases"), i),
                              fmt::format("needs {} (the changes it draws)", r.path_of("augment")));
    }
  }
  r.finish();
  return c;
}

core::Json to_json(const FinetuneConfig& c, const core::OptimizerRegistry& optimizers) {
  core::Json out{{"encoder_depth", c.encoder_depth ? core::Json(*c.encoder_depth) : core::Json(nullptr)}};
  out["hidden"] = c.hidden ? core::options_json(*c.hidden) : core::Json(nullptr);
  out["head"] = c.head;
  out["allow_partial_load"] = c.allow_partial_load;
  out["phases"] = core::Json::array();
  for (const auto& p : c.phases) out["phases"].push_back(phase_json(p, optimizers));
  out["augment"] = c.augment ? core::options_json(*c.augment) : core::Json(nullptr);
  return out;
}

Classifier build_classifier(const FinetuneConfig& config, std::shared_ptr<models::AutoencoderModel> autoencoder, const HeadRegistry& heads,
                            std::int64_t classes) {
  // Checked here, where the JSON path is known, rather than as the classifier's own precondition.
  if (config.encoder_depth) {
    const auto layers = static_cast<int>(autoencoder->greedy_layers().size());
    if (layers == 0) {
      throw core::ConfigError("/finetune/encoder_depth",
                              "this model encodes in one piece, without layers to choose from: leave encoder_depth null (all of it)");
    }
    if (*config.encoder_depth > layers) {
      throw core::ConfigError("/finetune/encoder_depth",
                              fmt::format("must be at most {}, the model's layers, got {}", layers, *config.encoder_depth));
    }
  }
  const auto& factory = heads.at(config.head["type"].get<std::string>()).factory;
  return Classifier(std::move(autoencoder), config.encoder_depth, config.hidden,
                    [&](std::int64_t input_dim) { return factory.build(config.head, input_dim, classes); });
}

void check_phases_fit_classifier(const FinetuneConfig& config, const ClassifierImpl& classifier) {
  for (std::size_t i = 0; i < config.phases.size(); ++i) {
    if (const auto& semi = config.phases[i].semi_supervised) {
      const auto path = fmt::format("/finetune/phases/{}/semi_supervised", i);
      const auto levels = classifier.denoising_levels();
      if (levels == 0) {
        throw core::ConfigError(path,
                                "needs an encoder of greedy layers to reconstruct, or a model that scores its own denoising "
                                "(ladder_network, convolutional_autoencoder); this model has neither");
      }
      const auto what = classifier.encoder_layer_count() > 0
                            ? fmt::format("the encoder has {} layers (give one per layer, or one for all)", levels)
                            : fmt::format("the model scores {} levels of denoising (give one per level, or one for all)", levels);
      if (semi->layer_weights.size() != 1 && semi->layer_weights.size() != static_cast<std::size_t>(levels)) {
        throw core::ConfigError(path + "/layer_weights", fmt::format("has {} weights, but {}", semi->layer_weights.size(), what));
      }
    }
    for (std::size_t j = 0; j < config.phases[i].trainable.size(); ++j) {
      try {
        classifier.block(config.phases[i].trainable[j]);
      } catch (const std::invalid_argument& e) {
        throw core::ConfigError(fmt::format("/finetune/phases/{}/trainable/{}", i, j), e.what());
      }
    }
  }
}

ClassificationTask::ClassificationTask(Classifier classifier, const PhaseConfig& phase, std::optional<AugmentConfig> augment,
                                       std::vector<std::int64_t> image_shape)
    : classifier_(std::move(classifier)),
      semi_supervised_(phase.semi_supervised),
      augment_(std::move(augment)),
      image_shape_(std::move(image_shape)),
      lr_decay_per_depth_(phase.lr_decay_per_depth) {
  if (phase.unfreeze_every_epochs > 0) {
    trainable_.insert(phase.trainable.back());
  } else {
    trainable_.insert(phase.trainable.begin(), phase.trainable.end());
  }
  classifier_->set_trainable(trainable_);
  if (semi_supervised_ && semi_supervised_->teacher_decay > 0) {
    teacher_ = std::make_shared<core::WeightAverage>(*classifier_, semi_supervised_->teacher_decay);
  }
}

std::vector<core::ParameterGroup> ClassificationTask::groups_of(const std::set<std::string>& blocks) const {
  // Encoder layers (or parts) get their own groups so that each can have its depth's learning rate.
  const auto depth = static_cast<int>(std::count_if(classifier_->blocks().begin(), classifier_->blocks().end(),
                                                    [](const Block& b) { return b.encoder_layer.has_value(); }));
  std::set<std::string> expanded;
  for (const auto& name : blocks) {
    const auto& block = classifier_->block(name);
    if (name == "encoder" && depth > 0) {
      for (const auto& b : classifier_->blocks()) {
        if (b.encoder_layer) expanded.insert(b.name);
      }
    } else {
      expanded.insert(block.name);
    }
  }
  std::vector<core::ParameterGroup> groups;
  for (const auto& name : expanded) {
    const auto& block = classifier_->block(name);
    const double scale = block.encoder_layer ? std::pow(lr_decay_per_depth_, depth - 1 - *block.encoder_layer) : 1.0;
    groups.push_back({block.parameters, scale});
  }
  return groups;
}

std::vector<core::ParameterGroup> ClassificationTask::parameter_groups() { return groups_of(trainable_); }

std::vector<core::ParameterGroup> ClassificationTask::unfreeze(const std::string& block) {
  trainable_.insert(block);
  classifier_->set_trainable(trainable_);
  return groups_of({block});
}

namespace {

/// The head's denoising cost of `scores` for changed rows whose clean rows the head gives
/// `clean_probabilities`, as `semi` says.
torch::Tensor consistency_cost(const Head& head, const torch::Tensor& scores, const torch::Tensor& clean_probabilities,
                               const SemiSupervisedConfig& semi) {
  if (semi.consistency_target == SemiSupervisedConfig::ConsistencyTarget::kProbabilities) {
    return (head.probabilities(scores) - clean_probabilities).pow(2).sum(1).mean();
  }
  const auto [confidence, pseudo_labels] = clean_probabilities.max(1);
  const auto confident = (confidence >= semi.consistency_threshold).nonzero().squeeze(1);
  // Zero through the scores (not a constant) so that every rank's step reaches the same parameters.
  if (confident.numel() == 0) return scores.sum() * 0;
  const double share = static_cast<double>(confident.size(0)) / static_cast<double>(scores.size(0));
  return share * head.loss(scores.index_select(0, confident), pseudo_labels.index_select(0, confident));
}

}  // namespace

torch::Tensor ClassificationTask::clean_probabilities(const torch::Tensor& rows) {
  torch::NoGradGuard no_grad;
  return classifier_->head().probabilities(classifier_->forward(rows));
}

torch::Tensor ClassificationTask::training_loss(const core::Batch& batch, core::MetricSums& metrics) {
  // The teacher's targets before any pass that builds a graph: serving its weights writes into the
  // parameters, which that graph would need unchanged for its backward pass.
  const auto teacher_targets = teacher_ && batch.unlabelled.defined()
                                   ? teacher_->with_averaged_parameters([&] { return clean_probabilities(batch.unlabelled); })
                                   : torch::Tensor();
  const auto supervised = classifier_->head().loss(classifier_->forward(labelled_inputs(batch)), batch.labels);
  if (!batch.unlabelled.defined()) return supervised;
  TORCH_CHECK(semi_supervised_, "a batch with unlabelled rows reached a phase that is not semi-supervised");
  torch::Tensor cost;
  const auto add = [&cost](const torch::Tensor& term) { cost = cost.defined() ? cost + term : term; };
  if (semi_supervised_->reconstructs()) {
    const auto weights = semi_supervised_->weights_for(classifier_->denoising_levels());
    add(classifier_->encoder_layer_count() > 0
            ? models::layerwise_denoising_cost(classifier_->encoder_layers(), batch.unlabelled, weights, semi_supervised_->loss)
            : classifier_->autoencoder().denoising_cost(batch.unlabelled, weights, semi_supervised_->loss));
  }
  if (semi_supervised_->consistency_weight > 0) {
    auto& head = classifier_->head();
    const auto target = teacher_targets.defined() ? teacher_targets : clean_probabilities(batch.unlabelled);
    const auto moved =
        semi_supervised_->consistency_augmented ? augment_images(batch.unlabelled, image_shape_, *augment_) : batch.unlabelled;
    const auto scores = head.forward(classifier_->noisy_features(moved, semi_supervised_->consistency_noise));
    add(semi_supervised_->consistency_weight * consistency_cost(head, scores, target, *semi_supervised_));
  }
  metrics.add("supervised_loss", supervised.item<double>(), static_cast<double>(batch.size()));
  // A rank whose share of a short last batch is empty holds a stand-in row weighted 0.
  if (batch.unlabelled_scale > 0) metrics.add("unlabelled_cost", cost.item<double>(), static_cast<double>(batch.unlabelled.size(0)));
  return supervised + batch.unlabelled_scale * cost;
}

torch::Tensor ClassificationTask::labelled_inputs(const core::Batch& batch) const {
  if (!augment_) return batch.inputs;
  if (!batch.unlabelled.defined()) return augment_images(batch.inputs, image_shape_, *augment_);
  // A semi-supervised step's labelled rows are whole on every rank (its unlabelled ones are shared
  // out): each rank draws them as one process does, from the first row.
  core::BatchRowOffset whole_batch(0);
  return augment_images(batch.inputs, image_shape_, *augment_);
}

torch::Tensor ClassificationTask::validation_loss(const core::Batch& batch, core::MetricSums& metrics) {
  const auto scores = classifier_->forward(batch.inputs);
  const auto correct = classifier_->head().predict(scores).eq(batch.labels).to(torch::kFloat64).mean().item<double>();
  metrics.add("accuracy", correct, static_cast<double>(batch.size()));
  return classifier_->head().loss(scores, batch.labels);
}

void ClassificationTask::after_train_mode() { classifier_->keep_frozen_blocks_in_eval(trainable_); }

GradualUnfreezing::GradualUnfreezing(ClassificationTask& task, std::vector<std::string> pending, int every_epochs)
    : task_(task), pending_(std::move(pending)), every_epochs_(every_epochs) {}

void GradualUnfreezing::catch_up(core::Trainer& trainer, std::int64_t epochs_done) {
  for (std::int64_t epoch = 1; epoch <= epochs_done; ++epoch) unfreeze_after(trainer, epoch);
}

void GradualUnfreezing::on_epoch_end(core::Trainer& trainer, const core::Metrics&) { unfreeze_after(trainer, trainer.state().epoch); }

void GradualUnfreezing::unfreeze_after(core::Trainer& trainer, std::int64_t epoch) {
  if (pending_.empty() || epoch % every_epochs_ != 0) return;
  const auto block = pending_.back();
  pending_.pop_back();
  for (auto& group : task_.unfreeze(block)) trainer.add_parameter_group(std::move(group.parameters), group.lr_scale);
}

namespace {

// One fine-tuning phase: its trainable blocks set when it starts, its own batch order.
class PhaseStage : public core::Stage {
 public:
  PhaseStage(Classifier classifier, const PhaseConfig& phase, std::size_t index, const std::optional<AugmentConfig>& augment,
             const core::BatchSource& train, const core::BatchSource* validation, const core::BatchSource* unlabelled)
      : classifier_(std::move(classifier)),
        phase_(phase),
        index_(index),
        augment_(augment),
        train_(train),
        validation_(validation),
        unlabelled_(unlabelled) {}

  std::string name() const override { return "finetune/" + phase_.name; }
  const core::TrainConfig& config() const override { return phase_.train; }
  torch::nn::Module& module() override { return *classifier_; }
  core::TrainTask& task() override { return *task_; }
  const core::BatchSource& train() const override { return *phase_train_; }
  const core::BatchSource* validation() const override { return validation_; }

  void prepare(const core::StageContext& context) override {
    task_.emplace(classifier_, phase_, augment_, train_.data().example_shape());
    core::BatchSource labelled(train_.data(), train_.indices(), train_.scaler(), phase_.train.batch_size, true,
                               core::stream_seed(context.seed, core::RandomStream::kFinetunePhase, index_));
    if (!phase_.semi_supervised) {
      phase_train_.emplace(std::move(labelled));
      return;
    }
    if (!unlabelled_)
      throw std::invalid_argument("fine-tuning phase \"" + phase_.name + "\" is semi-supervised, but no unlabelled data was given");
    const core::BatchSource unlabelled(unlabelled_->data(), unlabelled_->indices(), unlabelled_->scaler(),
                                       phase_.semi_supervised->unlabelled_batch_size, true,
                                       core::stream_seed(context.seed, core::RandomStream::kFinetuneUnlabelled, index_));
    phase_train_.emplace(unlabelled.with_labelled(std::move(labelled)));
  }

  void attach(core::Trainer& trainer) override {
    // Added before the checkpoint saver (run_stage), so that checkpoints hold the average of every step before them.
    if (const auto teacher = task_->teacher()) trainer.add_callback(teacher);
    if (phase_.unfreeze_every_epochs <= 0) return;
    std::vector<std::string> pending(phase_.trainable.begin(), phase_.trainable.end() - 1);
    unfreezing_ = std::make_shared<GradualUnfreezing>(*task_, pending, phase_.unfreeze_every_epochs);
    trainer.add_callback(unfreezing_);
  }

  void before_restore(core::Trainer& trainer, const core::TrainerState& saved) override {
    // The optimizer's groups must be those of the checkpoint before its state is loaded.
    if (unfreezing_) unfreezing_->catch_up(trainer, saved.epoch);
  }

 private:
  Classifier classifier_;
  const PhaseConfig& phase_;
  std::size_t index_;
  const std::optional<AugmentConfig>& augment_;
  const core::BatchSource& train_;
  const core::BatchSource* validation_;
  const core::BatchSource* unlabelled_;
  std::optional<ClassificationTask> task_;
  std::optional<core::BatchSource> phase_train_;
  std::shared_ptr<GradualUnfreezing> unfreezing_;
};

}  // namespace

std::map<std::string, core::Metrics> finetune(Classifier& classifier, const FinetuneConfig& config, const core::BatchSource& train,
                                              const core::BatchSource* validation, const core::StageContext& context,
                                              const core::BatchSource* unlabelled) {
  std::map<std::string, core::Metrics> results;
  for (std::size_t i = 0; i < config.phases.size(); ++i) {
    PhaseStage stage(classifier, config.phases[i], i, config.augment, train, validation, unlabelled);
    if (auto metrics = core::run_stage(stage, context)) results[stage.name()] = *metrics;
  }
  return results;
}

}  // namespace encore::finetune
