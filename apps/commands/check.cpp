#include "commands/commands.h"
#include "encore/finetune/experiment.h"

namespace encore::apps {

int check_command(const ConfigArgs& args, std::ostream& out, std::ostream& err) {
  const auto components = finetune::builtin_components();
  const auto config = finetune::load_experiment(args.config_file, args.overrides, components);
  finetune::RunOptions options;
  options.log = &err;
  options.config_source = args.config_file;
  finetune::check_experiment(config, components, options);
  out << finetune::to_json(config, components).dump(2) << '\n';
  return 0;
}

}  // namespace encore::apps
