#pragma once
/// A run directory: the names of the files a run leaves, who writes them (rank 0 of a data-parallel
/// run: on the other ranks every write does nothing), and how (atomically, so a reader sees the old
/// file or the whole new one).

#include <filesystem>
#include <memory>
#include <string>

#include "encore/core/files.h"
#include "encore/core/json.h"

namespace encore::finetune {

/// A run directory and the names of its files.
class RunDirectory {
 public:
  /// The resolved config.
  static constexpr const char* kConfig = "config.json";
  /// The split's row indices and seed.
  static constexpr const char* kSplit = "split.json";
  /// One JSON line per epoch of every stage.
  static constexpr const char* kMetrics = "metrics.jsonl";
  /// Sealed checkpoints.
  static constexpr const char* kCheckpoints = "checkpoints";
  /// The pretrained autoencoder.
  static constexpr const char* kPretrained = "pretrained.pt";
  /// What loading the pretrained encoder found.
  static constexpr const char* kLoadReport = "load_report.json";
  /// The fine-tuned classifier with its config and schema.
  static constexpr const char* kModel = "model.pt";
  /// Final metrics.
  static constexpr const char* kSummary = "summary.json";
  /// Held-out examples and their reconstructions.
  static constexpr const char* kReconstructions = "reconstructions.png";
  /// First-layer filters.
  static constexpr const char* kFilters = "filters.png";
  /// Image files left out as unreadable, one "FILE: REASON" per line (data.unreadable_images "skip").
  static constexpr const char* kSkippedImages = "skipped_images.txt";
  /// The test confusion matrix.
  static constexpr const char* kConfusion = "confusion.png";
  /// The page about the run (report.h).
  static constexpr const char* kReport = "report.html";
  /// Held by the process working in the directory (lock()).
  static constexpr const char* kLock = "run.lock";

  /// `writes`: this process writes the files (is_main_process()).
  RunDirectory(std::filesystem::path path, bool writes);

  /// The directory.
  const std::filesystem::path& path() const { return path_; }
  /// Whether this process writes into it (rank 0 of a run that writes files).
  bool writes() const { return writes_; }
  /// The path of one of the files above.
  std::filesystem::path file(const char* name) const { return path_ / name; }

  /// Creates the directory for a new run: it may not exist yet, or exist empty (a non-empty one is
  /// refused, so one run never overwrites another).
  void create() const;
  /// Writes JSON text (indented by `indent`, compact when negative) and a newline.
  void write_json(const char* name, const core::Json& json, int indent = 2) const;
  /// Writes bytes someone else serialised (a LibTorch archive).
  void write_bytes(const char* name, const std::string& bytes) const;
  /// Removes a file a restarted run writes again; nothing when it does not exist.
  void remove(const char* name) const;
  /// Takes the directory for this process until the RunDirectory goes: a second run (a --resume
  /// while the first still runs) is refused naming the holder's PID.
  void lock();

 private:
  std::filesystem::path path_;
  bool writes_;
  std::shared_ptr<core::DirectoryLock> lock_;
};

}  // namespace encore::finetune
