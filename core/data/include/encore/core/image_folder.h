#pragma once
/// Images as users keep them: a folder with one subfolder per class of PNG, JPEG and BMP files,
/// decoded (stb), resized to one shape, and cached once decoded as a memory-mapped uint8 file.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "encore/core/dataset.h"
#include "encore/core/image_decode.h"

namespace encore::core {

/// What happens to an image file that cannot be decoded.
enum class UnreadableImages {
  /// The load fails with a DataError naming the file.
  kError,
  /// The file is left out and reported in ImageFolderLoad::skipped.
  kSkip,
};

/// How load_image_folder reads.
struct ImageFolderOptions {
  /// The shape every image is decoded to.
  ImageShape shape;
  /// An unreadable file is an error, or skipped.
  UnreadableImages unreadable = UnreadableImages::kError;
  /// Where decoded images are cached (created when missing); empty: decoded into memory every time.
  std::filesystem::path cache_dir;
  /// Reads only the first N images (classes taken in turn); absent: all.
  std::optional<std::int64_t> limit;
  /// The classes, in label order, that the class folders must be among (a test folder's); empty:
  /// the class folders, sorted by name, are the classes.
  std::vector<std::string> class_names;
};

/// An image folder as read.
struct ImageFolderLoad {
  /// Examples [N, C, H, W] uint8, memory-mapped from the cache file when there is one. Images of the
  /// unlabelled folder come last, with label kNoLabel.
  Dataset data;
  /// "FILE: REASON" for each file left out (UnreadableImages::kSkip).
  std::vector<std::string> skipped;
  /// Lines for the log: files that are not images, the cache used or written.
  std::vector<std::string> notes;
};

/// The label of an image without a class (from an unlabelled folder): never split into labelled or
/// validation rows, only pretrained and semi-supervised on.
constexpr std::int64_t kNoLabel = -1;

/// Reads `root`, whose subfolders (not hidden) are the classes, named by the folders; every .png,
/// .jpg, .jpeg and .bmp file (any case) below a class folder, at any depth, is an example of it.
/// `unlabelled` (optional) is a folder whose images, at any depth, are appended without labels.
/// Files are listed in name order within a class and the classes taken in turn (so that `limit`
/// keeps every class). A second load of the same files (paths, sizes and modification times) with
/// the same shape reads the cache written by the first without decoding anything.
ImageFolderLoad load_image_folder(const std::filesystem::path& root, const std::filesystem::path& unlabelled,
                                  const ImageFolderOptions& options);

/// Images without classes, as read for prediction.
struct ImageFiles {
  /// [N, C, H, W] uint8.
  torch::Tensor pixels;
  /// The file of each row.
  std::vector<std::string> files;
  /// "FILE: REASON" for each file left out (UnreadableImages::kSkip).
  std::vector<std::string> skipped;
  /// Lines for the log: files that are not images.
  std::vector<std::string> notes;
};

/// One image file, or every image below a folder (at any depth, in path order), decoded to
/// options.shape into memory (no cache). Unreadable files fail or are skipped as options say.
ImageFiles load_image_files(const std::filesystem::path& path, const ImageFolderOptions& options);

/// The cache directory a config's empty `cache_dir` means: $ENCORE_CACHE_DIR, else
/// $XDG_CACHE_HOME/encore, else $HOME/.cache/encore (empty when none of them is set).
std::filesystem::path default_image_cache_dir();

}  // namespace encore::core
