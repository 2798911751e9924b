// A model.pt used with LibTorch alone, as a C++ user without encore would: no encore header or
// library. Reads a tensor of raw examples saved by torch.save in Python (or torch::pickle_save),
// writes the tuple (forward's probabilities, predict's classes, encode's codes) with
// torch::pickle_save, which Python's torch.load reads.
//   torchscript_predict MODEL_PT INPUTS_PT OUTPUTS_PT
#include <torch/script.h>
#include <torch/serialize.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: torchscript_predict MODEL_PT INPUTS_PT OUTPUTS_PT\n";
    return 2;
  }
  try {
    auto model = torch::jit::load(argv[1]);
    std::ifstream in(argv[2], std::ios::binary);
    const std::vector<char> input_bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto inputs = torch::pickle_load(input_bytes).toTensor();
    torch::NoGradGuard no_grad;
    const auto outputs = c10::ivalue::Tuple::create({model.forward({inputs}).toTensor(), model.get_method("predict")({inputs}).toTensor(),
                                                     model.get_method("encode")({inputs}).toTensor()});
    const auto output_bytes = torch::pickle_save(outputs);
    std::ofstream(argv[3], std::ios::binary).write(output_bytes.data(), static_cast<std::streamsize>(output_bytes.size()));
    std::cout << inputs.size(0) << " examples of classes " << model.attr("encore_class_names").toStringRef() << "\n";
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
