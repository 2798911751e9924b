#include "encore/core/image_folder.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "encore/core/json.h"
#include "encore/core/utf8.h"

namespace encore::core {

namespace fs = std::filesystem;

std::filesystem::path default_image_cache_dir() {
  if (const char* dir = std::getenv("ENCORE_CACHE_DIR"); dir && *dir) return dir;
  if (const char* dir = std::getenv("XDG_CACHE_HOME"); dir && *dir) return fs::path(dir) / "encore";
  if (const char* dir = std::getenv("HOME"); dir && *dir) return fs::path(dir) / ".cache" / "encore";
  return {};
}

namespace {

// How an error about an unreadable image ends.
constexpr const char* kSkipHint = " (set data.unreadable_images to \"skip\" to leave such files out)";

// Larger files are refused before they are read: no PNG, JPEG or BMP photograph comes near it.
constexpr std::uint64_t kMaxImageFileBytes = std::uint64_t{512} << 20;

// One image file of the listing.
struct ListedImage {
  fs::path file;
  std::uintmax_t size = 0;
  std::int64_t modified_ns = 0;
  std::int64_t label = kNoLabel;
};

bool is_image_name(const fs::path& file) {
  auto extension = file.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
  return extension == ".png" || extension == ".jpg" || extension == ".jpeg" || extension == ".bmp";
}

bool is_hidden(const fs::path& path) { return path.filename().string().front() == '.'; }

[[noreturn]] void fail_listing(const fs::path& folder, const std::error_code& error) {
  throw DataError(fmt::format("{}: cannot list the folder: {}", folder.string(), error.message()));
}

// The images below `folder` at any depth, in path order; `other_files` counts the files that are not.
std::vector<ListedImage> list_images(const fs::path& folder, std::int64_t label, std::vector<fs::path>& other_files) {
  std::vector<ListedImage> images;
  std::error_code error;
  fs::recursive_directory_iterator it(folder, error), end;
  if (error) fail_listing(folder, error);
  for (; it != end; it.increment(error)) {
    if (error) fail_listing(folder, error);
    if (is_hidden(it->path())) {
      if (it->is_directory(error)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(error)) continue;
    if (!is_image_name(it->path())) {
      other_files.push_back(it->path());
      continue;
    }
    ListedImage image{it->path(), it->file_size(error), 0, label};
    if (error) throw DataError(fmt::format("{}: {}", it->path().string(), error.message()));
    image.modified_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(it->last_write_time(error).time_since_epoch()).count();
    images.push_back(std::move(image));
  }
  if (error) fail_listing(folder, error);
  std::sort(images.begin(), images.end(), [](const ListedImage& a, const ListedImage& b) { return a.file < b.file; });
  return images;
}

// The class folders of `root`, in name order.
std::vector<fs::path> class_folders(const fs::path& root) {
  std::vector<fs::path> folders;
  std::error_code error;
  for (fs::directory_iterator it(root, error), end; it != end; it.increment(error)) {
    if (error) fail_listing(root, error);
    if (!is_hidden(it->path()) && it->is_directory(error)) folders.push_back(it->path());
  }
  if (error) fail_listing(root, error);
  std::sort(folders.begin(), folders.end());
  if (folders.empty()) throw DataError(root.string() + ": holds no class folder (an image folder has one subfolder of images per class)");
  return folders;
}

std::int64_t class_index(const std::string& name, const fs::path& folder, std::vector<std::string>& classes, bool classes_given) {
  const auto known = std::find(classes.begin(), classes.end(), name);
  if (known != classes.end()) return known - classes.begin();
  if (classes_given) {
    throw DataError(fmt::format("{}: the class folder \"{}\" is not one of the training classes ({})", folder.parent_path().string(), name,
                                fmt::join(classes, ", ")));
  }
  // Class names go into the run's JSON files, which hold UTF-8 only.
  if (const auto offset = first_non_utf8_byte(name)) {
    throw DataError(fmt::format("{}: the name of a class folder is not UTF-8 text (byte 0x{:02X} after \"{}\"): rename the folder",
                                folder.parent_path().string(), static_cast<unsigned char>(name[*offset]), name.substr(0, *offset)));
  }
  classes.push_back(name);
  return static_cast<std::int64_t>(classes.size()) - 1;
}

// The class folders' images, the classes taken in turn: the first N of the listing hold every class
// (as the first N of an IDX file do).
std::vector<ListedImage> interleave_classes(const std::vector<std::vector<ListedImage>>& per_class) {
  std::vector<ListedImage> listing;
  for (std::size_t position = 0;; ++position) {
    bool any = false;
    for (const auto& images : per_class) {
      if (position >= images.size()) continue;
      listing.push_back(images[position]);
      any = true;
    }
    if (!any) return listing;
  }
}

// The decode settings and every file's identity: equal keys mean equal decoded images.
std::string cache_key(const std::vector<ListedImage>& listing, const ImageShape& shape) {
  std::string key =
      fmt::format("encore image cache 1\n{} {} {} {}\n", shape.channels, shape.height, shape.width, image_resize_name(shape.resize));
  for (const auto& image : listing) {
    key +=
        fmt::format("{}\t{}\t{}\t{}\n", fs::absolute(image.file).lexically_normal().string(), image.size, image.modified_ns, image.label);
  }
  return key;
}

std::uint64_t fnv1a(const std::string& text) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (const char c : text) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return hash;
}

std::uint32_t crc32_of(const std::string& text) {
  return static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(text.data()), static_cast<uInt>(text.size())));
}

// The cache file: this magic, zeros up to kPixelsOffset (where the mapped pixels start, page
// aligned), the kept images' pixels, a JSON trailer (the key's hashes, the shape, the listing
// positions kept and the files skipped) and the trailer's length (uint64, little-endian).
constexpr std::string_view kCacheMagic = "ENCIMG\x01\x00";
constexpr std::size_t kPixelsOffset = 4096;

// What the decoding of a listing kept.
struct DecodedListing {
  std::vector<std::int64_t> kept;
  std::vector<std::string> skipped;
};

Json cache_trailer(const std::string& key, const ImageShape& shape, const DecodedListing& decoded) {
  return Json{{"fnv1a", fmt::format("{:016x}", fnv1a(key))},
              {"crc32", crc32_of(key)},
              {"shape", {shape.channels, shape.height, shape.width}},
              {"kept", decoded.kept},
              {"skipped", decoded.skipped}};
}

void write_all(int descriptor, const void* data, std::size_t size, const fs::path& file) {
  const auto* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const auto written = ::write(descriptor, bytes, size);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) throw DataError(fmt::format("{}: cannot write the image cache: {}", file.string(), std::strerror(errno)));
    bytes += written;
    size -= static_cast<std::size_t>(written);
  }
}

// Decodes the listing in chunks (each decoded in parallel, appended in order), so that memory holds
// one chunk whatever the folder's size. `sink` takes each kept image's pixels in listing order.
template <class Sink>
DecodedListing decode_listing(const std::vector<ListedImage>& listing, const ImageFolderOptions& options, Sink&& sink) {
  constexpr std::int64_t kChunk = 512;
  DecodedListing decoded;
  const auto count = static_cast<std::int64_t>(listing.size());
  for (std::int64_t begin = 0; begin < count; begin += kChunk) {
    const auto size = std::min(kChunk, count - begin);
    std::vector<std::vector<std::uint8_t>> pixels(size);
    std::vector<std::string> errors(size);
    at::parallel_for(0, size, 1, [&](std::int64_t from, std::int64_t to) {
      for (auto k = from; k < to; ++k) {
        const auto& file = listing[begin + k].file;
        try {
          pixels[k] = decode_image(read_file(file, kMaxImageFileBytes), file.string(), options.shape);
        } catch (const std::exception& e) {
          errors[k] = e.what();
        }
      }
    });
    for (std::int64_t k = 0; k < size; ++k) {
      if (!errors[k].empty()) {
        if (options.unreadable == UnreadableImages::kError) {
          throw DataError(errors[k] + kSkipHint);
        }
        decoded.skipped.push_back(errors[k]);
        continue;
      }
      sink(pixels[k]);
      decoded.kept.push_back(begin + k);
    }
  }
  return decoded;
}

// A read-only view of a cache file's pixels, unmapped when the last tensor over it goes.
struct MappedCache {
  torch::Tensor pixels;
  DecodedListing decoded;
};

std::optional<MappedCache> map_cache(const fs::path& file, const std::string& key, const ImageShape& shape) {
  FileDescriptor descriptor(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!descriptor.valid()) return std::nullopt;
  struct stat status {};
  if (::fstat(descriptor.get(), &status) != 0) return std::nullopt;
  const auto size = static_cast<std::size_t>(status.st_size);
  if (size < kPixelsOffset + sizeof(std::uint64_t)) return std::nullopt;
  // Copy-on-write: a tensor written to in place never changes the file.
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, descriptor.get(), 0);
  if (base == MAP_FAILED) return std::nullopt;
  auto unmap = [size](void* mapped) { ::munmap(mapped, size); };
  std::unique_ptr<void, decltype(unmap)> mapping(base, unmap);
  const auto* bytes = static_cast<const char*>(base);
  if (std::string_view(bytes, kCacheMagic.size()) != kCacheMagic) return std::nullopt;
  std::uint64_t trailer_size = 0;
  for (int k = 7; k >= 0; --k) trailer_size = (trailer_size << 8) | static_cast<unsigned char>(bytes[size - 8 + k]);
  if (trailer_size > size - kPixelsOffset - 8) return std::nullopt;
  const auto trailer = Json::parse(std::string_view(bytes + size - 8 - trailer_size, trailer_size), nullptr, false);
  if (trailer.is_discarded() || !trailer.is_object()) return std::nullopt;
  MappedCache cache;
  try {
    if (trailer.at("fnv1a") != fmt::format("{:016x}", fnv1a(key)) || trailer.at("crc32") != crc32_of(key) ||
        trailer.at("shape") != Json{shape.channels, shape.height, shape.width}) {
      return std::nullopt;
    }
    cache.decoded.kept = trailer.at("kept").get<std::vector<std::int64_t>>();
    cache.decoded.skipped = trailer.at("skipped").get<std::vector<std::string>>();
  } catch (const Json::exception&) {
    return std::nullopt;
  }
  const auto count = static_cast<std::int64_t>(cache.decoded.kept.size());
  if (size - 8 - trailer_size - kPixelsOffset != static_cast<std::uint64_t>(count * shape.bytes())) return std::nullopt;
  void* released = mapping.release();
  cache.pixels = torch::from_blob(
      static_cast<char*>(released) + kPixelsOffset, {count, shape.channels, shape.height, shape.width},
      [released, size](void*) { ::munmap(released, size); }, torch::kUInt8);
  return cache;
}

void write_cache(const fs::path& file, const std::vector<ListedImage>& listing, const std::string& key, const ImageFolderOptions& options) {
  std::error_code error;
  fs::create_directories(file.parent_path(), error);
  if (error) throw DataError(fmt::format("{}: cannot create the image cache folder: {}", file.parent_path().string(), error.message()));
  const auto temporary = fs::path(file.string() + fmt::format(".{}.partial", ::getpid()));
  FileDescriptor descriptor(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!descriptor.valid()) throw DataError(fmt::format("{}: cannot write the image cache: {}", temporary.string(), std::strerror(errno)));
  // Whatever ends the decoding early, no partial cache stays behind.
  auto remove_partial = [](const fs::path* path) {
    std::error_code ignored;
    fs::remove(*path, ignored);
  };
  std::unique_ptr<const fs::path, decltype(remove_partial)> partial(&temporary, remove_partial);
  std::string header(kPixelsOffset, '\0');
  header.replace(0, kCacheMagic.size(), kCacheMagic);
  write_all(descriptor.get(), header.data(), header.size(), temporary);
  const auto decoded = decode_listing(listing, options, [&](const std::vector<std::uint8_t>& pixels) {
    write_all(descriptor.get(), pixels.data(), pixels.size(), temporary);
  });
  // The skip list names files as they are named on disk, which need not be UTF-8; it is read by
  // people only, so such bytes become U+FFFD rather than stopping the run.
  const auto trailer = cache_trailer(key, options.shape, decoded).dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string length(8, '\0');
  for (int k = 0; k < 8; ++k) length[k] = static_cast<char>((static_cast<std::uint64_t>(trailer.size()) >> (8 * k)) & 0xFF);
  write_all(descriptor.get(), trailer.data(), trailer.size(), temporary);
  write_all(descriptor.get(), length.data(), length.size(), temporary);
  if (::fsync(descriptor.get()) != 0)
    throw DataError(fmt::format("{}: cannot write the image cache: {}", temporary.string(), std::strerror(errno)));
  fs::rename(temporary, file, error);
  if (error) throw DataError(fmt::format("{}: cannot write the image cache: {}", file.string(), error.message()));
}

// The listing's images in one tensor, without a cache: each decoded image goes straight to its row.
MappedCache decode_into_memory(const std::vector<ListedImage>& listing, const ImageFolderOptions& options) {
  const auto& shape = options.shape;
  auto pixels = torch::empty({static_cast<std::int64_t>(listing.size()), shape.channels, shape.height, shape.width}, torch::kUInt8);
  auto* next_row = pixels.data_ptr<std::uint8_t>();
  auto decoded = decode_listing(listing, options, [&](const std::vector<std::uint8_t>& image) {
    std::memcpy(next_row, image.data(), image.size());
    next_row += image.size();
  });
  return MappedCache{pixels.narrow(0, 0, static_cast<std::int64_t>(decoded.kept.size())), std::move(decoded)};
}

// The class folders' images, classes taken in turn; `classes` gains the folders' names unless given.
std::vector<ListedImage> list_class_folders(const fs::path& root, const ImageFolderOptions& options, std::vector<std::string>& classes,
                                            std::vector<fs::path>& other_files) {
  std::map<std::int64_t, std::vector<ListedImage>> per_label;
  for (const auto& folder : class_folders(root)) {
    const auto label = class_index(folder.filename().string(), folder, classes, !options.class_names.empty());
    auto images = list_images(folder, label, other_files);
    if (images.empty() && options.class_names.empty()) {
      throw DataError(folder.string() + ": holds no .png, .jpg, .jpeg or .bmp file; every class folder needs images");
    }
    per_label[label] = std::move(images);
  }
  std::vector<std::vector<ListedImage>> per_class;
  for (auto& [label, images] : per_label) per_class.push_back(std::move(images));
  return interleave_classes(per_class);
}

void add_other_files_note(const fs::path& path, const std::vector<fs::path>& other_files, std::vector<std::string>& notes) {
  if (other_files.empty()) return;
  notes.push_back(fmt::format("{}: left out {} file(s) that are not .png, .jpg, .jpeg or .bmp images (the first: {})", path.string(),
                              other_files.size(), other_files.front().string()));
}

// The listing's images from its cache file, decoded into it first where there is none yet.
MappedCache cached_images(const fs::path& root, const std::vector<ListedImage>& listing, const ImageFolderOptions& options,
                          std::vector<std::string>& notes) {
  const auto key = cache_key(listing, options.shape);
  const auto cache_file = options.cache_dir / fmt::format("images-{:016x}.u8", fnv1a(key));
  if (auto cached = map_cache(cache_file, key, options.shape)) {
    notes.push_back(
        fmt::format("{}: {} decoded images read from the cache {}", root.string(), cached->decoded.kept.size(), cache_file.string()));
    return std::move(*cached);
  }
  const auto started = std::chrono::steady_clock::now();
  write_cache(cache_file, listing, key, options);
  auto written = map_cache(cache_file, key, options.shape);
  if (!written) throw DataError(cache_file.string() + ": the image cache just written cannot be read back");
  notes.push_back(fmt::format("{}: decoded {} images in {:.1f} s into the cache {}", root.string(), written->decoded.kept.size(),
                              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), cache_file.string()));
  return std::move(*written);
}

}  // namespace

ImageFiles load_image_files(const fs::path& path, const ImageFolderOptions& options) {
  std::vector<ListedImage> listing;
  std::vector<fs::path> other_files;
  std::error_code error;
  if (fs::is_directory(path, error)) {
    listing = list_images(path, kNoLabel, other_files);
    if (listing.empty()) throw DataError(path.string() + ": holds no .png, .jpg, .jpeg or .bmp file");
  } else {
    listing.push_back(ListedImage{path, 0, 0, kNoLabel});
  }
  ImageFiles out;
  add_other_files_note(path, other_files, out.notes);
  auto decoded = decode_into_memory(listing, options);
  if (decoded.decoded.kept.empty()) throw DataError(path.string() + ": none of its images could be read");
  out.pixels = decoded.pixels;
  for (const auto position : decoded.decoded.kept) out.files.push_back(listing[static_cast<std::size_t>(position)].file.string());
  out.skipped = std::move(decoded.decoded.skipped);
  return out;
}

ImageFolderLoad load_image_folder(const fs::path& root, const fs::path& unlabelled, const ImageFolderOptions& options) {
  ImageFolderLoad out;
  std::vector<fs::path> other_files;
  std::vector<std::string> classes = options.class_names;
  auto listing = list_class_folders(root, options, classes, other_files);
  if (options.limit && static_cast<std::int64_t>(listing.size()) > *options.limit) listing.resize(static_cast<std::size_t>(*options.limit));
  if (!unlabelled.empty()) {
    auto extra = list_images(unlabelled, kNoLabel, other_files);
    if (extra.empty()) throw DataError(unlabelled.string() + ": holds no .png, .jpg, .jpeg or .bmp file");
    listing.insert(listing.end(), extra.begin(), extra.end());
  }
  if (listing.empty()) throw DataError(root.string() + ": its class folders hold no .png, .jpg, .jpeg or .bmp file");
  add_other_files_note(root, other_files, out.notes);
  auto images = options.cache_dir.empty() ? decode_into_memory(listing, options) : cached_images(root, listing, options, out.notes);
  // A cache written with skipping on still knows the unreadable files: without skipping they fail.
  if (options.unreadable == UnreadableImages::kError && !images.decoded.skipped.empty()) {
    throw DataError(images.decoded.skipped.front() + kSkipHint);
  }
  const auto& kept = images.decoded.kept;
  if (kept.empty()) throw DataError(root.string() + ": none of its images could be read");
  auto labels = torch::empty({static_cast<std::int64_t>(kept.size())}, torch::kInt64);
  auto* label = labels.data_ptr<std::int64_t>();
  for (const auto position : kept) *label++ = listing[static_cast<std::size_t>(position)].label;
  out.data.features = images.pixels;
  out.data.labels = labels;
  out.data.class_names = classes;
  out.skipped = std::move(images.decoded.skipped);
  return out;
}

}  // namespace encore::core
