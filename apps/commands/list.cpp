#include <fmt/format.h>

#include "commands/commands.h"
#include "encore/finetune/experiment.h"

namespace encore::apps {

namespace {

// Each model, head and optimizer with its options, from the fields its options struct declares.
template <class Registry>
void print_registry(std::ostream& out, const std::string& title, const Registry& registry) {
  out << title << ":\n";
  for (const auto& name : registry.names()) {
    const auto& entry = registry.at(name);
    out << fmt::format("  {:<22} {}\n", name, entry.description);
    for (const auto& option : entry.factory.options) {
      const auto value = option.default_value.empty() ? std::string("required") : "default " + option.default_value;
      const auto allowed = option.allowed.empty() ? std::string() : "; " + option.allowed;
      out << fmt::format("    {:<20} {} ({}{})\n", option.name, option.description, value, allowed);
    }
  }
}

}  // namespace

int list_command(std::ostream& out) {
  const auto components = finetune::builtin_components();
  print_registry(out, "models", components.models);
  print_registry(out, "heads", components.heads);
  print_registry(out, "optimizers", components.optimizers);
  out << "callbacks:\n";
  for (const auto& [name, description] : finetune::builtin_callbacks()) out << fmt::format("  {:<22} {}\n", name, description);
  return 0;
}

}  // namespace encore::apps
