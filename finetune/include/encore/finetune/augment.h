#pragma once
/// More examples from few labels: labelled training images moved by a few pixels, mirrored and
/// partly blanked out, drawn anew at every step.

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "encore/core/fields.h"

namespace encore::finetune {

/// The `finetune.augment` section: at every step of every phase, each labelled training image is
/// moved by a whole number of pixels drawn in [-shift, shift] down and across (the edge pixels
/// repeated into the space it leaves) and, with `flip`, mirrored left to right with probability
/// 1/2, and with `cutout` a square of that side, centred on a pixel drawn uniformly (so it may
/// reach past the edges), set to 0 in every channel (DeVries and Taylor's Cutout, 2017).
/// Validation, test and unlabelled rows are never augmented (a semi-supervised phase's
/// consistency_augmented changes the unlabelled rows of its consistency cost alone).
struct AugmentConfig {
  /// Largest move in pixels along each axis (0: none).
  std::int64_t shift = 0;
  /// Mirror half of the images left to right.
  bool flip = false;
  /// Side in pixels of the square set to 0 (0: none).
  std::int64_t cutout = 0;

  /// The fields of the `finetune.augment` object (core/options.h).
  template <class Fields>
  void fields(Fields& f) {
    f("shift", shift, "largest move in pixels along each axis, drawn anew for every image at every step (0: none)",
      core::at_least(std::int64_t{0}));
    f("flip", flip, "mirror each image left to right with probability 1/2 (for classes that look alike mirrored)");
    f("cutout", cutout, "side in pixels of a square, centred anywhere in the image, set to 0 in every channel (0: none)",
      core::at_least(std::int64_t{0}));
  }
  /// Some augmentation is asked for. Throws core::OptionError.
  void check() const;
};

/// `rows` [B, D] of images of `image_shape` ([H, W] or [C, H, W], D their product), each moved,
/// mirrored and cut out as `config` says. The draws are keyed as core::masking_noise's mask is
/// (one draw of the default CPU generator, each row's place in the global batch:
/// core::BatchRowOffset), so a resumed run and data-parallel ranks draw what one uninterrupted
/// process draws.
torch::Tensor augment_images(const torch::Tensor& rows, const std::vector<std::int64_t>& image_shape, const AugmentConfig& config);

/// Throws core::ConfigError at /finetune/augment where examples of `example_shape` are not images
/// ([H, W] or [1 or 3, H, W]) or are too small for the shift or the cutout.
void check_augment_fits_data(const AugmentConfig& config, const std::vector<std::int64_t>& example_shape);

}  // namespace encore::finetune
