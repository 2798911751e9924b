#include "encore/core/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"

namespace encore::core {

namespace {

std::string escape_pointer_token(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string display_path(const std::string& path) { return path.empty() ? "/" : path; }

std::string type_name(const Json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number_float()) return "a number";
  if (v.is_boolean()) return "a boolean";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += separator;
    out += items[i];
  }
  return out;
}

}  // namespace

ConfigError::ConfigError(const std::string& path, const std::string& message)
    : ConfigError(path, "config error at " + display_path(path) + ": " + message, 0) {}

ConfigError::ConfigError(std::string path, const std::string& full_message, int)
    : std::runtime_error(full_message), path_(std::move(path)) {}

ConfigError ConfigError::at_line(const std::string& file, std::size_t line, std::size_t column, const std::string& message) {
  return ConfigError("", fmt::format("config error in {} at line {}, column {}: {}", file, line, column, message), 0);
}

ConfigError ConfigError::in_file(const std::string& file, const std::string& message) {
  return ConfigError("", fmt::format("config error in {}: {}", file, message), 0);
}

std::string lower_case(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::optional<std::string> nearest_name(const std::string& name, const std::vector<std::string>& known) {
  std::optional<std::string> best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  // Letter case is no distance: "CSV", "Adam" and "ReLU" are near misses of "csv", "adam", "relu".
  const auto folded = lower_case(name);
  for (const auto& candidate : known) {
    const std::size_t d = edit_distance(folded, lower_case(candidate));
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  // A typo changes a few characters; anything further is a different word, not a near miss.
  const std::size_t tolerance = std::max<std::size_t>(2, name.size() / 3);
  if (best && best_distance <= tolerance) return best;
  return std::nullopt;
}

JsonReader::JsonReader(const Json& value, std::string path) : value_(&value), path_(std::move(path)) {}

std::string JsonReader::path_of(const std::string& key) const { return path_ + "/" + escape_pointer_token(key); }

void JsonReader::expect_object() const {
  if (!value_->is_object()) fail("must be an object, got " + describe_value(*value_));
}

bool JsonReader::has(const std::string& key) {
  expect_object();
  if (std::find(known_keys_.begin(), known_keys_.end(), key) == known_keys_.end()) known_keys_.push_back(key);
  auto it = value_->find(key);
  return it != value_->end() && !it->is_null();
}

const Json& JsonReader::require_key(const std::string& key) {
  if (!has(key)) fail(key, "required key is missing");
  return (*value_)[key];
}

std::string JsonReader::choice(const std::string& key, const std::vector<std::string>& choices, const std::string& fallback) {
  if (!has(key)) return fallback;
  return choice(key, choices);
}

std::string JsonReader::choice(const std::string& key, const std::vector<std::string>& choices) {
  const auto value = get<std::string>(key);
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return value;
  std::string message = fmt::format("must be one of {}, got \"{}\"", join(choices, ", "), value);
  if (auto near = nearest_name(value, choices)) message += fmt::format(" (did you mean \"{}\"?)", *near);
  fail(key, message);
}

JsonReader JsonReader::object(const std::string& key) {
  JsonReader child(require_key(key), path_of(key));
  child.expect_object();
  return child;
}

std::optional<JsonReader> JsonReader::optional_object(const std::string& key) {
  if (!has(key)) return std::nullopt;
  return object(key);
}

std::vector<JsonReader> JsonReader::array(const std::string& key) {
  const Json& value = require_key(key);
  if (!value.is_array()) fail(key, "must be an array, got " + describe_value(value));
  std::vector<JsonReader> out;
  for (std::size_t i = 0; i < value.size(); ++i) out.emplace_back(value[i], path_of(key) + "/" + std::to_string(i));
  return out;
}

void JsonReader::finish() const {
  expect_object();
  for (const auto& item : value_->items()) {
    if (std::find(known_keys_.begin(), known_keys_.end(), item.key()) != known_keys_.end()) continue;
    std::vector<std::string> known = known_keys_;
    std::sort(known.begin(), known.end());
    std::string message = fmt::format("unknown key \"{}\"", item.key());
    if (auto near = nearest_name(item.key(), known)) message += fmt::format(" (did you mean \"{}\"?)", *near);
    message += known.empty() ? " (this object takes no keys)" : " (known: " + join(known, ", ") + ")";
    fail(message);
  }
}

void JsonReader::fail(const std::string& message) const { throw ConfigError(path_, message); }

void JsonReader::fail(const std::string& key, const std::string& message) const { throw ConfigError(path_of(key), message); }

namespace detail {

bool Converter<bool>::convert(const JsonReader& r) {
  if (!r.json().is_boolean()) r.fail("must be a boolean, got " + describe_value(r.json()));
  return r.json().get<bool>();
}

std::int64_t Converter<std::int64_t>::convert(const JsonReader& r) {
  const Json& v = r.json();
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
    r.fail("is too large, got " + describe_value(v));
  }
  // Integral check before conversion: 1.5 must not become 1.
  if (!v.is_number_integer()) r.fail("must be an integer, got " + describe_value(v));
  return v.get<std::int64_t>();
}

int Converter<int>::convert(const JsonReader& r) {
  const std::int64_t wide = Converter<std::int64_t>::convert(r);
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) {
    r.fail("is out of the 32-bit integer range, got " + describe_value(r.json()));
  }
  return static_cast<int>(wide);
}

double Converter<double>::convert(const JsonReader& r) {
  if (!r.json().is_number()) r.fail("must be a number, got " + describe_value(r.json()));
  return r.json().get<double>();
}

std::string Converter<std::string>::convert(const JsonReader& r) {
  if (!r.json().is_string()) r.fail("must be a string, got " + describe_value(r.json()));
  return r.json().get<std::string>();
}

}  // namespace detail

namespace {

struct DuplicateKey {
  std::string key, path;
};

// Follows the parser's events to know the JSON Pointer of each key: a key given twice in one object
// is an error at its path (nlohmann keeps the last silently).
class KeyTracker {
 public:
  void see(Json::parse_event_t event, const Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        frames_.push_back({event == Json::parse_event_t::array_start, 0, "", {}});
        break;
      case Json::parse_event_t::key: {
        auto& frame = frames_.back();
        frame.key = parsed.get<std::string>();
        if (!frame.keys.insert(frame.key).second) throw DuplicateKey{frame.key, path()};
        break;
      }
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        frames_.pop_back();
        element_done();
        break;
      case Json::parse_event_t::value:
        element_done();
        break;
    }
  }

 private:
  struct Frame {
    bool array;
    std::size_t index;
    std::string key;
    std::set<std::string> keys;
  };

  void element_done() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
  }

  std::string path() const {
    std::string out;
    for (const auto& frame : frames_) {
      out += "/" + (frame.array ? std::to_string(frame.index) : escape_pointer_token(frame.key));
    }
    return out;
  }

  std::vector<Frame> frames_;
};

}  // namespace

Json parse_json_text(const std::string& text, const std::string& source, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    throw ConfigError::in_file(source, fmt::format("is {} bytes, more than the limit of {}", text.size(), limits.max_bytes));
  }
  bool too_deep = false;
  KeyTracker keys;
  // The callback sees depth as the parser descends, so a hostile nesting is refused before the tree is built.
  Json::parser_callback_t guard = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) {
      if (depth >= limits.max_depth) {
        too_deep = true;
        throw std::length_error("nesting too deep");
      }
    }
    keys.see(event, parsed);
    return true;
  };
  auto locate = [&](std::size_t byte) {
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return std::make_pair(line, column);
  };
  try {
    return Json::parse(text, guard, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const DuplicateKey& duplicate) {
    throw ConfigError::in_file(source, fmt::format("key \"{}\" is given twice in one object (at {})", duplicate.key, duplicate.path));
  } catch (const Json::parse_error& e) {
    // e.byte is 1-based and points just past the offending character.
    auto [line, column] = locate(e.byte > 0 ? e.byte - 1 : 0);
    std::string what = e.what();
    auto cut = what.find("syntax error");
    if (cut != std::string::npos) what = what.substr(cut);
    throw ConfigError::at_line(source, line, column, what);
  } catch (const Json::out_of_range& e) {
    // A number beyond double's range ("1e400"): the parser gives no position, so the file is named.
    std::string what = e.what();
    const auto cut = what.find("number overflow");
    throw ConfigError::in_file(source, cut == std::string::npos ? what : what.substr(cut));
  } catch (const std::length_error&) {
    if (!too_deep) throw;
    throw ConfigError::in_file(source, fmt::format("nesting is deeper than the limit of {}", limits.max_depth));
  }
}

Json load_json_file(const std::string& file, const JsonLimits& limits) {
  std::string text;
  try {
    text = read_file(file, limits.max_bytes);
  } catch (const DataError& e) {
    // "FILE: reason" becomes "config error in FILE: reason".
    const std::string what = e.what();
    throw ConfigError::in_file(file, what.substr(std::min(what.size(), file.size() + 2)));
  }
  return parse_json_text(text, file, limits);
}

void apply_override(Json& config, const std::string& assignment) {
  const auto equals = assignment.find('=');
  if (equals == std::string::npos || assignment.empty() || assignment[0] != '/') {
    throw ConfigError("", fmt::format("--set takes /json/pointer=value, got \"{}\"", assignment));
  }
  const std::string pointer_text = assignment.substr(0, equals);
  const std::string value_text = assignment.substr(equals + 1);
  Json::json_pointer pointer;
  try {
    pointer = Json::json_pointer(pointer_text);
  } catch (const Json::exception&) {
    throw ConfigError(pointer_text, "--set path is not a valid JSON Pointer");
  }
  if (!config.contains(pointer)) {
    // Name the deepest existing ancestor and what it holds, so the typo is easy to spot.
    Json::json_pointer parent = pointer;
    while (!parent.empty() && !config.contains(parent)) parent = parent.parent_pointer();
    const Json& holder = config.at(parent);
    std::string message = "--set path does not exist in the resolved config";
    if (holder.is_object()) {
      std::vector<std::string> keys;
      for (const auto& item : holder.items()) keys.push_back(item.key());
      message += fmt::format(" (keys at {}: {})", display_path(parent.to_string()), join(keys, ", "));
    }
    throw ConfigError(pointer_text, message);
  }
  Json& target = config.at(pointer);
  Json value;
  try {
    value = Json::parse(value_text);
  } catch (const Json::exception&) {
    // Not JSON, or a number beyond double's range.
    if (!target.is_string()) {
      throw ConfigError(pointer_text, fmt::format("--set value is not valid JSON: {}", value_text));
    }
    value = value_text;
  }
  target = std::move(value);
}

}  // namespace encore::core
