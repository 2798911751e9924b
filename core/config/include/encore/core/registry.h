#pragma once
/// Named factories with one-line descriptions (models, heads, optimizers, callbacks). Filled
/// explicitly by `register_builtins(...)` functions: static self-registration gets dropped by the
/// linker in static libraries.

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace encore::core {

/// Thrown for a name no registry entry has; the message lists the known names.
class UnknownNameError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

template <class Factory>
/// Factories by name, each with a one-line description.
class Registry {
 public:
  /// One registered name.
  struct Entry {
    /// One line for `encore list`.
    std::string description;
    /// What builds the named thing.
    Factory factory;
  };

  /// `kind` names what the registry holds, for messages ("model", "optimizer").
  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  /// Adds an entry; a name registered twice is a programming error.
  void add(const std::string& name, std::string description, Factory factory) {
    if (!entries_.emplace(name, Entry{std::move(description), std::move(factory)}).second) {
      throw std::logic_error(kind_ + " \"" + name + "\" is registered twice");
    }
  }

  /// Whether `name` is registered.
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }

  /// The entry of `name`; an unknown name is an UnknownNameError listing the known ones.
  const Entry& at(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      std::string known;
      for (const auto& [key, entry] : entries_) known += (known.empty() ? "" : ", ") + key;
      throw UnknownNameError("unknown " + kind_ + " \"" + name + "\" (known: " + known + ")");
    }
    return it->second;
  }

  /// Names in sorted order.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [key, entry] : entries_) out.push_back(key);
    return out;
  }

  /// What the registry holds ("model"), for messages.
  const std::string& kind() const { return kind_; }

 private:
  std::string kind_;
  std::map<std::string, Entry> entries_;
};

}  // namespace encore::core
