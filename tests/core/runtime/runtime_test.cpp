// Process set-up: the BLAS kernel in use computes right and is the best for this processor.
#include "encore/core/runtime.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace encore::core {
namespace {

TEST(Runtime, MatrixProductsOnTheSelectedKernelMatchDoublePrecision) { EXPECT_LT(blas_product_error(), 1e-5) << blas_description(); }

TEST(Runtime, TheProcessRunsTheBestKernelForThisProcessor) {
  // prepare_process() in the test binary's main() re-executed it with the kernel chosen.
  if (blas_kernel().empty()) GTEST_SKIP() << "the BLAS is not OpenBLAS: " << blas_description();
  const char* forced = std::getenv("ENCORE_BLAS_KERNEL");
  const std::string expected = forced ? forced : best_blas_kernel();
  if (expected.empty() || expected == "openblas") GTEST_SKIP() << "OpenBLAS's own choice is in use: " << blas_kernel();
  EXPECT_EQ(blas_kernel(), expected) << blas_description();
}

}  // namespace
}  // namespace encore::core
