#include "encore/core/fields.h"

#include <fmt/format.h>

namespace encore::core {

Rule<double> greater_than(double bound) {
  return {[bound](const double& v) { return v > bound; }, fmt::format("> {}", bound)};
}
Rule<double> at_least(double bound) {
  return {[bound](const double& v) { return v >= bound; }, fmt::format(">= {}", bound)};
}
Rule<double> in_unit_interval_open_right() {
  return {[](const double& v) { return v >= 0.0 && v < 1.0; }, "in [0, 1)"};
}
Rule<std::int64_t> at_least(std::int64_t bound) {
  return {[bound](const std::int64_t& v) { return v >= bound; }, fmt::format(">= {}", bound)};
}

std::string describe_value(const Json& value) {
  std::string text = value.dump();
  constexpr std::size_t kMaxShown = 60;
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + "...";
  return text;
}

Rule<int> at_least(int bound) {
  return {[bound](const int& v) { return v >= bound; }, fmt::format(">= {}", bound)};
}

}  // namespace encore::core
