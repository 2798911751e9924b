// The tests start like the encore executable: same BLAS kernel, denormal and allocator settings.
#include <gtest/gtest.h>

#include "encore/core/runtime.h"

int main(int argc, char** argv) {
  encore::core::prepare_process(argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
