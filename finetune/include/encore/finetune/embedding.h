#pragma once
/// Maps of learned codes: their first two principal components, drawn coloured by class.

#include <filesystem>
#include <string>
#include <vector>

#include <torch/types.h>

namespace encore::finetune {

/// The projections [N, 2] of codes [N, d] on their first two principal components (the
/// eigenvectors of the codes' covariance with the largest eigenvalues, computed in float64), each
/// component's sign fixed so that its largest loading is positive (the same codes give the same map).
/// Codes with a single feature give a second column of zeros.
torch::Tensor principal_components_2d(const torch::Tensor& codes);

/// Draws points [N, 2] as a scatter plot PNG with labelled axes and `title`: coloured by class with
/// a legend of `class_names` when `labels` [N] (int64, -1 for none) is defined, else in one colour.
void write_embedding_png(const std::filesystem::path& file, const torch::Tensor& points, const torch::Tensor& labels,
                         const std::vector<std::string>& class_names, const std::string& title);

}  // namespace encore::finetune
