// Times loading an IDX image file (default: Fashion-MNIST's 60,000 gzipped training images) into a
// uint8 tensor, the way `encore run` does. Prints the median of several loads.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <vector>

#include <fmt/format.h>

#include "encore/core/dataset.h"

int main(int argc, char** argv) {
  const std::string images = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  const std::string labels = argc > 2 ? argv[2] : "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
  constexpr int kRepeats = 7;
  std::vector<double> seconds;
  std::int64_t examples = 0;
  for (int i = 0; i < kRepeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const auto data = encore::core::load_idx_dataset(images, labels);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    examples = data.size();
  }
  std::sort(seconds.begin(), seconds.end());
  std::cout << fmt::format("idx_load encore: {} examples in {:.3f} s (median of {}, min {:.3f} s)\n", examples, seconds[kRepeats / 2],
                           kRepeats, seconds.front());
  return 0;
}
