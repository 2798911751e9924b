#pragma once
/// CSV data: a header row, numeric feature columns and one named label column. Free of LibTorch so
/// that it can be fuzzed and tested on its own.

#include <cstdint>
#include <string>
#include <vector>

namespace encore::core {

/// A parsed CSV file: `features` is row-major, `rows x feature_names.size()`; `labels` holds the
/// label column's text, one per row.
struct CsvTable {
  /// The feature columns' header names, in the order of `features`.
  std::vector<std::string> feature_names;
  /// Row-major features: `rows` rows of feature_names.size() values.
  std::vector<float> features;
  /// Each row's label text (empty without a label column).
  std::vector<std::string> labels;
  /// Data rows read.
  std::size_t rows = 0;
  /// Columns present in the file but not read (neither a requested feature nor the label).
  std::vector<std::string> ignored_columns;
};

/// How a CSV file is read.
struct CsvOptions {
  /// The header name of the label column.
  std::string label_column = "label";
  /// When false, a file without the label column is read as features only (for prediction).
  bool label_required = true;
  /// When not empty, the feature columns to read, found by header name and read in this order (a
  /// file's columns may come in any order): a missing one is an error naming it, and other columns
  /// are skipped and listed in CsvTable::ignored_columns. When empty, every column but the label.
  std::vector<std::string> feature_columns;
  /// The field separator.
  char delimiter = ',';
  /// Files larger than this are refused before reading.
  std::uint64_t max_bytes = std::uint64_t{4} << 30;
};

/// Parses CSV text. Ragged rows, empty or non-numeric feature cells, `nan`/`inf` values and a missing
/// label column are errors naming `source` and the row:column (1-based, the header is row 1).
CsvTable parse_csv(const std::string& text, const std::string& source, const CsvOptions& options = {});

/// Reads and parses a CSV file.
CsvTable read_csv_file(const std::string& file, const CsvOptions& options = {});

/// The one line that tells the user which columns of `file` were skipped.
std::string ignored_columns_note(const std::string& file, const std::vector<std::string>& columns);

/// A field as RFC 4180 writes it: in double quotes, with its quotes doubled, when it holds the
/// delimiter, a quote or a line break; as it is otherwise.
std::string csv_field(const std::string& text, char delimiter = ',');

}  // namespace encore::core
