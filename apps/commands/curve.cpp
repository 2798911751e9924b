#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "commands/commands.h"
#include "encore/core/errors.h"
#include "encore/core/runtime.h"
#include "encore/finetune/curve.h"
#include "encore/finetune/experiment.h"

namespace encore::apps {

int curve_command(const CurveArgs& args, std::ostream& out, std::ostream& err) {
  const auto components = finetune::builtin_components();
  finetune::CurveOptions options;
  options.budgets = finetune::parse_label_budgets(args.labels);
  options.seeds = args.seeds;
  options.more_configs = args.more_configs;
  const auto config = finetune::load_experiment(args.config.config_file, args.config.overrides, components);
  options.output_dir =
      args.output_dir.empty() ? std::filesystem::path("runs") / config.name / "curve" : std::filesystem::path(args.output_dir);
  options.log = &err;
  core::watch_for_interrupts();
  core::Json curve;
  try {
    curve = finetune::run_curve(args.config.config_file, args.config.overrides, components, options);
  } catch (const core::Interrupted& e) {
    err << fmt::format(
        "encore: interrupted by {}; run the same command again to continue: finished cells are reused, the "
        "interrupted one resumes from its checkpoint\n",
        e.what());
    return 128 + e.signal_number();
  }
  out << fmt::format("{}: test accuracy (%), mean +- sd over seeds 1-{}\n", curve["config"].get<std::string>(), args.seeds);
  // Each column as wide as its line's name, and at least a "99.99 +- 9.99" and a gap.
  std::vector<std::size_t> widths;
  for (const auto& variant : curve["variants"]) widths.push_back(std::max<std::size_t>(18, variant["name"].get<std::string>().size() + 3));
  out << fmt::format("{:<18}", "labels per class");
  for (std::size_t v = 0; v < widths.size(); ++v) out << fmt::format("{:>{}}", curve["variants"][v]["name"].get<std::string>(), widths[v]);
  out << '\n';
  for (std::size_t b = 0; b < curve["labels_per_class"].size(); ++b) {
    out << fmt::format("{:<18}", curve["labels_per_class"][b].get<std::string>());
    for (std::size_t v = 0; v < widths.size(); ++v) {
      const auto& point = curve["variants"][v]["points"][b];
      out << fmt::format("{:>{}}", fmt::format("{:.2f} +- {:.2f}", 100 * point["mean"].get<double>(), 100 * point["sd"].get<double>()),
                         widths[v]);
    }
    out << '\n';
  }
  err << fmt::format("wrote {}, curve.csv and curve.png\n", (options.output_dir / "curve.json").string());
  return 0;
}

}  // namespace encore::apps
