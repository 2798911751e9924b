#include "encore/finetune/run_directory.h"

namespace encore::finetune {

RunDirectory::RunDirectory(std::filesystem::path path, bool writes) : path_(std::move(path)), writes_(writes) {}

void RunDirectory::create() const {
  if (writes_) core::create_run_directory(path_);
}

void RunDirectory::write_json(const char* name, const core::Json& json, int indent) const {
  if (writes_) core::write_file_atomically(file(name), json.dump(indent) + "\n");
}

void RunDirectory::write_bytes(const char* name, const std::string& bytes) const {
  if (writes_) core::write_file_atomically(file(name), bytes);
}

void RunDirectory::remove(const char* name) const {
  std::error_code ignored;
  if (writes_) std::filesystem::remove(file(name), ignored);
}

void RunDirectory::lock() {
  if (writes_) lock_ = std::make_shared<core::DirectoryLock>(path_, kLock);
}

}  // namespace encore::finetune
