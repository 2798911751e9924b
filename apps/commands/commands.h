#pragma once
/// One function per subcommand; cli.cpp parses arguments and calls them.

#include <ostream>
#include <string>
#include <vector>

namespace encore::apps {

struct ConfigArgs {
  std::string config_file;
  std::vector<std::string> overrides;
};

struct RunArgs {
  ConfigArgs config;
  std::string output_dir;
  /// Draw a redrawn progress bar (stderr is a terminal).
  bool interactive = false;
};

/// `encore check`: validates a config and prints it resolved.
int check_command(const ConfigArgs& args, std::ostream& out, std::ostream& err);
/// `encore list`: registered components with one-line descriptions.
int list_command(std::ostream& out);
/// `encore run`: the experiment into a run directory.
int run_command(const RunArgs& args, std::ostream& out, std::ostream& err);

}  // namespace encore::apps
