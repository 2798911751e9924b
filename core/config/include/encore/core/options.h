#pragma once
/// The JSON side of options declared once (fields.h has the declaration and the C++-side check):
/// read_options() fills a struct from a JSON object (defaults are the struct's initialisers, rules
/// are checked with the JSON path, unknown keys are rejected), options_json() writes every field
/// back, and describe_options() lists the fields for help texts. All walk the struct's one `fields`
/// list, and run its cross-field `check()` where it has one.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "encore/core/config.h"
#include "encore/core/fields.h"

namespace encore::core {

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

/// What a registered type's `build` makes from its resolved config section at `path` (its "type"
/// included): the options read back, passed to `build(options)`; an OptionError that `build`
/// throws becomes a ConfigError at `path/OPTION`.
template <class Options, class Build>
auto build_from_options(const Json& resolved, const std::string& path, const Build& build) {
  JsonReader reader(resolved, path);
  reader.has("type");
  const auto options = read_options<Options>(reader);
  try {
    return build(options);
  } catch (const OptionError& e) {
    reader.fail(e.option(), e.problem());
  }
}

/// Every field of the options as a JSON object (enums by name, an empty optional as null).
template <class Options>
Json options_json(const Options& options) {
  detail::FieldWriter writer;
  detail::visit_fields(options, writer);
  return std::move(writer.json);
}

/// The fields of default-constructed options: names, descriptions, defaults and rules.
template <class Options>
std::vector<OptionDescription> describe_options() {
  detail::FieldDescriber describer;
  detail::visit_fields(Options(), describer);
  return std::move(describer.fields);
}

}  // namespace encore::core
