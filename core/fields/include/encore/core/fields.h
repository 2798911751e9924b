#pragma once
/// What an options struct declares about its fields, without JSON: value rules (`at_least(1)`), the
/// names of an enum's values (Choices), and the check of values set from C++ (check_options, which
/// throws OptionError naming the option and its value). options.h adds the JSON side (reading,
/// writing, describing); both walk the same `fields` list, declared once per options struct:
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
/// A field the JSON must give is declared with `f.required(...)`. Checks that involve several
/// fields go in an optional `void check() const` member that throws OptionError.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "encore/core/json.h"

namespace encore::core {

/// A value rule with its human description, for range checks: `greater_than(0.0)` says "> 0".
template <class T>
struct Rule {
  /// Whether a value satisfies the rule.
  std::function<bool(const T&)> holds;
  /// What the rule asks, for messages ("> 0").
  std::string description;
};

/// Values strictly above `bound`.
Rule<double> greater_than(double bound);
/// Values at or above `bound`.
Rule<double> at_least(double bound);
/// Values in [0, 1).
Rule<double> in_unit_interval_open_right();
/// Integers at or above `bound`.
Rule<std::int64_t> at_least(std::int64_t bound);
/// Integers at or above `bound`.
Rule<int> at_least(int bound);

/// Short JSON text of a value for messages (long values are cut).
std::string describe_value(const Json& value);

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
  /// Whether a value has a name.
  bool contains(const Enum& value) const {
    for (const auto& [name, known] : values_) {
      if (known == value) return true;
    }
    return false;
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
  void operator()(const char* name, const Enum& value, const char* /*description*/, const Choices<Enum>& choices) {
    if (choices.contains(value)) return;
    std::string names;
    for (const auto& known : choices.names()) names += (names.empty() ? "" : " | ") + known;
    if constexpr (std::is_enum_v<Enum>) {
      throw OptionError(name, "must be one of " + names + ", got a value without a name");
    } else {
      throw OptionError(name, "must be one of " + names + ", got " + describe_value(Json(value)));
    }
  }
  template <class T, class... Check>
  void required(const char* name, const T& value, const char* description, const Check&... check) {
    (*this)(name, value, description, check...);
  }
};

// fields() is one non-const member for reading and writing alike; the visitors that take a const
// object never modify it.
template <class Options, class Visitor>
void visit_fields(const Options& options, Visitor& visitor) {
  const_cast<Options&>(options).fields(visitor);
}

}  // namespace detail

/// Checks options set from C++: each field against its rule, then the cross-field check. Throws
/// OptionError naming the first option that fails.
template <class Options>
void check_options(const Options& options) {
  detail::FieldChecker checker;
  detail::visit_fields(options, checker);
  detail::run_cross_field_check(options);
}

}  // namespace encore::core
