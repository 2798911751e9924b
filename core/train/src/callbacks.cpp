#include "encore/core/callbacks.h"

#include <unistd.h>

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"

namespace encore::core {

namespace {

std::vector<torch::Tensor> module_state(torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  for (const auto& p : module.parameters()) out.push_back(p.detach().clone());
  for (const auto& b : module.buffers()) out.push_back(b.detach().clone());
  return out;
}

void restore_module_state(torch::nn::Module& module, const std::vector<torch::Tensor>& saved) {
  torch::NoGradGuard no_grad;
  std::size_t i = 0;
  for (auto& p : module.parameters()) p.copy_(saved.at(i++));
  for (auto& b : module.buffers()) b.copy_(saved.at(i++));
}

std::string format_duration(double seconds) {
  const auto total = static_cast<long>(std::max(0.0, seconds) + 0.5);
  return total >= 3600 ? fmt::format("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60)
                       : fmt::format("{}:{:02}", total / 60, total % 60);
}

}  // namespace

EarlyStopping::EarlyStopping(EarlyStoppingConfig config)
    : config_(std::move(config)),
      best_(config_.mode == "min" ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity()) {}

bool EarlyStopping::update(double value) {
  const bool better = config_.mode == "min" ? value < best_ - config_.min_delta : value > best_ + config_.min_delta;
  improved_ = better;
  if (better) {
    best_ = value;
    epochs_since_best_ = 0;
  } else {
    ++epochs_since_best_;
  }
  return epochs_since_best_ >= config_.patience;
}

void EarlyStopping::on_fit_start(Trainer& trainer) {
  // A resumed run keeps the best weights it had; a fresh one starts from the initial weights.
  if (best_weights_.empty()) best_weights_ = module_state(trainer.task().module());
}

void EarlyStopping::on_epoch_end(Trainer& trainer, const Metrics& metrics) {
  auto it = metrics.find(config_.monitor);
  if (it == metrics.end()) {
    std::string known;
    for (const auto& [name, value] : metrics) known += (known.empty() ? "" : ", ") + name;
    throw std::invalid_argument(
        fmt::format("early stopping monitors \"{}\", which this stage does not report (it reports: {})", config_.monitor, known));
  }
  const bool stop = update(it->second);
  if (improved_) {
    best_epoch_ = trainer.state().epoch;
    if (config_.restore_best) best_weights_ = module_state(trainer.task().module());
  }
  if (stop) {
    trainer.request_stop(fmt::format("early stopping: {} has not improved for {} epochs (best {:.6g} at epoch {})", config_.monitor,
                                     config_.patience, best_, best_epoch_));
  }
}

void EarlyStopping::on_fit_end(Trainer& trainer) {
  if (config_.restore_best && best_epoch_ > 0) restore_module_state(trainer.task().module(), best_weights_);
}

void EarlyStopping::save(torch::serialize::OutputArchive& archive) const {
  archive.write("best", c10::IValue(best_));
  archive.write("best_epoch", c10::IValue(best_epoch_));
  archive.write("epochs_since_best", c10::IValue(epochs_since_best_));
  archive.write("best_weights", c10::IValue(c10::List<torch::Tensor>(best_weights_)));
}

void EarlyStopping::load(torch::serialize::InputArchive& archive) {
  c10::IValue value;
  archive.read("best", value);
  best_ = value.toDouble();
  archive.read("best_epoch", value);
  best_epoch_ = value.toInt();
  archive.read("epochs_since_best", value);
  epochs_since_best_ = value.toInt();
  archive.read("best_weights", value);
  best_weights_ = value.toTensorVector();
}

WeightAverage::WeightAverage(torch::nn::Module& module, double decay) : module_(module), decay_(decay), average_(module_state(module)) {
  if (!(decay >= 0 && decay < 1)) throw std::invalid_argument(fmt::format("a weight average's decay must be in [0, 1), got {}", decay));
}

torch::Tensor WeightAverage::with_averaged_parameters(const std::function<torch::Tensor()>& forward) {
  torch::NoGradGuard no_grad;
  auto parameters = module_.parameters();
  std::vector<torch::Tensor> own;
  own.reserve(parameters.size());
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    own.push_back(parameters[i].detach().clone());
    parameters[i].copy_(average_[i]);
  }
  const auto put_back = [&] {
    for (std::size_t i = 0; i < parameters.size(); ++i) parameters[i].copy_(own[i]);
  };
  torch::Tensor result;
  try {
    result = forward();
  } catch (...) {
    put_back();
    throw;
  }
  put_back();
  return result;
}

void WeightAverage::on_batch_end(Trainer&, double, std::int64_t) {
  torch::NoGradGuard no_grad;
  std::size_t i = 0;
  const auto follow = [&](const torch::Tensor& weight) {
    // Integer buffers (batch norm's batch count) are counts, not weights: they follow the module.
    if (average_[i].is_floating_point()) {
      average_[i].lerp_(weight, 1 - decay_);
    } else {
      average_[i].copy_(weight);
    }
    ++i;
  };
  for (const auto& p : module_.parameters()) follow(p);
  for (const auto& b : module_.buffers()) follow(b);
}

void WeightAverage::on_fit_end(Trainer&) { restore_module_state(module_, average_); }

void WeightAverage::save(torch::serialize::OutputArchive& archive) const {
  archive.write("average", c10::IValue(c10::List<torch::Tensor>(average_)));
}

void WeightAverage::load(torch::serialize::InputArchive& archive) {
  c10::IValue value;
  archive.read("average", value);
  auto average = value.toTensorVector();
  const auto fits = [&] {
    if (average.size() != average_.size()) return false;
    for (std::size_t i = 0; i < average.size(); ++i) {
      if (!average[i].sizes().equals(average_[i].sizes()) || average[i].dtype() != average_[i].dtype()) return false;
    }
    return true;
  };
  if (!fits()) throw DataError("the checkpoint's weight average does not fit this model's weights (another model's checkpoint?)");
  average_ = std::move(average);
}

MetricsWriter::MetricsWriter(std::filesystem::path file) : file_(std::move(file)) {}

void MetricsWriter::write(const Json& record) {
  if (!is_main_process()) return;
  std::ofstream out(file_, std::ios::app);
  out << record.dump() << '\n';
  out.flush();
  if (!out) throw std::runtime_error(fmt::format("cannot append to {}", file_.string()));
}

void MetricsWriter::save(torch::serialize::OutputArchive& archive) const {
  // A count of lines, not bytes: the timing fields make lengths differ between identical runs.
  archive.write("records", c10::IValue(records_));
}

void MetricsWriter::load(torch::serialize::InputArchive& archive) {
  c10::IValue records;
  archive.read("records", records);
  records_ = records.toInt();
  if (!is_main_process()) return;
  std::ifstream in(file_);
  std::string kept, line;
  for (std::int64_t n = 0; n < records_ && std::getline(in, line); ++n) kept += line + '\n';
  in.close();
  write_file_atomically(file_, kept);
}

void MetricsWriter::on_epoch_end(Trainer& trainer, const Metrics& metrics) {
  Json record{{"stage", trainer.state().stage}, {"epoch", trainer.state().epoch}, {"step", trainer.state().step}};
  for (const auto& [name, value] : metrics) {
    // JSON has no NaN or infinity; null keeps the line parseable.
    if (std::isfinite(value)) {
      record[name] = value;
    } else {
      record[name] = nullptr;
    }
  }
  write(record);
  ++records_;
}

ProgressReporter::ProgressReporter(std::ostream& out, bool interactive) : out_(out), interactive_(interactive) {}

void ProgressReporter::on_fit_start(Trainer&) {
  epoch_start_ = last_draw_ = std::chrono::steady_clock::now();
  batches_done_ = samples_done_ = 0;
  loss_sum_ = 0;
}

void ProgressReporter::on_batch_end(Trainer& trainer, double loss, std::int64_t batch_size) {
  if (!std::isfinite(loss)) return;  // a skipped step
  ++batches_done_;
  samples_done_ += batch_size;
  loss_sum_ += loss;
  if (!interactive_) return;
  const auto now = std::chrono::steady_clock::now();
  const std::int64_t total = trainer.batches_per_epoch();
  if (now - last_draw_ < std::chrono::milliseconds(100) && batches_done_ < total) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - epoch_start_).count();
  const double fraction = total > 0 ? static_cast<double>(trainer.state().position + 1) / total : 1.0;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(fraction * kWidth);
  const double rate = elapsed > 0 ? samples_done_ / elapsed : 0.0;
  const double eta = fraction > 0 && batches_done_ > 0 ? elapsed / batches_done_ * (total - trainer.state().position - 1) : 0.0;
  out_ << fmt::format("\r{} epoch {}/{} [{}{}] {:3.0f}% loss {:.4g} {:.0f} samples/s ETA {}\x1b[K", trainer.state().stage,
                      trainer.state().epoch + 1, trainer.config().epochs, std::string(filled, '#'), std::string(kWidth - filled, '.'),
                      100 * fraction, loss_sum_ / batches_done_, rate, format_duration(eta))
       << std::flush;
}

void ProgressReporter::on_epoch_end(Trainer& trainer, const Metrics& metrics) {
  std::string line = fmt::format("{} epoch {}/{}", trainer.state().stage, trainer.state().epoch, trainer.config().epochs);
  for (const auto& [name, value] : metrics) {
    // The line keeps to what a person follows; metrics.jsonl has everything.
    const bool is_loss = name.size() > 5 && name.compare(name.size() - 5, 5, "/loss") == 0;
    if (!is_loss && name != "lr") continue;
    line += fmt::format(" {} {:.5g}", name, value);
  }
  const auto seconds = metrics.count("epoch_seconds") ? metrics.at("epoch_seconds") : 0.0;
  const auto rate = metrics.count("train/samples_per_second") ? metrics.at("train/samples_per_second") : 0.0;
  line += fmt::format(" | {:.0f} samples/s {:.1f} s", rate, seconds);
  if (trainer.stop_requested()) line += " | " + trainer.stop_reason();
  out_ << (interactive_ ? "\r\x1b[K" : "") << line << '\n' << std::flush;
  epoch_start_ = last_draw_ = std::chrono::steady_clock::now();
  batches_done_ = samples_done_ = 0;
  loss_sum_ = 0;
}

CheckpointSaver::CheckpointSaver(std::filesystem::path directory, std::int64_t every_steps)
    : directory_(std::move(directory)), every_steps_(every_steps) {}

void CheckpointSaver::save(Trainer& trainer) {
  const auto latest = directory_ / kLatest;
  if (is_main_process()) {
    std::filesystem::create_directories(directory_);
    // latest -> previous is one atomic rename: at every moment one complete checkpoint exists.
    if (std::filesystem::exists(latest)) std::filesystem::rename(latest, directory_ / kPrevious);
  }
  // Every rank of a data-parallel run takes part; rank 0 writes.
  trainer.save_checkpoint(latest.string());
}

void CheckpointSaver::on_batch_end(Trainer& trainer, double, std::int64_t) {
  const auto& state = trainer.state();
  // Mid-epoch only: the epoch's end saves anyway.
  if (every_steps_ > 0 && state.step % every_steps_ == 0 && state.position < trainer.batches_per_epoch()) save(trainer);
}

void CheckpointSaver::on_epoch_end(Trainer& trainer, const Metrics&) { save(trainer); }

void CheckpointSaver::on_fit_end(Trainer& trainer) { save(trainer); }

bool is_terminal(int file_descriptor) { return ::isatty(file_descriptor) == 1; }

}  // namespace encore::core
