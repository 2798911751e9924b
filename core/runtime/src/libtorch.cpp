#include "encore/core/libtorch.h"

#include <stdexcept>

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace encore::core::libtorch {

namespace {

#if TORCH_VERSION_MAJOR >= 2
// 2.x: one switch and one type per device kind, named by the device kind.
bool enabled(c10::DeviceType device_type) { return at::autocast::is_autocast_enabled(device_type); }
void set_enabled(c10::DeviceType device_type, bool on) { at::autocast::set_autocast_enabled(device_type, on); }
c10::ScalarType lower_precision(c10::DeviceType device_type) { return at::autocast::get_autocast_dtype(device_type); }
void set_lower_precision(c10::DeviceType device_type, c10::ScalarType dtype) { at::autocast::set_autocast_dtype(device_type, dtype); }
#else
// 1.13: a function of its own for each device kind; CUDA's carry no device in their names.
void check_supported(c10::DeviceType device_type) {
  if (device_type != c10::DeviceType::CPU && device_type != c10::DeviceType::CUDA) {
    throw std::invalid_argument("autocast covers CPU and CUDA devices with this LibTorch");
  }
}
bool enabled(c10::DeviceType device_type) {
  if (device_type == c10::DeviceType::CPU) return at::autocast::is_cpu_enabled();
  return device_type == c10::DeviceType::CUDA && at::autocast::is_enabled();
}
void set_enabled(c10::DeviceType device_type, bool on) {
  check_supported(device_type);
  device_type == c10::DeviceType::CPU ? at::autocast::set_cpu_enabled(on) : at::autocast::set_enabled(on);
}
c10::ScalarType lower_precision(c10::DeviceType device_type) {
  check_supported(device_type);
  return device_type == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void set_lower_precision(c10::DeviceType device_type, c10::ScalarType dtype) {
  check_supported(device_type);
  device_type == c10::DeviceType::CPU ? at::autocast::set_autocast_cpu_dtype(dtype) : at::autocast::set_autocast_gpu_dtype(dtype);
}
#endif

}  // namespace

bool autocast_enabled(c10::DeviceType device_type) { return enabled(device_type); }

AutocastGuard::AutocastGuard(c10::DeviceType device_type, c10::ScalarType dtype)
    : device_type_(device_type), previous_enabled_(enabled(device_type)), previous_dtype_(lower_precision(device_type)) {
  set_lower_precision(device_type_, dtype);
  set_enabled(device_type_, true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  // The casts of weights made inside the outermost region are kept for its length only.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_enabled(device_type_, previous_enabled_);
  set_lower_precision(device_type_, previous_dtype_);
}

}  // namespace encore::core::libtorch
