#include <fmt/format.h>

#include "commands/commands.h"
#include "encore/finetune/experiment.h"

namespace encore::apps {

namespace {

template <class Registry>
void print_registry(std::ostream& out, const std::string& title, const Registry& registry) {
  out << title << ":\n";
  for (const auto& name : registry.names()) out << fmt::format("  {:<22} {}\n", name, registry.at(name).description);
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
