#pragma once
/// Reading configuration: every config value goes through JsonReader, which knows the JSON Pointer
/// path of what it reads, checks types before converting, checks ranges, and rejects unknown keys.

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "encore/core/fields.h"
#include "encore/core/json.h"

namespace encore::core {

/// A config that cannot be used. `what()` is the full message, e.g.
/// `config error at /pretrain/lr: must be > 0, got -0.001`.
class ConfigError : public std::runtime_error {
 public:
  /// An error at a JSON Pointer path ("" is the document root).
  ConfigError(const std::string& path, const std::string& message);
  /// A syntax error at a 1-based line and column of a file.
  static ConfigError at_line(const std::string& file, std::size_t line, std::size_t column, const std::string& message);
  /// A file-level error (missing, unreadable, too large).
  static ConfigError in_file(const std::string& file, const std::string& message);

  /// JSON Pointer of the offending value, or empty for file-level errors.
  const std::string& path() const { return path_; }

 private:
  ConfigError(std::string path, const std::string& full_message, int /*tag*/);
  std::string path_;
};

/// Reads one JSON value (usually an object) and everything below it, tracking the path.
///
/// Object keys read through `get`/`child`/`has` become "known"; `finish()` then rejects any other
/// key, listing the known ones and the nearest spelling. Readers are cheap views: the JSON must
/// outlive them.
///
/// Example:
///   JsonReader r(json, "/optimizer");
///   double lr = r.get<double>("lr", 1e-3, greater_than(0.0));
///   r.finish();
class JsonReader {
 public:
  /// A reader of `value`, whose JSON Pointer in its document is `path`.
  explicit JsonReader(const Json& value, std::string path = "");

  /// JSON Pointer of this value ("" for the root).
  const std::string& path() const { return path_; }
  /// JSON Pointer of a key below this object.
  std::string path_of(const std::string& key) const;
  /// The value read.
  const Json& json() const { return *value_; }

  /// True if the key is present (and not null). Marks the key as known.
  bool has(const std::string& key);

  /// A required value; missing keys and wrong types are errors.
  template <class T>
  T get(const std::string& key);
  /// An optional value with a default.
  template <class T>
  T get(const std::string& key, T fallback);
  /// An optional value with a default and a range rule.
  template <class T>
  T get(const std::string& key, T fallback, const Rule<T>& rule);

  /// A string that must be one of `choices`; `fallback` when absent.
  std::string choice(const std::string& key, const std::vector<std::string>& choices, const std::string& fallback);
  /// A required string that must be one of `choices`.
  std::string choice(const std::string& key, const std::vector<std::string>& choices);

  /// A required object below this one.
  JsonReader object(const std::string& key);
  /// An optional object; nullopt when absent or null.
  std::optional<JsonReader> optional_object(const std::string& key);
  /// A required array below this one; its elements are readers of their own.
  std::vector<JsonReader> array(const std::string& key);

  /// This value converted to T, with a type check.
  template <class T>
  T as() const;

  /// Rejects keys of this object that nothing asked for. Call after reading all keys.
  void finish() const;

  /// Throws a ConfigError at this value's path, or at a key below it.
  [[noreturn]] void fail(const std::string& message) const;
  /// Throws a ConfigError at the path of `key` below this value.
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

 private:
  const Json& require_key(const std::string& key);
  void expect_object() const;

  const Json* value_;
  std::string path_;
  std::vector<std::string> known_keys_;
};

/// The known name nearest to `name` by edit distance, if it is close enough to be a likely typo.
std::optional<std::string> nearest_name(const std::string& name, const std::vector<std::string>& known);

/// Limits checked while parsing, before the tree is built.
struct JsonLimits {
  /// Largest text accepted, in bytes.
  std::size_t max_bytes = 16u << 20;
  /// Deepest nesting of arrays and objects accepted.
  int max_depth = 64;
};

/// Parses JSON text; syntax errors name `source` with line and column.
Json parse_json_text(const std::string& text, const std::string& source, const JsonLimits& limits = {});
/// Reads and parses a JSON file.
Json load_json_file(const std::string& file, const JsonLimits& limits = {});

/// Applies `--set /json/pointer=value` to a resolved config. The value is JSON; text that is not
/// JSON is taken as a string where the existing value is a string. A path that does not exist in
/// the resolved config is an error.
void apply_override(Json& config, const std::string& assignment);

// ---- template definitions ------------------------------------------------------------------------

namespace detail {
template <class T>
struct Converter;
}  // namespace detail

template <class T>
T JsonReader::as() const {
  return detail::Converter<T>::convert(*this);
}

template <class T>
T JsonReader::get(const std::string& key) {
  const Json& value = require_key(key);
  return JsonReader(value, path_of(key)).as<T>();
}

template <class T>
T JsonReader::get(const std::string& key, T fallback) {
  if (!has(key)) return fallback;
  return JsonReader((*value_)[key], path_of(key)).as<T>();
}

template <class T>
T JsonReader::get(const std::string& key, T fallback, const Rule<T>& rule) {
  const bool present = has(key);
  T value = present ? JsonReader((*value_)[key], path_of(key)).as<T>() : fallback;
  if (present && !rule.holds(value)) {
    fail(key, "must be " + rule.description + ", got " + describe_value((*value_)[key]));
  }
  return value;
}

namespace detail {
template <>
struct Converter<bool> {
  static bool convert(const JsonReader& r);
};
template <>
struct Converter<std::int64_t> {
  static std::int64_t convert(const JsonReader& r);
};
template <>
struct Converter<int> {
  static int convert(const JsonReader& r);
};
template <>
struct Converter<double> {
  static double convert(const JsonReader& r);
};
template <>
struct Converter<std::string> {
  static std::string convert(const JsonReader& r);
};
template <class T>
struct Converter<std::vector<T>> {
  static std::vector<T> convert(const JsonReader& r) {
    if (!r.json().is_array()) r.fail("must be an array, got " + describe_value(r.json()));
    std::vector<T> out;
    out.reserve(r.json().size());
    for (std::size_t i = 0; i < r.json().size(); ++i) {
      out.push_back(JsonReader(r.json()[i], r.path() + "/" + std::to_string(i)).as<T>());
    }
    return out;
  }
};
template <class T>
struct Converter<std::optional<T>> {
  static std::optional<T> convert(const JsonReader& r) {
    if (r.json().is_null()) return std::nullopt;
    return r.as<T>();
  }
};
}  // namespace detail

}  // namespace encore::core
