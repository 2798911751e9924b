#include "encore/models/variational.h"

#include <torch/torch.h>

#include "encore/models/convolutional.h"
#include "support/support.h"

using namespace encore;

TEST(Variational, TheKlWeightWarmsUpLinearlyAndTheTermsFollowTheirFormulas) {
  const models::KlSchedule schedule{0.5, 10};
  EXPECT_DOUBLE_EQ(schedule.at(0), 0.0);
  EXPECT_DOUBLE_EQ(schedule.at(4), 0.2);
  EXPECT_DOUBLE_EQ(schedule.at(10), 0.5);
  EXPECT_DOUBLE_EQ(schedule.at(1000), 0.5);
  EXPECT_DOUBLE_EQ((models::KlSchedule{2.0, 0}.at(0)), 2.0);
  // KL(N(m, e^v) || N(0, 1)) = (m^2 + e^v - v - 1) / 2 per unit, summed over units, averaged over rows.
  EXPECT_NEAR(models::gaussian_kl(torch::zeros({4, 3}), torch::zeros({4, 3})).item<double>(), 0.0, 1e-7);
  const auto mean = torch::tensor({{1.0f, 0.0f}, {0.0f, 2.0f}});
  const auto log_variance = torch::tensor({{0.0f, std::log(2.0f)}, {0.0f, 0.0f}});
  EXPECT_NEAR(models::gaussian_kl(mean, log_variance).item<double>(), (0.5 + 0.5 * (1 - std::log(2.0)) + 2.0) / 2, 1e-6);
  // The Gaussian likelihood's cost: half the squared error, summed over inputs, averaged over rows.
  EXPECT_NEAR(models::likelihood_cost(models::ReconstructionLoss::kMse, torch::ones({2, 3}), torch::zeros({2, 3})).item<double>(), 1.5,
              1e-7);
}

TEST(Variational, ADenseModelLowersItsNegativeElboAndCountsOnlyTrainingSteps) {
  torch::manual_seed(3);
  models::VariationalAutoencoder vae(models::VariationalAutoencoderOptions(64, {32}).latent_dim(2).kl_warmup_steps(50));
  const auto x = encore::testing::square_images(32);
  EXPECT_EQ(vae->encode(x).sizes(), (std::vector<std::int64_t>{32, 2}));
  EXPECT_EQ(vae->forward(x).sizes(), x.sizes());
  EXPECT_EQ(vae->decode_latent(torch::randn({5, 2})).sizes(), (std::vector<std::int64_t>{5, 64}));
  const auto loss = models::ReconstructionLoss::kBinaryCrossEntropy;
  const auto negative_elbo = [&] {
    torch::NoGradGuard no_grad;
    vae->eval();
    torch::manual_seed(9);
    const auto objective = vae->end_to_end_objective(x, loss);
    vae->train();
    return objective.total.item<double>();
  };
  const double before = negative_elbo();
  // The first training step weighs the KL term 0: its total is the reconstruction alone.
  vae->train();
  const auto first = vae->end_to_end_objective(x, loss);
  EXPECT_EQ(first.parts.at(0).first, "reconstruction");
  EXPECT_EQ(first.parts.at(1).first, "kl");
  EXPECT_TRUE(torch::equal(first.total, first.parts.at(0).second));
  torch::optim::Adam optimizer(vae->parameters(), torch::optim::AdamOptions(0.01));
  for (int step = 0; step < 199; ++step) {
    optimizer.zero_grad();
    vae->end_to_end_objective(x, loss).total.backward();
    optimizer.step();
  }
  EXPECT_EQ(vae->named_buffers()["training_steps"].item<std::int64_t>(), 200);
  const double after = negative_elbo();
  EXPECT_EQ(vae->named_buffers()["training_steps"].item<std::int64_t>(), 200) << "evaluation is not a training step";
  EXPECT_LT(after, before * 0.6) << before << " -> " << after;
}

TEST(Variational, AConvolutionalModelIsVariationalWithADenseCode) {
  EXPECT_THROW_WITH(models::ConvolutionalAutoencoder(models::ConvolutionalAutoencoderOptions(64, {4}).variational(true)), core::OptionError,
                    "needs code_dim > 0");
  models::ConvolutionalAutoencoder vae(models::ConvolutionalAutoencoderOptions(64, {4, 6}).pooling({2}).code_dim(3).variational(true));
  EXPECT_EQ(vae->latent_dim(), 3);
  const auto x = encore::testing::square_images(5);
  EXPECT_EQ(vae->encode(x).sizes(), (std::vector<std::int64_t>{5, 3}));
  EXPECT_EQ(vae->decode_latent(torch::randn({7, 3})).sizes(), (std::vector<std::int64_t>{7, 64}));
  vae->eval();
  // Eval mode: the KL term at weight 1, and the reconstruction of the posterior mean is deterministic.
  const auto objective = vae->end_to_end_objective(x, models::ReconstructionLoss::kMse);
  EXPECT_NEAR(objective.total.item<double>(), (objective.parts[0].second + objective.parts[1].second).item<double>(), 1e-4);
  EXPECT_TRUE(torch::equal(vae->forward(x), vae->forward(x)));
  models::ConvolutionalAutoencoder plain(models::ConvolutionalAutoencoderOptions(64, {4}).code_dim(3));
  EXPECT_EQ(plain->latent_dim(), 0);
}
