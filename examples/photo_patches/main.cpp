// A convolutional autoencoder learns the first-layer filters of colour photographs: random patches
// cut from the photographs given (for example the two 427x640 JPEG photographs that Debian's
// python3-sklearn ships; ./get-photos fetches them) are reconstructed through a 2x pooled code,
// and the learned 7x7 colour filters (edges, bars and colour blobs) and the patches' reconstructions
// are drawn.
//
//   photo_patches OUTPUT_DIR PHOTO...     writes OUTPUT_DIR/filters.png and reconstructions.png
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <random>

#include "encore/core/callbacks.h"
#include "encore/core/files.h"
#include "encore/core/image_folder.h"
#include "encore/core/runtime.h"
#include "encore/models/convolutional.h"
#include "encore/models/pictures.h"
#include "encore/models/pretrain.h"

namespace core = encore::core;
namespace models = encore::models;

namespace {

constexpr std::int64_t kPatchSide = 16;
constexpr std::int64_t kPatchesPerPhoto = 8000;

// Every photograph, decoded at 320 x 480 (427 x 640 photographs lose a sliver to the centre crop).
std::vector<torch::Tensor> read_photos(const std::vector<std::filesystem::path>& files) {
  core::ImageShape shape;
  shape.channels = 3;
  shape.height = 320;
  shape.width = 480;
  shape.resize = core::ImageResize::kCenterCrop;
  std::vector<torch::Tensor> photos;
  for (const auto& file : files) {
    auto pixels = core::decode_image(core::read_file(file), file.string(), shape);
    photos.push_back(torch::from_blob(pixels.data(), {3, shape.height, shape.width}, torch::kUInt8).clone());
  }
  return photos;
}

// Patches at seeded random places: [N, 3, side, side] uint8, one class (the labels go unused).
core::Dataset cut_patches(const std::vector<torch::Tensor>& photos, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<torch::Tensor> patches;
  for (const auto& photo : photos) {
    std::uniform_int_distribution<std::int64_t> row(0, photo.size(1) - kPatchSide), column(0, photo.size(2) - kPatchSide);
    for (std::int64_t k = 0; k < kPatchesPerPhoto; ++k) {
      patches.push_back(photo.narrow(1, row(rng), kPatchSide).narrow(2, column(rng), kPatchSide));
    }
  }
  core::Dataset data;
  data.features = torch::stack(patches);
  data.labels = torch::zeros({data.features.size(0)}, torch::kInt64);
  data.class_names = {"patch"};
  return data;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: photo_patches OUTPUT_DIR PHOTO...\n";
    return 2;
  }
  encore::core::prepare_process(argv);
  try {
    const std::filesystem::path output_dir = argv[1];
    const std::uint64_t seed = 5;
    core::seed_everything(seed);
    const auto data = cut_patches(read_photos({argv + 2, argv + argc}), seed);
    const auto all = torch::arange(data.size(), torch::kInt64);
    const auto scaler = core::Scaler::fit(core::Scaling::kUnit, data, all);
    std::cout << data.size() << " patches of 3 x " << kPatchSide << " x " << kPatchSide << " pixels\n";

    // 12 colour 7x7 filters, a 2x2 max pooling, and the mirrored decoder: the code has fewer numbers
    // than the patch, so the filters must capture what photographs are made of. Gaussian corruption
    // and weight decay keep them smooth: without them, noise that the decoder cancels costs nothing.
    models::ConvolutionalAutoencoder model(models::ConvolutionalAutoencoderOptions(data.feature_dim(), {12})
                                               .image_channels(3)
                                               .kernel_sizes({7})
                                               .pooling({2})
                                               .code_dim(96)
                                               .corruption(models::Corruption::kGaussian)
                                               .corruption_level(0.1));
    models::PretrainConfig pretrain;
    pretrain.mode = "end_to_end";
    pretrain.loss = models::ReconstructionLoss::kMse;
    pretrain.end_to_end.epochs = 8;
    pretrain.end_to_end.batch_size = 64;
    auto adamw = std::make_shared<core::AdamWOptions>();
    adamw->lr = 3e-3;
    adamw->weight_decay = 0.3;
    pretrain.end_to_end.optimizer = adamw;
    core::StageContext context;
    context.seed = seed;
    auto progress = std::make_shared<core::ProgressReporter>(std::cerr, false);
    context.attach_callbacks = [progress](core::Trainer& trainer) { trainer.add_callback(progress); };
    const core::BatchSource patches(data, all, scaler, 64, true, seed);
    const std::shared_ptr<models::AutoencoderModel> autoencoder = model.ptr();
    models::pretrain(autoencoder, pretrain, patches, nullptr, context);

    std::filesystem::create_directories(output_dir);
    const core::BatchSource shown(data, torch::randperm(data.size(), torch::kInt64).narrow(0, 0, 16), scaler, 64, false, seed);
    models::write_reconstructions_png(output_dir / "reconstructions.png", *autoencoder, shown, {3, kPatchSide, kPatchSide}, 16);
    models::write_filters_png(output_dir / "filters.png", *autoencoder, {3, kPatchSide, kPatchSide});
    std::cout << "wrote " << (output_dir / "filters.png").string() << " and " << (output_dir / "reconstructions.png").string() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "photo_patches: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
