#include "encore/finetune/curve.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "encore/core/config.h"
#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "encore/core/image.h"
#include "encore/finetune/experiment.h"

namespace encore::finetune {

namespace fs = std::filesystem;
using core::Json;

std::vector<LabelBudget> parse_label_budgets(const std::string& text) {
  std::vector<LabelBudget> budgets;
  std::set<std::string> seen;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = std::min(text.find(',', start), text.size());
    const auto entry = text.substr(start, end - start);
    const auto bad = [&](const std::string& why) { return core::UsageError(fmt::format("--labels: \"{}\" {}", entry, why)); };
    if (!seen.insert(entry).second) throw bad("is given twice");
    if (entry == "all") {
      budgets.emplace_back(std::nullopt);
    } else {
      if (entry.empty() || entry.size() > 9 || !std::all_of(entry.begin(), entry.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        throw bad("is neither a number of labels per class nor \"all\"");
      }
      const auto value = std::stoll(entry);
      if (value < 1) throw bad("must be at least 1");
      budgets.emplace_back(value);
    }
    start = end + 1;
  }
  return budgets;
}

std::vector<CurveVariant> curve_variants(const std::string& config_file, const Json& resolved) {
  const bool pretrains = resolved["pretrain"]["mode"] != "none";
  const auto& phases = resolved["finetune"]["phases"];
  const bool semi = std::any_of(phases.begin(), phases.end(), [](const Json& phase) { return !phase["semi_supervised"].is_null(); });
  std::vector<CurveVariant> variants;
  variants.push_back({semi        ? "semi-supervised"
                      : pretrains ? "fine-tuned"
                                  : "from scratch",
                      semi        ? "semi_supervised"
                      : pretrains ? "fine_tuned"
                                  : "from_scratch",
                      config_file,
                      {},
                      pretrains});
  if (!pretrains) return variants;
  variants.push_back({"from scratch", "from_scratch", config_file, {"/pretrain/mode=\"none\""}, false});
  Json probe = phases[0];
  probe["name"] = "probe";
  probe["trainable"] = resolved["finetune"]["hidden"].is_null() ? Json{"head"} : Json{"hidden", "head"};
  probe["unfreeze_every_epochs"] = 0;
  probe["semi_supervised"] = nullptr;
  variants.push_back({"frozen-encoder probe", "probe", config_file, {"/finetune/phases=" + Json::array({probe}).dump()}, true});
  return variants;
}

namespace {

// FNV-1a: a name for a pretraining config that is the same on every machine and run.
std::string content_hash(const std::string& text) {
  std::uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return fmt::format("{:016x}", hash);
}

std::string budget_name(const LabelBudget& budget) { return budget ? std::to_string(*budget) : "all"; }

double mean_of(const std::vector<double>& xs) { return std::accumulate(xs.begin(), xs.end(), 0.0) / static_cast<double>(xs.size()); }

double sd_of(const std::vector<double>& xs) {
  if (xs.size() < 2) return 0.0;
  const double m = mean_of(xs);
  double squares = 0;
  for (double x : xs) squares += (x - m) * (x - m);
  return std::sqrt(squares / static_cast<double>(xs.size() - 1));
}

// What a cell needed: a whole run, the rest of an interrupted one, or nothing (finished before).
enum class CellOutcome { kRan, kResumed, kReused };

std::string outcome_name(CellOutcome outcome) {
  return outcome == CellOutcome::kRan ? "ran" : outcome == CellOutcome::kResumed ? "resumed" : "reused";
}

// Time spent by the cells of one kind that ran here, for the estimate of what is left.
struct CellTimes {
  double seconds = 0;
  int count = 0;
  // Before a cell of this kind has run, cells of the other kind stand in for it.
  double estimate(int remaining, const CellTimes& other) const {
    const auto& basis = count > 0 ? *this : other;
    return basis.count == 0 ? 0.0 : basis.seconds / basis.count * remaining;
  }
};

std::string duration(double seconds) {
  if (seconds < 90) return fmt::format("{:.0f} s", seconds);
  if (seconds < 5400) return fmt::format("{:.0f} min", seconds / 60);
  return fmt::format("{:.1f} h", seconds / 3600);
}

class CurveRunner {
 public:
  CurveRunner(const std::vector<std::string>& overrides, const Components& components, const CurveOptions& options)
      : overrides_(overrides), components_(components), options_(options) {}

  // The config of a cell: the file, the curve's overrides, then the cell's.
  ExperimentConfig config(const std::string& config_file, const std::vector<std::string>& extra) const {
    auto overrides = overrides_;
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    return load_experiment(config_file, overrides, components_);
  }

  // Runs (or reuses) one cell; returns its summary and what that took.
  std::pair<Json, CellOutcome> cell(const ExperimentConfig& config, const std::string& config_file, const fs::path& dir,
                                    const std::string& log_name, std::optional<fs::path> pretrained) {
    if (fs::exists(dir / RunDirectory::kSummary)) {
      if (core::load_json_file((dir / RunDirectory::kConfig).string()) != to_json(config, components_)) {
        throw core::UsageError(
            fmt::format("{} holds a finished run of another config (the config or a --set changed): remove it, "
                        "or give another --output-dir",
                        dir.string()));
      }
      return {core::load_json_file((dir / RunDirectory::kSummary).string()), CellOutcome::kReused};
    }
    fs::create_directories(options_.output_dir / "logs");
    std::ofstream log(options_.output_dir / "logs" / (log_name + ".log"), std::ios::app);
    RunOptions run;
    run.run_dir = dir;
    run.resume = fs::exists(dir) && !fs::is_empty(dir);
    run.log = &log;
    run.config_source = config_file;
    run.pretrained_file = std::move(pretrained);
    const auto summary = run_experiment(config, components_, run);
    return {summary, run.resume ? CellOutcome::kResumed : CellOutcome::kRan};
  }

 private:
  const std::vector<std::string>& overrides_;
  const Components& components_;
  const CurveOptions& options_;
};

// The curve's lines: the first config's variants, then one line per further config, named as it
// is; returns them and the first config's name.
std::pair<std::vector<CurveVariant>, std::string> curve_lines(const std::string& config_file, const CurveRunner& runner,
                                                              const Components& components, const CurveOptions& options) {
  std::vector<CurveVariant> variants;
  std::string curve_name;
  std::vector<std::string> files{config_file};
  files.insert(files.end(), options.more_configs.begin(), options.more_configs.end());
  for (std::size_t f = 0; f < files.size(); ++f) {
    const auto& file = files[f];
    const auto config = runner.config(file, {});
    if (!config.finetune) {
      throw core::ConfigError("/finetune", fmt::format("is missing from {}: the curve fine-tunes, and plots test accuracy", file));
    }
    auto lines = curve_variants(file, to_json(config, components));
    if (f == 0) {
      curve_name = config.name;
    } else {
      lines.resize(1);
      lines[0].name = lines[0].directory = config.name;
    }
    for (auto& line : lines) {
      for (const auto& existing : variants) {
        if (existing.directory == line.directory) {
          throw core::UsageError(fmt::format("two lines of the curve would be named \"{}\" ({} and {}): give configs of other names",
                                             line.directory, existing.config_file, line.config_file));
        }
      }
      variants.push_back(std::move(line));
    }
  }
  return {variants, curve_name};
}

// curve.json's contents from every cell's accuracy and labelled rows per class
// ([line][budget][seed]); writes curve.json, curve.csv and curve.png.
Json write_curve_files(const std::string& curve_name, const std::vector<CurveVariant>& variants, const CurveOptions& options,
                       const std::vector<std::vector<std::vector<double>>>& accuracies,
                       const std::vector<std::vector<std::vector<double>>>& per_class) {
  Json curve{{"config", curve_name}, {"seeds", options.seeds}, {"labels_per_class", Json::array()}, {"variants", Json::array()}};
  for (const auto& budget : options.budgets) curve["labels_per_class"].push_back(budget_name(budget));
  std::string csv = "variant,labels_per_class,labelled_per_class,seed,test_accuracy\n";
  for (std::size_t v = 0; v < variants.size(); ++v) {
    Json points = Json::array();
    for (std::size_t b = 0; b < options.budgets.size(); ++b) {
      const auto& xs = accuracies[v][b];
      points.push_back({{"labels_per_class", budget_name(options.budgets[b])},
                        {"labelled_per_class", mean_of(per_class[v][b])},
                        {"accuracies", xs},
                        {"mean", mean_of(xs)},
                        {"sd", sd_of(xs)}});
      for (std::size_t s = 0; s < xs.size(); ++s) {
        csv += fmt::format("{},{},{},{},{}\n", variants[v].name, budget_name(options.budgets[b]), per_class[v][b][s], s + 1, xs[s]);
      }
    }
    curve["variants"].push_back({{"name", variants[v].name}, {"directory", variants[v].directory}, {"points", points}});
  }
  core::write_file_atomically(options.output_dir / "curve.json", curve.dump(2) + "\n");
  core::write_file_atomically(options.output_dir / "curve.csv", csv);
  write_curve_png(options.output_dir / "curve.png", curve);
  return curve;
}

}  // namespace

namespace {

// Each seed's pretraining cells: one per distinct pretraining config among the lines that
// fine-tune one, and which cell each line uses.
struct PretrainingPlan {
  struct Cell {
    ExperimentConfig config;
    std::string config_file, key;
  };
  /// cells[seed - 1]: that seed's pretraining cells.
  std::vector<std::vector<Cell>> cells;
  /// cell_of[seed - 1][variant]: the index of the variant's cell (lines that pretrain).
  std::vector<std::vector<std::size_t>> cell_of;
};

PretrainingPlan plan_pretrainings(const std::vector<CurveVariant>& variants, CurveRunner& runner, const Components& components, int seeds) {
  PretrainingPlan plan;
  plan.cells.resize(static_cast<std::size_t>(seeds));
  plan.cell_of.assign(static_cast<std::size_t>(seeds), std::vector<std::size_t>(variants.size()));
  for (int seed = 1; seed <= seeds; ++seed) {
    auto& cells = plan.cells[static_cast<std::size_t>(seed - 1)];
    for (std::size_t v = 0; v < variants.size(); ++v) {
      if (!variants[v].uses_pretraining) continue;
      auto config = runner.config(variants[v].config_file, {fmt::format("/seed={}", seed), "/finetune=null",
                                                            "/data/labelled_per_class=null", "/name=\"pretraining\""});
      const auto key = content_hash(to_json(config, components).dump());
      auto found = std::find_if(cells.begin(), cells.end(), [&key](const PretrainingPlan::Cell& p) { return p.key == key; });
      if (found == cells.end()) found = cells.insert(cells.end(), PretrainingPlan::Cell{std::move(config), variants[v].config_file, key});
      plan.cell_of[static_cast<std::size_t>(seed - 1)][v] = static_cast<std::size_t>(found - cells.begin());
    }
  }
  return plan;
}

// The progress line of each cell, with the time left estimated from the cells run so far.
class CurveProgress {
 public:
  CurveProgress(std::ostream& log, int pretrainings, int finetunings)
      : log_(log), pretrainings_left_(pretrainings), finetunings_left_(finetunings), total_(pretrainings + finetunings) {}

  /// Reports a cell that started at `start`: a pretraining or a fine-tuning, `what` it was, how
  /// it ended and its result.
  void cell_done(bool pretraining, std::chrono::steady_clock::time_point start, const std::string& what, CellOutcome how,
                 const std::string& result) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    auto& times = pretraining ? pretraining_times_ : finetuning_times_;
    --(pretraining ? pretrainings_left_ : finetunings_left_);
    if (how != CellOutcome::kReused) times.seconds += seconds, ++times.count;
    ++done_;
    const double left = pretraining_times_.estimate(pretrainings_left_, finetuning_times_) +
                        finetuning_times_.estimate(finetunings_left_, pretraining_times_);
    log_ << fmt::format("curve [{}/{}] {}: {}{}{}\n", done_, total_, what, result,
                        how == CellOutcome::kReused ? "reused a finished run" : outcome_name(how) + " in " + duration(seconds),
                        done_ == total_ || pretraining_times_.count + finetuning_times_.count == 0
                            ? ""
                            : fmt::format("; about {} left", duration(left)))
         << std::flush;
  }

 private:
  std::ostream& log_;
  int pretrainings_left_, finetunings_left_, total_, done_ = 0;
  CellTimes pretraining_times_, finetuning_times_;
};

}  // namespace

Json run_curve(const std::string& config_file, const std::vector<std::string>& overrides, const Components& components,
               const CurveOptions& options) {
  CurveRunner runner(overrides, components, options);
  const auto lines = curve_lines(config_file, runner, components, options);
  const auto& variants = lines.first;
  const auto plan = plan_pretrainings(variants, runner, components, options.seeds);
  int pretrainings = 0;
  for (const auto& cells : plan.cells) pretrainings += static_cast<int>(cells.size());
  CurveProgress progress(*options.log, pretrainings, options.seeds * static_cast<int>(options.budgets.size() * variants.size()));

  // accuracies[variant][budget][seed], per_class[variant][budget][seed] (labelled rows per class).
  const auto n_budgets = options.budgets.size();
  std::vector<std::vector<std::vector<double>>> accuracies(variants.size(), std::vector<std::vector<double>>(n_budgets));
  std::vector<std::vector<std::vector<double>>> per_class(variants.size(), std::vector<std::vector<double>>(n_budgets));
  for (int seed = 1; seed <= options.seeds; ++seed) {
    const auto seed_override = fmt::format("/seed={}", seed);
    std::vector<fs::path> pretrained;
    for (const auto& cell : plan.cells[static_cast<std::size_t>(seed - 1)]) {
      const auto dir = options.output_dir / "pretrain" / cell.key;
      const auto start = std::chrono::steady_clock::now();
      const auto how = runner.cell(cell.config, cell.config_file, dir, "pretrain-" + cell.key, std::nullopt).second;
      progress.cell_done(true, start, fmt::format("pretraining of {}, seed {}", cell.config_file, seed), how, "");
      pretrained.push_back(dir / RunDirectory::kPretrained);
    }
    for (std::size_t b = 0; b < n_budgets; ++b) {
      const auto& budget = options.budgets[b];
      for (std::size_t v = 0; v < variants.size(); ++v) {
        const auto& variant = variants[v];
        std::vector<std::string> extra{seed_override, "/data/labelled_per_class=" + (budget ? std::to_string(*budget) : "null")};
        extra.insert(extra.end(), variant.overrides.begin(), variant.overrides.end());
        const auto dir = options.output_dir / variant.directory / ("labels-" + budget_name(budget)) / fmt::format("seed-{}", seed);
        const auto start = std::chrono::steady_clock::now();
        std::optional<fs::path> from;
        if (variant.uses_pretraining) from = pretrained[plan.cell_of[static_cast<std::size_t>(seed - 1)][v]];
        const auto [summary, how] = runner.cell(runner.config(variant.config_file, extra), variant.config_file, dir,
                                                fmt::format("{}-labels-{}-seed-{}", variant.directory, budget_name(budget), seed), from);
        if (!summary.contains("test")) {
          throw core::ConfigError("/data",
                                  fmt::format("{}: the data has no test set, and the curve plots test accuracy", variant.config_file));
        }
        const double accuracy = summary["test"]["accuracy"].get<double>();
        const auto split = core::load_json_file((dir / RunDirectory::kSplit).string());
        accuracies[v][b].push_back(accuracy);
        per_class[v][b].push_back(split["sizes"]["labelled"].get<double>() / static_cast<double>(summary["data"]["classes"].size()));
        progress.cell_done(false, start, fmt::format("{}, {} labels per class, seed {}", variant.name, budget_name(budget), seed), how,
                           fmt::format("test accuracy {:.2f}%, ", 100 * accuracy));
      }
    }
  }

  return write_curve_files(lines.second, variants, options, accuracies, per_class);
}

namespace {

constexpr int kPlotLeft = 90, kPlotTop = 60, kPlotWidth = 640, kPlotHeight = 460, kPlotBottom = 80, kText = 17, kTitle = 20, kSwatch = 34;

// Where values fall on the plot: labels per class on a log axis, accuracy in % rounded out to
// the grid step.
struct CurveAxes {
  double x_low = 1e300, x_high = 0, y_low = 100, y_high = 0, step = 2;

  explicit CurveAxes(const Json& curve) {
    for (const auto& variant : curve["variants"]) {
      for (const auto& point : variant["points"]) {
        const double x = point["labelled_per_class"].get<double>();
        const double mean = 100 * point["mean"].get<double>(), sd = 100 * point["sd"].get<double>();
        x_low = std::min(x_low, x), x_high = std::max(x_high, x);
        y_low = std::min(y_low, mean - sd), y_high = std::max(y_high, mean + sd);
      }
    }
    step = y_high - y_low > 40 ? 10 : y_high - y_low > 12 ? 5 : 2;
    y_low = std::max(0.0, std::floor(y_low / step) * step), y_high = std::min(100.0, std::ceil(y_high / step) * step);
    if (y_high <= y_low) y_high = y_low + step;
  }
  // One budget: a point in the middle; more: 5% of the width free at each end.
  double px(double x) const {
    if (x_high == x_low) return kPlotLeft + kPlotWidth / 2.0;
    const double log_low = std::log10(x_low), log_span = std::max(std::log10(x_high) - log_low, 1e-9);
    return kPlotLeft + kPlotWidth * (0.05 + 0.9 * (std::log10(x) - log_low) / log_span);
  }
  double py(double percent) const { return kPlotTop + kPlotHeight * (1 - (percent - y_low) / (y_high - y_low)); }
};

const core::Colour kBlack{0, 0, 0};

// The grid, the ticks, the axes, their names and the title.
void draw_curve_axes(torch::Tensor& image, const CurveAxes& axes, const Json& curve) {
  const core::Colour grey{150, 150, 150}, light{225, 225, 225};
  for (double y = axes.y_low; y <= axes.y_high + 1e-9; y += axes.step) {
    const auto row = static_cast<std::int64_t>(std::lround(axes.py(y)));
    core::fill_rectangle(image, row, kPlotLeft, 1, kPlotWidth, light);
    const auto tick = fmt::format("{:g}", y);
    core::draw_text(image, tick, kPlotLeft - 8 - core::text_width(tick, kText), static_cast<int>(row) - kText / 2, kText, kBlack);
  }
  for (const auto& point : curve["variants"][0]["points"]) {
    const auto column = static_cast<std::int64_t>(std::lround(axes.px(point["labelled_per_class"].get<double>())));
    core::fill_rectangle(image, kPlotTop + kPlotHeight, column, 6, 1, grey);
    const auto name = point["labels_per_class"].get<std::string>();
    const auto tick = name == "all" ? fmt::format("all ({:.0f})", point["labelled_per_class"].get<double>()) : name;
    core::draw_text(image, tick, static_cast<int>(column) - core::text_width(tick, kText) / 2, kPlotTop + kPlotHeight + 10, kText, kBlack);
  }
  core::fill_rectangle(image, kPlotTop, kPlotLeft - 1, kPlotHeight + 1, 1, grey);
  core::fill_rectangle(image, kPlotTop + kPlotHeight, kPlotLeft - 1, 1, kPlotWidth + 1, grey);
  const std::string x_name = "labels per class (log scale)", y_name = "test accuracy (%)";
  core::draw_text(image, x_name, kPlotLeft + (kPlotWidth - core::text_width(x_name, kText)) / 2, kPlotTop + kPlotHeight + 40, kText,
                  kBlack);
  core::draw_text(image, y_name, 20, kPlotTop + (kPlotHeight - core::text_width(y_name, kText)) / 2, kText, kBlack, /*vertical=*/true);
  core::draw_text(image,
                  fmt::format("{}: test accuracy, mean of {} seeds, +- one standard deviation", curve["config"].get<std::string>(),
                              curve["seeds"].get<int>()),
                  kPlotLeft, 20, kTitle, kBlack);
}

// Blends a colour over a float canvas [H, W, 3]: a column's rows top..bottom, or a square dot.
struct CurveCanvas {
  torch::Tensor pixels;

  void blend(std::int64_t top, std::int64_t bottom, std::int64_t column, const core::Colour& colour, double alpha) {
    if (bottom < top) std::swap(top, bottom);
    auto span = pixels.narrow(0, top, bottom - top + 1).narrow(1, column, 1);
    for (int c = 0; c < 3; ++c) span.select(2, c).mul_(1 - alpha).add_(alpha * colour[static_cast<std::size_t>(c)]);
  }
  void dot(double x, double y, int size, const core::Colour& colour) {
    const auto top = static_cast<std::int64_t>(std::lround(y)) - size / 2, left = static_cast<std::int64_t>(std::lround(x)) - size / 2;
    auto area = pixels.narrow(0, top, size).narrow(1, left, size);
    for (int c = 0; c < 3; ++c) area.select(2, c).fill_(colour[static_cast<std::size_t>(c)]);
  }
};

// One line: its mean joined across budgets with a band of +- one sd, or an error bar for one budget.
void draw_curve_line(CurveCanvas& canvas, const CurveAxes& axes, const Json& points, const core::Colour& colour) {
  std::vector<double> xs, means, lows, highs;
  for (const auto& point : points) {
    const double mean = 100 * point["mean"].get<double>(), sd = 100 * point["sd"].get<double>();
    xs.push_back(axes.px(point["labelled_per_class"].get<double>()));
    means.push_back(axes.py(mean)), lows.push_back(axes.py(std::max(axes.y_low, mean - sd)));
    highs.push_back(axes.py(std::min(axes.y_high, mean + sd)));
  }
  // Budgets in the order given: the segments join them by labels per class.
  std::vector<std::size_t> order(xs.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&xs](std::size_t a, std::size_t b) { return xs[a] < xs[b]; });
  for (std::size_t k = 0; k + 1 < order.size(); ++k) {
    const auto a = order[k], b = order[k + 1];
    const auto first = static_cast<std::int64_t>(std::lround(xs[a])), last = static_cast<std::int64_t>(std::lround(xs[b]));
    // A point's column belongs to the segment on its left, so no band column is blended twice.
    for (auto column = k == 0 ? first : first + 1; column <= last; ++column) {
      const double t = last == first ? 0 : static_cast<double>(column - first) / static_cast<double>(last - first);
      canvas.blend(std::lround(lows[a] + t * (lows[b] - lows[a])), std::lround(highs[a] + t * (highs[b] - highs[a])), column, colour, 0.18);
    }
    const double length = std::hypot(xs[b] - xs[a], means[b] - means[a]);
    for (double s = 0; s <= length; s += 0.5)
      canvas.dot(xs[a] + (xs[b] - xs[a]) * s / length, means[a] + (means[b] - means[a]) * s / length, 3, colour);
  }
  // A line of one point has no band to draw: its +- one sd is an error bar with caps.
  if (order.size() == 1) {
    for (int offset = -1; offset <= 1; ++offset)
      canvas.blend(std::lround(lows[0]), std::lround(highs[0]), std::lround(xs[0]) + offset, colour, 1.0);
    for (int offset = -7; offset <= 7; ++offset) {
      canvas.blend(std::lround(lows[0]), std::lround(lows[0]), std::lround(xs[0]) + offset, colour, 1.0);
      canvas.blend(std::lround(highs[0]), std::lround(highs[0]), std::lround(xs[0]) + offset, colour, 1.0);
    }
  }
  for (std::size_t k = 0; k < xs.size(); ++k) canvas.dot(xs[k], means[k], 9, colour);
}

}  // namespace

void write_curve_png(const fs::path& file, const Json& curve) {
  // The legend is as wide as its longest name (config names can be long).
  int legend = 260;
  for (const auto& variant : curve["variants"]) {
    legend = std::max(legend, 30 + kSwatch + core::text_width(variant["name"].get<std::string>(), kText) + 20);
  }
  auto image = torch::full({kPlotTop + kPlotHeight + kPlotBottom, kPlotLeft + kPlotWidth + legend, 3}, 255, torch::kUInt8);
  const CurveAxes axes(curve);
  draw_curve_axes(image, axes, curve);
  CurveCanvas canvas{image.to(torch::kFloat32)};
  for (std::size_t v = 0; v < curve["variants"].size(); ++v) {
    draw_curve_line(canvas, axes, curve["variants"][v]["points"], core::palette_colour(static_cast<std::int64_t>(v)));
  }
  image = canvas.pixels.round().clamp(0, 255).to(torch::kUInt8);
  const int legend_x = kPlotLeft + kPlotWidth + 30;
  for (std::size_t v = 0; v < curve["variants"].size(); ++v) {
    const int y = kPlotTop + 10 + static_cast<int>(v) * 28;
    core::fill_rectangle(image, y + 6, legend_x, 4, 26, core::palette_colour(static_cast<std::int64_t>(v)));
    core::draw_text(image, curve["variants"][v]["name"].get<std::string>(), legend_x + kSwatch, y - 1, kText, kBlack);
  }
  core::write_png(file, image);
}

}  // namespace encore::finetune
