#pragma once
/// Typed options declared once. An options struct lists its fields in one member template, each
/// with its name, a description, and optionally a rule (core::Rule) or the names of an enum's values
/// (core::Choices):
///
///     struct DropoutAutoencoderOptions {
///       std::int64_t code_dim = 64;
///       double dropout = 0.2;
///       template <class Fields>
///       void fields(Fields& f) {
///         f("code_dim", code_dim, "width of the code", core::at_least(std::int64_t{1}));
///         f("dropout", dropout, "probability of zeroing a code unit in training", core::in_unit_interval_open_right());
///       }
///     };
///
/// From that one list, read_options() fills the struct from a JSON object (defaults are the struct's
/// initialisers, rules are checked with the JSON path, unknown keys are rejected), options_json()
/// writes every field back, check_options() checks values set from C++ (an OptionError names the
/// option and its value), and describe_options() lists the fields for help texts. A field the JSON
/// must give is declared with `f.required(...)`. Checks that involve several fields go in an
/// optional `void check() const` member that throws OptionError; all of the above run it.

#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "encore/core/config.h"

namespace encore::core {

/// Options set from C++ that cannot be used. `what()` is `option code_dim: must be >= 1, got 0`;
/// read from JSON, the same problem is a ConfigError at the option's path.
class OptionError : public std::invalid_argument {
 public:
  /// A problem with option `option`.
  OptionError(const std::string& option, const std::string& problem)
      : std::invalid_argument("option " + option + ": " + problem), option_(option), problem_(problem) {}
  /// The option's name ("hidden_dims").
  const std::string& option() const { return option_; }
  /// What is wrong with it, without the name ("must list at least one layer size").
  const std::string& problem() const { return problem_; }

 private:
  std::string option_, problem_;
};

/// The names of an enum's values, for fields of enum type: JSON spells them as these strings.
template <class Enum>
class Choices {
 public:
  /// The name of each value: `{{"sigmoid", Activation::kSigmoid}, ...}`.
  Choices(std::initializer_list<std::pair<const char*, Enum>> values) : values_(values.begin(), values.end()) {}
  /// Every name, in declaration order.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, value] : values_) out.emplace_back(name);
    return out;
  }
  /// The name of a value; a value without a name is a programming error.
  std::string name_of(Enum value) const {
    for (const auto& [name, known] : values_) {
      if (known == value) return name;
    }
    throw std::logic_error("an enum value without a name in its Choices");
  }
  /// The value of a name read with JsonReader::choice (so known to be one of names()).
  Enum value_of(const std::string& name) const {
    for (const auto& [known, value] : values_) {
      if (name == known) return value;
    }
    throw std::logic_error("\"" + name + "\" is not among the Choices");
  }

 private:
  std::vector<std::pair<const char*, Enum>> values_;
};

/// One field as describe_options() lists it.
struct OptionDescription {
  /// The key in the config.
  std::string name;
  /// What the field does.
  std::string description;
  /// The default's JSON text, or empty for a required field.
  std::string default_value;
  /// The rule ("> 0") or the choices ("sigmoid | relu | tanh | linear"); empty for none.
  std::string allowed;
};

namespace detail {

template <class Options, class = void>
struct HasCheck : std::false_type {};
template <class Options>
struct HasCheck<Options, std::void_t<decltype(std::declval<const Options&>().check())>> : std::true_type {};

template <class Options>
void run_cross_field_check(const Options& options) {
  if constexpr (HasCheck<Options>::value) options.check();
}

// What is wrong with a value under a rule (applied to each element of a vector, and to an optional's
// value when there is one); nullopt when it holds.
template <class T>
std::optional<std::string> rule_problem(const T& value, const Rule<T>& rule) {
  if (rule.holds(value)) return std::nullopt;
  return "must be " + rule.description + ", got " + describe_value(Json(value));
}
template <class T>
std::optional<std::string> rule_problem(const std::optional<T>& value, const Rule<T>& rule) {
  if (!value) return std::nullopt;
  return rule_problem(*value, rule);
}
template <class T>
std::optional<std::string> rule_problem(const std::vector<T>& values, const Rule<T>& rule) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!rule.holds(values[i])) {
      return "entries must be " + rule.description + ", got " + describe_value(Json(values[i])) + " at index " + std::to_string(i);
    }
  }
  return std::nullopt;
}

template <class T>
Json field_json(const T& value) {
  return Json(value);
}
template <class T>
Json field_json(const std::optional<T>& value) {
  return value ? Json(*value) : Json(nullptr);
}

// Fills fields from a JSON object.
class FieldReader {
 public:
  explicit FieldReader(JsonReader& reader) : reader_(reader) {}
  template <class T>
  void operator()(const char* name, T& value, const char* /*description*/) {
    value = reader_.get<T>(name, value);
  }
  template <class T, class Checked>
  void operator()(const char* name, T& value, const char* /*description*/, const Rule<Checked>& rule) {
    value = reader_.get<T>(name, value);
    if (auto problem = rule_problem(value, rule)) reader_.fail(name, *problem);
  }
  template <class Enum>
  void operator()(const char* name, Enum& value, const char* /*description*/, const Choices<Enum>& choices) {
    value = choices.value_of(reader_.choice(name, choices.names(), choices.name_of(value)));
  }
  template <class T, class... Check>
  void required(const char* name, T& value, const char* description, const Check&... check) {
    if (!reader_.has(name)) reader_.get<T>(name);  // the missing-key error
    (*this)(name, value, description, check...);
  }

 private:
  JsonReader& reader_;
};

// Writes every field as JSON.
class FieldWriter {
 public:
  template <class T, class... Check>
  void operator()(const char* name, const T& value, const char* /*description*/, const Check&... /*check*/) {
    json[name] = field_json(value);
  }
  template <class Enum>
  void operator()(const char* name, const Enum& value, const char* /*description*/, const Choices<Enum>& choices) {
    json[name] = choices.name_of(value);
  }
  template <class T, class... Check>
  void required(const char* name, const T& value, const char* description, const Check&... check) {
    (*this)(name, value, description, check...);
  }
  Json json = Json::object();
};

// Checks values set from C++ against their rules.
class FieldChecker {
 public:
  template <class T>
  void operator()(const char* /*name*/, const T& /*value*/, const char* /*description*/) {}
  template <class T, class Checked>
  void operator()(const char* name, const T& value, const char* /*description*/, const Rule<Checked>& rule) {
    if (auto problem = rule_problem(value, rule)) throw OptionError(name, *problem);
  }
  template <class Enum>
  void operator()(const char* /*name*/, const Enum& /*value*/, const char* /*description*/, const Choices<Enum>& /*choices*/) {}
  template <class T, class... Check>
  void required(const char* name, const T& value, const char* description, const Check&... check) {
    (*this)(name, value, description, check...);
  }
};

// Lists the fields with their defaults.
class FieldDescriber {
 public:
  template <class T>
  void operator()(const char* name, const T& value, const char* description) {
    fields.push_back({name, description, field_json(value).dump(), ""});
  }
  template <class T, class Checked>
  void operator()(const char* name, const T& value, const char* description, const Rule<Checked>& rule) {
    fields.push_back({name, description, field_json(value).dump(), rule.description});
  }
  template <class Enum>
  void operator()(const char* name, const Enum& value, const char* description, const Choices<Enum>& choices) {
    std::string allowed;
    for (const auto& choice : choices.names()) allowed += (allowed.empty() ? "" : " | ") + choice;
    fields.push_back({name, description, Json(choices.name_of(value)).dump(), allowed});
  }
  template <class T, class... Check>
  void required(const char* name, const T& value, const char* description, const Check&... check) {
    (*this)(name, value, description, check...);
    fields.back().default_value.clear();
  }
  std::vector<OptionDescription> fields;
};

// fields() is one non-const member for reading and writing alike; the visitors that take a const
// object never modify it.
template <class Options, class Visitor>
void visit_fields(const Options& options, Visitor& visitor) {
  const_cast<Options&>(options).fields(visitor);
}

}  // namespace detail

/// Reads options from a JSON object: fields absent keep `defaults`' values; rules and the
/// cross-field check fail with a ConfigError at the offending key's path; unknown keys are errors.
/// Keys the caller has already read (marked known with `has`) are allowed.
template <class Options>
Options read_options(JsonReader& reader, Options defaults = Options()) {
  detail::FieldReader fields(reader);
  defaults.fields(fields);
  try {
    detail::run_cross_field_check(defaults);
  } catch (const OptionError& e) {
    reader.fail(e.option(), e.problem());
  }
  reader.finish();
  return defaults;
}

/// Every field of the options as a JSON object (enums by name, an empty optional as null).
template <class Options>
Json options_json(const Options& options) {
  detail::FieldWriter writer;
  detail::visit_fields(options, writer);
  return std::move(writer.json);
}

/// Checks options set from C++: each field against its rule, then the cross-field check. Throws
/// OptionError naming the first option that fails.
template <class Options>
void check_options(const Options& options) {
  detail::FieldChecker checker;
  detail::visit_fields(options, checker);
  detail::run_cross_field_check(options);
}

/// The fields of default-constructed options: names, descriptions, defaults and rules.
template <class Options>
std::vector<OptionDescription> describe_options() {
  detail::FieldDescriber describer;
  detail::visit_fields(Options(), describer);
  return std::move(describer.fields);
}

}  // namespace encore::core
