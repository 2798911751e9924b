// The linear baseline for reconstruction: PCA with K components fitted on the training images,
// reconstructing the test images. Prints the mean squared error per pixel, pixels scaled to [0, 1]
// as encore's `unit` scaling does.
//
//   pca_baseline [K] [TRAIN_IMAGES TRAIN_LABELS TEST_IMAGES TEST_LABELS]
#include <torch/torch.h>

#include <iostream>
#include <string>

#include <fmt/format.h>

#include "encore/core/dataset.h"
#include "encore/core/runtime.h"

int main(int argc, char** argv) {
  encore::core::prepare_process(argv);
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  const std::int64_t components = argc > 1 ? std::stoll(argv[1]) : 30;
  const std::string train_images = argc > 5 ? argv[2] : dir + "train-images-idx3-ubyte.gz";
  const std::string train_labels = argc > 5 ? argv[3] : dir + "train-labels-idx1-ubyte.gz";
  const std::string test_images = argc > 5 ? argv[4] : dir + "t10k-images-idx3-ubyte.gz";
  const std::string test_labels = argc > 5 ? argv[5] : dir + "t10k-labels-idx1-ubyte.gz";
  const auto train = encore::core::load_idx_dataset(train_images, train_labels);
  const auto test = encore::core::load_idx_dataset(test_images, test_labels);
  // Double precision: the covariance of 60,000 rows is a sum that float would round.
  const auto x = train.features.reshape({train.size(), -1}).to(torch::kFloat64) / 255.0;
  const auto t = test.features.reshape({test.size(), -1}).to(torch::kFloat64) / 255.0;
  const auto mean = x.mean(0);
  const auto centred = x - mean;
  const auto covariance = centred.t().mm(centred) / static_cast<double>(x.size(0));
  const auto [eigenvalues, eigenvectors] = torch::linalg_eigh(covariance, "L");
  // eigh sorts ascending: the principal directions are the last columns.
  const auto basis = eigenvectors.narrow(1, eigenvectors.size(1) - components, components);
  const auto reconstruction = (t - mean).mm(basis).mm(basis.t()) + mean;
  const double mse = (reconstruction - t).pow(2).mean().item<double>();
  std::cout << fmt::format("pca_baseline: {} components fitted on {} training images: test reconstruction MSE {:.5f} ({} test images)\n",
                           components, train.size(), mse, test.size());
  return 0;
}
