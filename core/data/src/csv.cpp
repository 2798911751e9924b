#include "encore/core/csv.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "encore/core/utf8.h"

namespace encore::core {

namespace {

[[noreturn]] void fail(const std::string& source, std::size_t row, std::size_t column, const std::string& message) {
  throw DataError(fmt::format("{}:{}:{}: {}", source, row, column, message));
}

/// Splits CSV text into records of fields, honouring double quotes ("" inside quotes is a quote).
class CsvScanner {
 public:
  /// Starts after the byte-order mark that spreadsheets put before the header, so that a quoted
  /// first name is still recognised as quoted.
  CsvScanner(const std::string& text, char delimiter, const std::string& source) : text_(text), delimiter_(delimiter), source_(source) {
    constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
    if (std::string_view(text_).substr(0, kByteOrderMark.size()) == kByteOrderMark) pos_ = kByteOrderMark.size();
  }

  /// Reads the next record into `fields`; false at the end of the text. Blank lines are skipped.
  bool next(std::vector<std::string>& fields) {
    fields.clear();
    while (pos_ < text_.size() && (text_[pos_] == '\n' || text_[pos_] == '\r')) {
      if (text_[pos_] == '\n') ++line_;
      ++pos_;
    }
    if (pos_ >= text_.size()) return false;
    record_line_ = line_;
    std::string field;
    bool quoted = false;
    for (;;) {
      if (pos_ >= text_.size()) {
        if (quoted) fail(source_, record_line_, fields.size() + 1, "quoted field is not closed before the end of the file");
        fields.push_back(std::move(field));
        return true;
      }
      const char c = text_[pos_++];
      if (quoted) {
        if (c == '"') {
          if (pos_ < text_.size() && text_[pos_] == '"') {
            field += '"';
            ++pos_;
          } else {
            quoted = false;
          }
        } else {
          if (c == '\n') ++line_;
          field += c;
        }
      } else if (c == '"' && field.empty()) {
        quoted = true;
      } else if (c == delimiter_) {
        fields.push_back(std::move(field));
        field.clear();
      } else if (c == '\n' || c == '\r') {
        if (c == '\r' && pos_ < text_.size() && text_[pos_] == '\n') ++pos_;
        ++line_;
        fields.push_back(std::move(field));
        return true;
      } else {
        field += c;
      }
    }
  }

  /// The 1-based line on which the last record started.
  std::size_t record_line() const { return record_line_; }

 private:
  const std::string& text_;
  char delimiter_;
  const std::string& source_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
  std::size_t record_line_ = 1;
};

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

// A feature cell as a float. A leading '+' (spreadsheets write it) is accepted; a number too small
// for a float reads as zero, as float arithmetic would round it; one too large for a float, or not
// a finite number, is an error at its row and column.
float parse_number(const std::string& cell, const std::string& source, std::size_t row, std::size_t column) {
  float value = 0;
  const char* begin = cell.data();
  const char* end = begin + cell.size();
  if (begin != end && *begin == '+') ++begin;
  const auto [ptr, error] = std::from_chars(begin, end, value);
  const bool out_of_range = error == std::errc::result_out_of_range;
  if (cell.empty() || ptr != end || (error != std::errc() && !out_of_range))
    fail(source, row, column, fmt::format("\"{}\" is not a number", cell));
  if (out_of_range) {
    // from_chars says the same for magnitudes below and above a float's range: tell them apart.
    const long double wide = std::strtold(cell.c_str(), nullptr);
    if (std::fabs(wide) >= 1) fail(source, row, column, fmt::format("\"{}\" is beyond the range of 32-bit floats (about 3.4e38)", cell));
    return std::signbit(wide) ? -0.0f : 0.0f;
  }
  if (!std::isfinite(value)) fail(source, row, column, fmt::format("\"{}\" is not a finite number", cell));
  return value;
}

// Names and labels go into the run's JSON files, which hold UTF-8 only: a file saved in another
// encoding is refused at its first such byte (the message shows the text before it, never the byte).
void check_utf8(const std::string& cell, const std::string& source, std::size_t row, std::size_t column) {
  const auto offset = first_non_utf8_byte(cell);
  if (!offset) return;
  fail(source, row, column,
       fmt::format("\"{}\" is followed by byte 0x{:02X}, which is not UTF-8 text: save the file as UTF-8 (this byte suggests Latin-1 "
                   "or Windows-1252)",
                   cell.substr(0, *offset), static_cast<unsigned char>(cell[*offset])));
}

// The header's column names, trimmed.
// Two columns of one name would be matched to the wrong values: refused, naming both positions.
std::vector<std::string> header_names(const std::vector<std::string>& fields, const std::string& source, std::size_t line) {
  std::vector<std::string> names;
  std::map<std::string, std::size_t> first_column;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    check_utf8(fields[i], source, line, i + 1);
    names.push_back(trim(fields[i]));
    const auto [found, inserted] = first_column.emplace(names.back(), i);
    if (!inserted)
      fail(source, line, i + 1, fmt::format("columns {} and {} are both named \"{}\"", found->second + 1, i + 1, names.back()));
  }
  return names;
}

// Which of the file's columns are read: the label's position, and the features' positions in the
// order the table stores them.
struct ColumnPlan {
  std::optional<std::size_t> label;
  std::vector<std::size_t> features;
};

ColumnPlan read_columns(const std::vector<std::string>& names, const CsvOptions& options, const std::string& source, std::size_t line,
                        CsvTable& table) {
  ColumnPlan plan;
  std::map<std::string, std::size_t> position;
  for (std::size_t i = 0; i < names.size(); ++i) position[names[i]] = i;
  if (const auto label = position.find(options.label_column); label != position.end()) {
    plan.label = label->second;
  } else if (options.label_required) {
    // A file written with another separator (spreadsheets in many locales use ';') reads as one column.
    std::string separator_hint;
    if (names.size() == 1) {
      for (const char other : {';', '\t', '|'}) {
        if (names.front().find(other) != std::string::npos) {
          separator_hint = fmt::format(
              "; the header reads as a single column: encore reads comma-separated values, and this file looks "
              "separated by '{}'",
              other == '\t' ? std::string("\\t") : std::string(1, other));
          break;
        }
      }
    }
    fail(source, line, 1,
         fmt::format("no label column \"{}\" in the header (columns: {}){}", options.label_column, fmt::join(names, ", "), separator_hint));
  }
  if (options.feature_columns.empty()) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (i != plan.label) plan.features.push_back(i);
    }
  } else {
    std::vector<std::string> missing;
    for (const auto& name : options.feature_columns) {
      const auto found = position.find(name);
      if (found == position.end() || found->second == plan.label) {
        missing.push_back(name);
      } else {
        plan.features.push_back(found->second);
      }
    }
    if (!missing.empty()) {
      fail(source, line, 1,
           fmt::format("{} of the {} expected feature columns {} missing: {}{}", missing.size(), options.feature_columns.size(),
                       missing.size() == 1 ? "is" : "are",
                       fmt::join(missing.begin(), missing.begin() + std::min<std::size_t>(missing.size(), 10), ", "),
                       missing.size() > 10 ? ", ..." : ""));
    }
    std::vector<bool> used(names.size(), false);
    for (const auto i : plan.features) used[i] = true;
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (!used[i] && i != plan.label) table.ignored_columns.push_back(names[i]);
    }
  }
  for (const auto i : plan.features) table.feature_names.push_back(names[i]);
  if (plan.features.empty()) fail(source, line, 1, "the header has no feature columns besides the label");
  return plan;
}

}  // namespace

CsvTable parse_csv(const std::string& text, const std::string& source, const CsvOptions& options) {
  CsvScanner scanner(text, options.delimiter, source);
  std::vector<std::string> fields;
  if (!scanner.next(fields)) fail(source, 1, 1, "file is empty; expected a header row");
  CsvTable table;
  const std::size_t header_line = scanner.record_line();
  const auto names = header_names(fields, source, header_line);
  const auto columns = read_columns(names, options, source, header_line, table);
  const std::size_t width = fields.size();
  while (scanner.next(fields)) {
    const std::size_t row = scanner.record_line();
    if (fields.size() != width) {
      fail(source, row, std::min(fields.size(), width) + 1, fmt::format("row has {} fields, the header has {}", fields.size(), width));
    }
    if (columns.label) {
      const std::string label = trim(fields[*columns.label]);
      if (label.empty()) fail(source, row, *columns.label + 1, "label is empty");
      check_utf8(label, source, row, *columns.label + 1);
      table.labels.push_back(label);
    }
    for (const auto i : columns.features) table.features.push_back(parse_number(trim(fields[i]), source, row, i + 1));
    ++table.rows;
  }
  if (table.rows == 0) fail(source, header_line + 1, 1, "file has a header but no data rows");
  return table;
}

CsvTable read_csv_file(const std::string& file, const CsvOptions& options) {
  return parse_csv(read_file(file, options.max_bytes), file, options);
}

std::string ignored_columns_note(const std::string& file, const std::vector<std::string>& columns) {
  constexpr std::size_t kShown = 10;
  return fmt::format("{}: ignoring {} column{} that the model does not use: {}{}", file, columns.size(), columns.size() == 1 ? "" : "s",
                     fmt::join(columns.begin(), columns.begin() + std::min(columns.size(), kShown), ", "),
                     columns.size() > kShown ? ", ..." : "");
}

std::string csv_field(const std::string& text, char delimiter) {
  if (text.find_first_of(std::string{delimiter, '"', '\n', '\r'}) == std::string::npos) return text;
  std::string out = "\"";
  for (const char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace encore::core
