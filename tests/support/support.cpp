#include "support/support.h"

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <random>

namespace encore::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::random_device device;
  const auto base = fs::temp_directory_path() / ("encore-test-" + std::to_string(device()) + "-" + std::to_string(device()));
  fs::create_directories(base);
  path_ = base;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void write_bytes(const fs::path& file, const std::vector<unsigned char>& bytes) {
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_text(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

std::vector<unsigned char> read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
}

void write_gzip(const fs::path& file, const std::vector<unsigned char>& bytes) {
  gzFile out = gzopen(file.c_str(), "wb");
  gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(out);
}

std::vector<unsigned char> idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims, const std::vector<unsigned char>& payload) {
  std::vector<unsigned char> out{0, 0, type, static_cast<unsigned char>(dims.size())};
  for (auto d : dims) {
    out.push_back(static_cast<unsigned char>(d >> 24));
    out.push_back(static_cast<unsigned char>(d >> 16));
    out.push_back(static_cast<unsigned char>(d >> 8));
    out.push_back(static_cast<unsigned char>(d));
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::pair<fs::path, fs::path> write_toy_idx(const fs::path& dir, const std::string& prefix, int classes, int per_class, int side,
                                            bool gzip) {
  std::mt19937 rng(static_cast<unsigned>(classes * 131 + per_class * 7 + side));
  std::uniform_int_distribution<int> noise(0, 40);
  const int count = classes * per_class;
  std::vector<unsigned char> pixels, labels;
  for (int i = 0; i < count; ++i) {
    const int label = i % classes;
    labels.push_back(static_cast<unsigned char>(label));
    for (int r = 0; r < side; ++r) {
      for (int c = 0; c < side; ++c) {
        const bool stripe = (r * classes / side) == label;
        pixels.push_back(static_cast<unsigned char>(stripe ? 200 + noise(rng) : noise(rng)));
      }
    }
  }
  const auto images =
      idx_bytes(0x08, {static_cast<std::uint32_t>(count), static_cast<std::uint32_t>(side), static_cast<std::uint32_t>(side)}, pixels);
  const auto label_file = idx_bytes(0x08, {static_cast<std::uint32_t>(count)}, labels);
  const std::string suffix = gzip ? ".gz" : "";
  const auto images_path = dir / (prefix + "-images-idx3-ubyte" + suffix);
  const auto labels_path = dir / (prefix + "-labels-idx1-ubyte" + suffix);
  if (gzip) {
    write_gzip(images_path, images);
    write_gzip(labels_path, label_file);
  } else {
    write_bytes(images_path, images);
    write_bytes(labels_path, label_file);
  }
  return {images_path, labels_path};
}

std::vector<std::string> list_tree(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) out.push_back(fs::relative(entry.path(), dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

core::OptimizerRegistry builtin_optimizers() {
  core::OptimizerRegistry registry("optimizer");
  core::register_builtin_optimizers(registry);
  return registry;
}

std::pair<int, int> png_size(const fs::path& file) {
  int width = 0, height = 0, channels = 0;
  unsigned char* pixels = stbi_load(file.c_str(), &width, &height, &channels, 1);
  if (!pixels) return {0, 0};
  stbi_image_free(pixels);
  return {width, height};
}

bool bitwise_equal(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto ca = a.contiguous().cpu();
  const auto cb = b.contiguous().cpu();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

IntraOpThreads::IntraOpThreads(int threads) : previous_(at::get_num_threads()) { at::set_num_threads(threads); }

IntraOpThreads::~IntraOpThreads() { at::set_num_threads(previous_); }

std::size_t zip_entry_data_offset(const std::string& archive, const std::string& name_suffix) {
  const auto local_header = archive.rfind("PK\x03\x04", archive.find(name_suffix));
  EXPECT_NE(local_header, std::string::npos) << "no entry " << name_suffix;
  const auto field = [&](std::size_t at) {
    return static_cast<std::size_t>(static_cast<unsigned char>(archive[at])) |
           static_cast<std::size_t>(static_cast<unsigned char>(archive[at + 1])) << 8;
  };
  return local_header + 30 + field(local_header + 26) + field(local_header + 28);
}

torch::Tensor write_toy_image_folder(const fs::path& root, int classes, int per_class, int side, int channels) {
  std::mt19937 rng(static_cast<unsigned>(classes * 17 + per_class * 5 + side + channels));
  std::uniform_int_distribution<int> noise(0, 40);
  auto images = torch::empty({classes * per_class, channels, side, side}, torch::kUInt8);
  auto pixels = images.accessor<std::uint8_t, 4>();
  for (int k = 0; k < classes; ++k) {
    fs::create_directories(root / ("class" + std::to_string(k)));
    for (int i = 0; i < per_class; ++i) {
      const int n = k * per_class + i;
      std::vector<unsigned char> interleaved;
      for (int r = 0; r < side; ++r) {
        for (int c = 0; c < side; ++c) {
          for (int channel = 0; channel < channels; ++channel) {
            const bool stripe = (r * classes / side) == k && (channels == 1 || channel == k % 3);
            pixels[n][channel][r][c] = static_cast<std::uint8_t>(stripe ? 200 + noise(rng) : noise(rng));
            interleaved.push_back(pixels[n][channel][r][c]);
          }
        }
      }
      // Zero-padded names list in the order written.
      const auto name = std::to_string(1000 + i).substr(1) + ".png";
      const auto file = root / ("class" + std::to_string(k)) / name;
      if (!stbi_write_png(file.c_str(), side, side, channels, interleaved.data(), side * channels)) {
        throw std::runtime_error("cannot write " + file.string());
      }
    }
  }
  return images;
}

torch::Tensor square_images(std::int64_t n) {
  torch::manual_seed(4);
  auto images = 0.05 * torch::rand({n, 1, 8, 8});
  for (std::int64_t i = 0; i < n; ++i) images[i].narrow(1, 4 * (i % 4 / 2), 4).narrow(2, 4 * (i % 2), 4).add_(0.9);
  return images.flatten(1);
}

core::Json toy_experiment_config(const TempDir& dir) {
  auto [train_images, train_labels] = write_toy_idx(dir.path(), "train", 4, 30, 8, true);
  auto [test_images, test_labels] = write_toy_idx(dir.path(), "test", 4, 5, 8, false);
  return core::Json{{"name", "toy"},
                    {"seed", 3},
                    {"threads", 1},
                    {"data",
                     {{"format", "idx"},
                      {"train_images", train_images.string()},
                      {"train_labels", train_labels.string()},
                      {"test_images", test_images.string()},
                      {"test_labels", test_labels.string()}}},
                    {"model", {{"hidden_dims", {16, 4}}, {"corruption", "masking"}, {"corruption_levels", {0.1, 0.2}}}},
                    {"pretrain", {{"mode", "greedy_then_end_to_end"}, {"greedy", {{"epochs", 2}}}, {"end_to_end", {{"epochs", 2}}}}}};
}

std::string python_with_torch() { return ENCORE_PYTHON; }

}  // namespace encore::testing
