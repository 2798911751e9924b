// A model.pt used with LibTorch alone, as a C++ user without encore would: no encore header or
// library. Reads a tensor of raw examples saved with torch::save, writes forward's probabilities,
// predict's classes and encode's codes with torch::save.
//   torchscript_predict MODEL_PT INPUTS_PT OUTPUTS_PT
#include <torch/script.h>
#include <torch/serialize.h>

#include <iostream>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: torchscript_predict MODEL_PT INPUTS_PT OUTPUTS_PT\n";
    return 2;
  }
  try {
    auto model = torch::jit::load(argv[1]);
    torch::Tensor inputs;
    torch::load(inputs, argv[2]);
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> outputs{model.forward({inputs}).toTensor(), model.get_method("predict")({inputs}).toTensor(),
                                       model.get_method("encode")({inputs}).toTensor()};
    torch::save(outputs, argv[3]);
    std::cout << "classes of " << outputs[1].size(0) << " examples: " << model.attr("encore_class_names").toStringRef() << "\n";
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
