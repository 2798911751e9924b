#include "encore/finetune/experiment.h"

#include <torch/torch.h>

#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "encore/core/callbacks.h"
#include "encore/core/data_section.h"
#include "encore/core/distributed.h"
#include "encore/core/errors.h"
#include "encore/core/image.h"
#include "encore/core/ops.h"
#include "encore/core/random.h"
#include "encore/core/resume.h"
#include "encore/core/stage.h"
#include "encore/finetune/evaluation.h"
#include "encore/finetune/report.h"
#include "encore/finetune/run_policy.h"
#include "encore/models/pictures.h"

namespace encore::finetune {

namespace fs = std::filesystem;

namespace {

// At most `limit` bytes of a name, cut at a character boundary and marked "...".
std::string shortened(const std::string& name, std::size_t limit) {
  if (name.size() <= limit) return name;
  std::size_t cut = limit - 3;
  while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;  // inside a UTF-8 sequence
  return name.substr(0, cut) + "...";
}

// The confusion matrix as a picture: one cell per (true, predicted) pair, rows normalised to their
// class size so that every class's errors show at the same scale (white: all of a class), the class
// names along the left (true) and the top (predicted, reading upwards).
void write_confusion_png(const fs::path& file, const torch::Tensor& confusion, const std::vector<std::string>& class_names) {
  constexpr int kCell = 24, kTextHeight = 16, kPad = 6, kNameChars = 24;
  constexpr std::uint8_t kWhite = 255, kBlack = 0;
  std::vector<std::string> names;
  int longest = core::text_width("predicted", kTextHeight);
  for (const auto& name : class_names) {
    names.push_back(shortened(name, kNameChars));
    longest = std::max(longest, core::text_width(names.back(), kTextHeight));
  }
  const int margin = longest + 2 * kPad;
  const auto classes = confusion.size(0);
  const auto rows = confusion.to(torch::kFloat32);
  const auto cells = (rows / rows.sum(1, true).clamp_min(1) * 255).round().to(torch::kUInt8);
  auto image = torch::full({margin + classes * kCell, margin + classes * kCell}, kWhite, torch::kUInt8);
  image.narrow(0, margin, classes * kCell)
      .narrow(1, margin, classes * kCell)
      .copy_(cells.repeat_interleave(kCell, 0).repeat_interleave(kCell, 1));
  for (std::int64_t k = 0; k < classes; ++k) {
    const int offset = margin + static_cast<int>(k) * kCell + (kCell - kTextHeight) / 2;
    const auto& name = names[static_cast<std::size_t>(k)];
    core::draw_text(image, name, margin - kPad - core::text_width(name, kTextHeight), offset, kTextHeight, kBlack);
    core::draw_text(image, name, offset, margin - kPad - core::text_width(name, kTextHeight), kTextHeight, kBlack, true);
  }
  core::draw_text(image, "true", kPad, margin - kPad - kTextHeight, kTextHeight, kBlack);
  core::draw_text(image, "predicted", margin - kPad - kTextHeight, kPad, kTextHeight, kBlack, true);
  core::write_png(file, image);
}

void check_load(const LoadReport& report, const fs::path& file, bool allow_partial) {
  if (report.matched.empty()) {
    throw core::DataError(fmt::format("{}: none of its tensors match the model's parameters (unexpected: {})", file.string(),
                                      report.unexpected.empty() ? "none" : report.unexpected.front() + ", ..."));
  }
  if (allow_partial || report.complete()) return;
  if (!report.mismatched.empty()) {
    const auto& m = report.mismatched.front();
    throw core::DataError(
        fmt::format("{}: tensor \"{}\" has shape [{}], the model expects [{}] (set /finetune/allow_partial_load to "
                    "fine-tune anyway; load_report.json lists every tensor)",
                    file.string(), m.name, fmt::join(m.found, ", "), fmt::join(m.expected, ", ")));
  }
  throw core::DataError(
      fmt::format("{}: has no tensor \"{}\" that the model needs ({} missing; set /finetune/allow_partial_load to "
                  "fine-tune anyway)",
                  file.string(), report.missing.front(), report.missing.size()));
}

std::map<std::string, core::Json> last_metrics_by_stage(const fs::path& file) {
  std::map<std::string, core::Json> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    auto record = core::parse_json_text(line, file.string());
    const auto stage = record.at("stage").get<std::string>();
    for (const char* key : {"stage", "epoch", "step"}) record.erase(key);
    out[stage] = record;
  }
  return out;
}

// One run of an experiment, step by step; run_experiment says the order.
class ExperimentRun {
 public:
  ExperimentRun(const ExperimentConfig& config, const Components& components, const RunOptions& options)
      : config_(config),
        components_(components),
        options_(options),
        log_(*options.log),
        run_(options.run_dir, core::is_main_process() && options.write_files),
        resolved_(to_json(config, components)),
        pretrains_(config.pretrain.runs() && !options.pretrained_file),
        finetunes_(config.finetune && !options.pretrain_only) {}

  // Threads, the BLAS gate and the config checks, before anything is loaded.
  void apply_run_policy() {
    if (options_.resume && !options_.write_files) throw core::UsageError("resuming needs the run's files: it cannot be an in-memory run");
    configure_run_threads(config_.runtime, log_);
    core::use_cpu_kernels(config_.runtime.cpu_kernels);
    check_ranks_agree(resolved_, options_.config_source, log_);
    check_matrix_products(log_);
    if (options_.resume) check_resumed_config(run_, resolved_, options_.allow_config_change, options_.config_source, log_);
  }

  void load_data() {
    const auto& group = core::process_group();
    device_ = core::resolve_device(config_.runtime.device, group ? group->world().local_rank : 0);
    core::seed_everything(config_.runtime.seed);
    data_ = core::load_data(config_.data);
    for (const auto& note : data_.notes) log_ << note << '\n';
    if (!data_.skipped_images.empty()) {
      log_ << fmt::format("left out {} unreadable image file(s), listed in {} (the first: {})\n", data_.skipped_images.size(),
                          RunDirectory::kSkippedImages, data_.skipped_images.front());
    }
    split_ = core::split_data(config_.data, data_.train, config_.runtime.seed);
    scaler_ = core::Scaler::fit(config_.data.scaling, data_.train, split_.all_training);
    summary_["data"] = {{"format", config_.data.format},
                        {"training_examples", data_.train.size()},
                        {"test_examples", data_.test ? data_.test->size() : 0},
                        {"example_shape", data_.train.example_shape()},
                        {"classes", data_.train.class_names}};
    log_ << fmt::format("data: {} training examples ({} validation held out, {} labelled, {} unlabelled), {} features, {} classes{}\n",
                        data_.train.size(), split_.validation.size(0), split_.labelled.size(0), split_.unlabelled.size(0),
                        data_.train.feature_dim(), data_.train.num_classes(),
                        data_.test ? fmt::format(", {} test examples", data_.test->size()) : std::string());
  }

  // The models are built and checked against the stage settings, and an encoder given from a file
  // is loaded and checked, before anything is written.
  void build_models() {
    if (options_.pretrained_file && !finetunes_)
      throw core::ConfigError("/finetune", "fine-tuning from a pretrained file needs a finetune section");
    model_ = models::build_model(config_.model, components_.models, data_.train.example_shape());
    if (pretrains_) models::check_pretrain_fits_model(config_.pretrain, *model_);
    if (finetunes_) {
      classifier_ = build_classifier(*config_.finetune, model_, components_.heads, data_.train.num_classes());
      check_phases_fit_classifier(*config_.finetune, *classifier_);
      if (config_.finetune->augment) check_augment_fits_data(*config_.finetune->augment, data_.train.example_shape());
      classifier_->to(device_);
    }
    if (options_.pretrained_file) {
      given_report_ = load_by_name(model_->module(), options_.pretrained_file->string());
      check_load(*given_report_, *options_.pretrained_file, config_.finetune->allow_partial_load);
    }
    model_->module().to(device_);
  }

  // A new run creates its directory, a resumed one reads its checkpoint; both write the config and
  // the split, and set up what every stage shares.
  void open_directory() {
    metrics_writer_ = std::make_shared<core::MetricsWriter>(run_.file(RunDirectory::kMetrics));
    if (options_.resume) {
      find_resume_point();
    } else {
      run_.create();
      run_.lock();
    }
    run_.write_json(RunDirectory::kConfig, resolved_);
    run_.write_json(RunDirectory::kSplit, core::to_json(split_, config_.runtime.seed), -1);
    if (!data_.skipped_images.empty())
      run_.write_bytes(RunDirectory::kSkippedImages, fmt::format("{}\n", fmt::join(data_.skipped_images, "\n")));
    context_.device = device_;
    context_.seed = config_.runtime.seed;
    context_.attach_callbacks = run_callbacks();
    // validation_fraction 0: no validation set, and nothing validated.
    if (split_.validation.size(0) > 0) {
      validation_.emplace(data_.train, split_.validation, scaler_, kEvaluationBatch, false, config_.runtime.seed);
    }
    if (data_.test) {
      test_.emplace(*data_.test, torch::arange(data_.test->size(), torch::kInt64), scaler_, kEvaluationBatch, false, config_.runtime.seed);
    }
  }

  void pretrain() {
    if (!pretrains_) return;
    // A run interrupted while fine-tuning has its pretraining, and pretrained.pt, behind it.
    if (context_.resume && context_.resume->is_past(models::pretrain_stage_names(config_.pretrain, *model_))) {
      pretrained_ = run_.file(RunDirectory::kPretrained);
      return;
    }
    const auto unlabelled = unlabelled_source();
    for (const auto& [stage, metrics] : models::pretrain(model_, config_.pretrain, unlabelled, validation(), context_)) {
      summary_["stages"][stage] = metrics;
    }
    pretrained_now_ = true;
    if (!core::is_main_process()) return;
    if (run_.writes()) {
      run_.write_bytes(RunDirectory::kPretrained, pretrained_model_bytes(*model_, config_, components_, scaler_, data_.train));
      pretrained_ = run_.file(RunDirectory::kPretrained);
    }
    describe_pretraining();
  }

  // Pretraining and semi-supervised phases see every training image, labelled or not, without its
  // label; never the validation split.
  core::BatchSource unlabelled_source() const {
    return core::BatchSource(data_.train, split_.all_training, scaler_, kEvaluationBatch, true, config_.runtime.seed);
  }

  void finetune() {
    if (!finetunes_) return;
    load_pretrained_encoder();
    core::BatchSource labelled(data_.train, split_.labelled, scaler_, kEvaluationBatch, true, config_.runtime.seed);
    const auto unlabelled = unlabelled_source();
    for (const auto& [stage, metrics] : finetune::finetune(classifier_, *config_.finetune, labelled, validation(), context_, &unlabelled)) {
      summary_["stages"][stage] = metrics;
    }
    if (!core::is_main_process()) return;
    run_.write_bytes(RunDirectory::kModel, trained_model_bytes(*classifier_, config_, components_, scaler_, data_.train));
    evaluate_fine_tuned();
  }

  core::Json write_summary() {
    if (!run_.writes()) return summary_;
    if (context_.resume) {
      // Stages finished before the interruption report their last metrics.jsonl line.
      for (const auto& [stage, metrics] : last_metrics_by_stage(run_.file(RunDirectory::kMetrics))) {
        if (!summary_["stages"].contains(stage)) summary_["stages"][stage] = metrics;
      }
    }
    run_.write_json(RunDirectory::kSummary, summary_);
    log_ << fmt::format("wrote {}\n", write_report(run_.path()).string());
    return summary_;
  }

 private:
  // apply_run_policy has already refused a directory without a config.json (check_resumed_config).
  void find_resume_point() {
    // Before anything is read: a run still going there must not be joined by a second.
    run_.lock();
    auto checkpoint = core::newest_valid_checkpoint(run_.file(RunDirectory::kCheckpoints), log_);
    if (!checkpoint) {
      log_ << "no checkpoint to resume from: starting the run again\n";
      run_.remove(RunDirectory::kMetrics);
      return;
    }
    // Refused before anything is redone: each rank's generator state is in the checkpoint.
    checkpoint->check_world_size();
    // Lines written after the checkpoint go: the resumed run writes them again.
    checkpoint->load_callback(*metrics_writer_);
    log_ << fmt::format("resuming from {}: {}\n", checkpoint->file().string(), core::describe_resume_point(*checkpoint));
    context_.resume = std::make_shared<core::ResumePlan>(std::move(*checkpoint));
  }

  std::function<void(core::Trainer&)> run_callbacks() {
    auto progress = std::make_shared<core::ProgressReporter>(log_, options_.interactive);
    const auto policy = config_.runtime.on_non_finite == "skip_step" ? core::NonFinitePolicy::kSkipStep : core::NonFinitePolicy::kError;
    const auto precision = config_.runtime.mixed_precision == "bf16" ? core::MixedPrecision::kBf16 : core::MixedPrecision::kOff;
    return [this, progress, policy, precision](core::Trainer& trainer) {
      trainer.set_non_finite_policy(policy);
      trainer.set_mixed_precision(precision);
      if (trainer.config().early_stopping) trainer.add_callback(std::make_shared<core::EarlyStopping>(*trainer.config().early_stopping));
      if (options_.write_files) {
        trainer.add_callback(metrics_writer_);
        trainer.add_callback(
            std::make_shared<core::CheckpointSaver>(run_.file(RunDirectory::kCheckpoints), config_.runtime.checkpoint_every_steps));
      }
      trainer.add_callback(progress);
    };
  }

  const core::BatchSource* validation() const { return validation_ ? &*validation_ : nullptr; }

  // Pictures and reconstruction errors of the pretrained autoencoder (rank 0). Pictures need
  // examples that are images; reconstructions show held-out ones (validation, else test). An
  // in-memory run draws nothing.
  void describe_pretraining() {
    if (run_.writes()) draw_pretraining();
    summary_["pretrain"] = core::Json::object();
    if (validation_) summary_["pretrain"]["validation"] = {{"reconstruction_mse", mean_reconstruction_mse(*model_, *validation_, device_)}};
    if (test_) summary_["pretrain"]["test"] = {{"reconstruction_mse", mean_reconstruction_mse(*model_, *test_, device_)}};
    if (test_ && model_->latent_dim() > 0) {
      summary_["pretrain"]["test"]["variational_bound"] = variational_bound(
          *model_, *test_, config_.pretrain.loss, core::stream_seed(config_.runtime.seed, core::RandomStream::kVariationalBound), device_);
    }
  }

  void draw_pretraining() {
    const auto image_shape = data_.train.example_shape();
    if (!models::is_image_shape(image_shape)) {
      log_ << "no reconstructions.png or filters.png: the examples are not images\n";
      return;
    }
    const auto* held_out = validation_ ? &*validation_ : test_ ? &*test_ : nullptr;
    if (held_out) models::write_reconstructions_png(run_.file(RunDirectory::kReconstructions), *model_, *held_out, image_shape);
    models::write_filters_png(run_.file(RunDirectory::kFilters), *model_, image_shape);
  }

  // Every fine-tuned encoder comes through the same checked load by name, also right after
  // pretraining in this run, and leaves the same report. After pretraining in this run, the other
  // ranks' encoders are rank 0's already (the all-reduced gradients kept them alike); a file given
  // with --from was loaded and checked before the run directory existed.
  void load_pretrained_encoder() {
    if (!pretrained_ || (!run_.writes() && pretrained_now_)) return;
    const auto report = given_report_ ? *given_report_ : load_by_name(model_->module(), pretrained_->string());
    run_.write_json(RunDirectory::kLoadReport, report.to_json());
    if (!given_report_) check_load(report, *pretrained_, config_.finetune->allow_partial_load);
    log_ << fmt::format("loaded {}: {} tensors matched, {} missing, {} unexpected, {} mismatched\n", pretrained_->string(),
                        report.matched.size(), report.missing.size(), report.unexpected.size(), report.mismatched.size());
  }

  void evaluate_fine_tuned() {
    if (validation_) summary_["validation"] = evaluate_classifier(*classifier_, *validation_, device_).to_json(data_.train.class_names);
    if (!test_) return;
    const auto evaluation = evaluate_classifier(*classifier_, *test_, device_);
    summary_["test"] = evaluation.to_json(data_.train.class_names);
    if (run_.writes()) write_confusion_png(run_.file(RunDirectory::kConfusion), evaluation.confusion, data_.train.class_names);
    log_ << fmt::format("test accuracy {:.4f}, macro-F1 {:.4f} ({} examples)\n", evaluation.accuracy, evaluation.macro_f1, test_->size());
  }

  const ExperimentConfig& config_;
  const Components& components_;
  const RunOptions& options_;
  std::ostream& log_;
  RunDirectory run_;
  const core::Json resolved_;
  const bool pretrains_;
  const bool finetunes_;
  torch::Device device_ = torch::kCPU;
  core::LoadedData data_;
  core::DataSplit split_;
  core::Scaler scaler_;
  std::shared_ptr<models::AutoencoderModel> model_;
  Classifier classifier_ = nullptr;
  std::optional<LoadReport> given_report_;
  std::shared_ptr<core::MetricsWriter> metrics_writer_;
  core::StageContext context_;
  std::optional<core::BatchSource> validation_, test_;
  std::optional<fs::path> pretrained_ = options_.pretrained_file;
  bool pretrained_now_ = false;
  core::Json summary_{{"name", config_.name}, {"stages", core::Json::object()}};
};

}  // namespace

void check_experiment(const ExperimentConfig& config, const Components& components, const RunOptions& options) {
  TORCH_CHECK(options.log, "check_experiment needs a log stream");
  ExperimentRun run(config, components, options);
  run.apply_run_policy();
  run.load_data();
  run.build_models();
}

core::Json run_experiment(const ExperimentConfig& config, const Components& components, const RunOptions& options) {
  TORCH_CHECK(options.log, "run_experiment needs a log stream");
  ExperimentRun run(config, components, options);
  run.apply_run_policy();
  run.load_data();
  run.build_models();
  run.open_directory();
  run.pretrain();
  run.finetune();
  return run.write_summary();
}

}  // namespace encore::finetune
