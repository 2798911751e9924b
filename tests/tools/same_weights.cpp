// same_weights A.pt B.pt: exits 0 when two model.pt files hold the same weights bit for bit (every
// parameter and buffer of the classifier, by name), else 1 listing the tensors that differ. The
// examples' ctest uses it to check that the C++ API and a JSON config train the same model.
#include <torch/torch.h>

#include <iostream>
#include <map>

#include "encore/finetune/components.h"
#include "encore/finetune/trained_model.h"

namespace {

std::map<std::string, torch::Tensor> named_tensors(const encore::finetune::TrainedModel& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : model.classifier->named_parameters()) out[item.key()] = item.value();
  for (const auto& item : model.classifier->named_buffers()) out[item.key()] = item.value();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: same_weights A.pt B.pt\n";
    return 2;
  }
  try {
    const auto components = encore::finetune::builtin_components();
    const auto a = named_tensors(encore::finetune::load_trained_model(argv[1], components));
    const auto b = named_tensors(encore::finetune::load_trained_model(argv[2], components));
    int differences = 0;
    for (const auto& [name, tensor] : a) {
      const auto other = b.find(name);
      if (other == b.end()) {
        std::cerr << name << ": only in " << argv[1] << "\n";
        ++differences;
      } else if (!torch::equal(tensor, other->second)) {
        std::cerr << name << ": differs (largest difference " << (tensor - other->second).abs().max().item<double>() << ")\n";
        ++differences;
      }
    }
    for (const auto& [name, tensor] : b) {
      if (!a.count(name)) {
        std::cerr << name << ": only in " << argv[2] << "\n";
        ++differences;
      }
    }
    if (differences > 0) return 1;
    std::cout << a.size() << " tensors, bitwise identical\n";
  } catch (const std::exception& e) {
    std::cerr << "same_weights: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
