#include "encore/core/dataset.h"

#include <torch/torch.h>

#include "encore/core/errors.h"
#include "support/support.h"

using namespace encore::core;

namespace {

Dataset toy(int classes, int per_class) {
  Dataset d;
  d.features = torch::arange(classes * per_class * 4, torch::kInt64).remainder(256).to(torch::kUInt8).reshape({classes * per_class, 2, 2});
  d.labels = torch::arange(classes * per_class, torch::kInt64).remainder(classes);
  for (int c = 0; c < classes; ++c) d.class_names.push_back(std::to_string(c));
  return d;
}

}  // namespace

TEST(Scaler, UnitScalesUint8ImagesBy255) {
  const auto d = toy(2, 3);
  const auto s = Scaler::fit(Scaling::kUnit, d, torch::arange(6));
  const auto x = s.apply(d.features.narrow(0, 1, 1));
  EXPECT_EQ(x.sizes(), (std::vector<std::int64_t>{1, 4}));
  EXPECT_EQ(x.scalar_type(), torch::kFloat32);
  EXPECT_FLOAT_EQ(x[0][0].item<float>(), 4.0f / 255.0f);
}

TEST(Scaler, StandardizeUsesOnlyTheFittingRows) {
  Dataset d;
  d.features = torch::tensor({{1.f, 10.f}, {3.f, 10.f}, {100.f, -5.f}});
  d.labels = torch::tensor({0, 1, 0}, torch::kInt64);
  const auto s = Scaler::fit(Scaling::kStandardize, d, torch::tensor({0, 1}, torch::kInt64));
  const auto x = s.apply(d.features);
  EXPECT_FLOAT_EQ(x[0][0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(x[1][0].item<float>(), 1.0f);
  // A constant column maps to 0 instead of dividing by zero.
  EXPECT_FLOAT_EQ(x[0][1].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(x[2][0].item<float>(), 98.0f);
}

TEST(Split, StratifiedSplitIsDisjointProportionalAndSeeded) {
  const auto d = toy(4, 50);
  const auto all = torch::arange(200);
  const auto a = stratified_split(d.labels, all, 0.2, 7);
  const auto b = stratified_split(d.labels, all, 0.2, 7);
  const auto c = stratified_split(d.labels, all, 0.2, 8);
  EXPECT_EQ(a.second.size(0), 40);
  EXPECT_EQ(a.first.size(0), 160);
  EXPECT_TRUE(torch::equal(a.second, b.second));
  EXPECT_FALSE(torch::equal(a.second, c.second));
  for (int k = 0; k < 4; ++k) EXPECT_EQ(d.labels.index_select(0, a.second).eq(k).sum().item<std::int64_t>(), 10);
  EXPECT_EQ(std::get<0>(at::_unique(torch::cat({a.first, a.second}))).size(0), 200);
}

TEST(Split, LabelledSubsetTakesExactlyPerClass) {
  const auto d = toy(3, 20);
  const auto s = stratified_subset(d.labels, torch::arange(60), 10, d.class_names, 3);
  EXPECT_EQ(s.first.size(0), 30);
  EXPECT_EQ(s.second.size(0), 30);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(d.labels.index_select(0, s.first).eq(k).sum().item<std::int64_t>(), 10);
  EXPECT_THROW_WITH(stratified_subset(d.labels, torch::arange(60), 21, d.class_names, 3), DataError,
                    "class \"0\" has 20 training examples outside the validation split, fewer than labelled_per_class = 21");
}

TEST(BatchSource, OrderIsAPureFunctionOfSeedEpochAndPosition) {
  const auto d = toy(2, 10);
  const auto scaler = Scaler::fit(Scaling::kUnit, d, torch::arange(20));
  BatchSource one(d, torch::arange(20), scaler, 6, true, 42);
  BatchSource two(d, torch::arange(20), scaler, 6, true, 42);
  EXPECT_EQ(one.batches_per_epoch(), 4);
  EXPECT_TRUE(torch::equal(one.epoch_order(3), two.epoch_order(3)));
  EXPECT_FALSE(torch::equal(one.epoch_order(3), one.epoch_order(4)));
  const auto order = one.epoch_order(1);
  const auto batch = one.batch(order, 2);
  EXPECT_TRUE(torch::equal(batch.labels, d.labels.index_select(0, order.narrow(0, 12, 6))));
  EXPECT_EQ(one.batch(order, 3).size(), 2);
  BatchSource fixed(d, torch::arange(20), scaler, 6, false, 42);
  EXPECT_TRUE(torch::equal(fixed.epoch_order(5), torch::arange(20)));
}

TEST(BatchSource, SemiSupervisedStepsCycleTheLabelledRowsAsAPureFunctionOfTheStep) {
  const auto d = toy(2, 10);
  const auto scaler = Scaler::fit(Scaling::kUnit, d, torch::arange(20));
  // toy's first feature of row i is 4 * i / 255: the rows a batch holds can be read back.
  const auto rows_of = [](const Batch& b) { return (b.inputs.select(1, 0) * 255 / 4).round().to(torch::kInt64); };
  const BatchSource unlabelled(d, torch::arange(10, 20), scaler, 3, true, 7);
  const BatchSource labelled(d, torch::arange(0, 10), scaler, 4, true, 8);
  const auto semi = unlabelled.with_labelled(labelled);
  ASSERT_TRUE(semi.semi_supervised());
  EXPECT_FALSE(unlabelled.semi_supervised());
  // The epoch is a pass over the unlabelled rows.
  EXPECT_EQ(semi.batches_per_epoch(), 4);
  EXPECT_EQ(semi.size(), 10);
  // Five steps of 4 labelled rows run through two of the labelled set's epoch orders, end to end.
  std::vector<torch::Tensor> steps;
  for (std::int64_t step = 0; step < 5; ++step) {
    const auto batch = semi.labelled_rows(step);
    ASSERT_EQ(batch.size(), 4);
    steps.push_back(rows_of(batch));
    EXPECT_TRUE(torch::equal(batch.labels, d.labels.index_select(0, steps.back())));
    EXPECT_TRUE(torch::equal(rows_of(semi.labelled_rows(step)), steps.back())) << "step " << step << " is not a pure function of the step";
  }
  const auto stream = torch::cat(steps);
  EXPECT_TRUE(torch::equal(stream.narrow(0, 0, 10), labelled.epoch_order(0)));
  EXPECT_TRUE(torch::equal(stream.narrow(0, 10, 10), labelled.epoch_order(1)));
  // A labelled batch larger than the labelled set takes whole epochs.
  const auto large = unlabelled.with_labelled(BatchSource(d, torch::arange(0, 3), scaler, 7, true, 8));
  const auto rows = rows_of(large.labelled_rows(1));
  EXPECT_EQ(rows.size(0), 7);
  EXPECT_EQ(std::get<0>(torch::_unique(rows)).size(0), 3);
}

TEST(ScalerGather, EqualsScalingTheSelectedRows) {
  torch::manual_seed(2);
  Dataset images;
  images.features = torch::randint(0, 256, {40, 7, 3}, torch::kUInt8);
  Dataset table;
  table.features = torch::randn({40, 21});
  const auto rows = torch::tensor({39, 0, 5, 5, 17}, torch::kInt64);
  for (const auto* data : {&images, &table}) {
    for (auto scaling : {Scaling::kUnit, Scaling::kStandardize}) {
      const auto scaler = Scaler::fit(scaling, *data, torch::arange(30));
      EXPECT_TRUE(torch::allclose(scaler.gather(data->features, rows), scaler.apply(data->features.index_select(0, rows))));
    }
  }
  // Enough rows for the gather to be shared between threads.
  {
    encore::testing::IntraOpThreads threads(3);
    Dataset many;
    many.features = torch::randint(0, 256, {3000, 28, 28}, torch::kUInt8);
    const auto scaler = Scaler::fit(Scaling::kStandardize, many, torch::arange(3000));
    const auto shuffled = torch::randperm(3000);
    EXPECT_TRUE(torch::allclose(scaler.gather(many.features, shuffled), scaler.apply(many.features.index_select(0, shuffled))));
  }
  const auto scaler = Scaler::fit(Scaling::kUnit, table, torch::arange(30));
  EXPECT_THROW_WITH(scaler.gather(table.features, torch::tensor({3, 40}, torch::kInt64)), c10::Error, "row 40 is outside the 40 examples");
}
