#include "commands/commands.h"
#include "encore/finetune/experiment.h"

namespace encore::apps {

int check_command(const ConfigArgs& args, std::ostream& out, std::ostream&) {
  const auto components = finetune::builtin_components();
  const auto config = finetune::load_experiment(args.config_file, args.overrides, components);
  out << finetune::to_json(config, components).dump(2) << '\n';
  return 0;
}

}  // namespace encore::apps
