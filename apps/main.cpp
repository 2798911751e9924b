#include <iostream>

#include "cli.h"
#include "encore/core/runtime.h"

int main(int argc, char** argv) {
  encore::core::prepare_process(argv);
  return encore::apps::run_cli(argc, argv, std::cout, std::cerr);
}
