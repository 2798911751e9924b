#pragma once
/// report.html: one self-contained page about a run, built from the files the run left.

#include <filesystem>

namespace encore::finetune {

/// Writes `run_dir`/report.html (atomically) from config.json, summary.json, metrics.jsonl,
/// split.json, load_report.json and the run's pictures: the resolved config, the data, loss,
/// metric and learning-rate curves per stage (inline SVG), per-layer pretraining diagnostics,
/// reconstructions and filters, the confusion matrix and per-class table with class names, the
/// load report and the timings. Pictures are embedded, so the file opens offline on its own. Parts
/// a run did not produce (no test set, an unfinished run) are said to be absent. A directory
/// without config.json is not a run: a UsageError naming it. Returns the file written.
std::filesystem::path write_report(const std::filesystem::path& run_dir);

}  // namespace encore::finetune
