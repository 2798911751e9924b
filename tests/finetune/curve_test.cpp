#include "encore/finetune/curve.h"

#include <torch/torch.h>

#include <sstream>

#include <fmt/format.h>

#include "encore/core/config.h"
#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "encore/finetune/experiment.h"
#include "support/support.h"

using namespace encore;

TEST(Curve, LabelBudgetsAreNumbersOrAllEachOnce) {
  EXPECT_EQ(finetune::parse_label_budgets("1,5,all"), (std::vector<finetune::LabelBudget>{1, 5, std::nullopt}));
  EXPECT_THROW_WITH(finetune::parse_label_budgets("10,ten"), core::UsageError,
                    "--labels: \"ten\" is neither a number of labels per class nor \"all\"");
  EXPECT_THROW_WITH(finetune::parse_label_budgets("0"), core::UsageError, "--labels: \"0\" must be at least 1");
  EXPECT_THROW_WITH(finetune::parse_label_budgets("5,5"), core::UsageError, "--labels: \"5\" is given twice");
  EXPECT_THROW_WITH(finetune::parse_label_budgets("5,"), core::UsageError, "--labels: \"\" is neither");
}

TEST(Curve, VariantsFollowWhatTheConfigDoes) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto json = encore::testing::toy_experiment_config(dir);
  json["finetune"] = {{"phases", {{{"name", "all"}}}}};
  const auto names = [&](const core::Json& j) {
    std::vector<std::string> out;
    for (const auto& v : finetune::curve_variants("c.json", finetune::to_json(finetune::parse_experiment(j, components), components))) {
      out.push_back(v.name);
    }
    return out;
  };
  EXPECT_EQ(names(json), (std::vector<std::string>{"fine-tuned", "from scratch", "frozen-encoder probe"}));
  json["finetune"] = {{"phases", {{{"name", "semi"}, {"semi_supervised", {{"layer_weights", {1}}}}}}}};
  EXPECT_EQ(names(json), (std::vector<std::string>{"semi-supervised", "from scratch", "frozen-encoder probe"}));
  json["pretrain"]["mode"] = "none";
  EXPECT_EQ(names(json), (std::vector<std::string>{"semi-supervised"}));
  json["finetune"] = {{"phases", {{{"name", "all"}}}}};
  EXPECT_EQ(names(json), (std::vector<std::string>{"from scratch"}));
}

TEST(Curve, EveryCellRunsOnceAndARerunReusesThemAll) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto json = encore::testing::toy_experiment_config(dir);
  json["finetune"] = {{"phases", {{{"name", "all"}, {"epochs", 3}, {"batch_size", 4}}}}};
  const auto config_file = dir / "toy.json";
  encore::testing::write_text(config_file, json.dump());
  // A second config with the same pretraining and a longer fine-tuning: its own line, the same pretraining cells.
  auto longer = json;
  longer["name"] = "toy_longer";
  longer["finetune"]["phases"][0]["epochs"] = 4;
  const auto longer_file = dir / "longer.json";
  encore::testing::write_text(longer_file, longer.dump());
  std::ostringstream log;
  finetune::CurveOptions options;
  options.more_configs = {longer_file.string()};
  options.budgets = {2, std::nullopt};
  options.seeds = 2;
  options.output_dir = dir / "curve";
  options.log = &log;
  const auto curve = finetune::run_curve(config_file.string(), {}, components, options);
  // Two pretrainings (one per seed, shared by both configs) and 2 seeds x 2 budgets x 4 lines.
  const auto lines = log.str();
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 18) << lines;
  EXPECT_NE(lines.find(fmt::format("curve [1/18] pretraining of {}, seed 1: ran in", config_file.string())), std::string::npos) << lines;
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(options.output_dir / "pretrain"), std::filesystem::directory_iterator()), 2);
  EXPECT_NE(lines.find("left"), std::string::npos) << lines;
  ASSERT_EQ(curve["variants"].size(), 4u);
  EXPECT_EQ(curve["variants"][3]["name"], "toy_longer");
  for (const auto& variant : curve["variants"]) {
    ASSERT_EQ(variant["points"].size(), 2u);
    EXPECT_EQ(variant["points"][0]["labelled_per_class"], 2.0);
    // All labels: 108 rows outside the validation split, 4 classes.
    EXPECT_EQ(variant["points"][1]["labelled_per_class"], 27.0);
    for (const auto& point : variant["points"]) {
      ASSERT_EQ(point["accuracies"].size(), 2u);
      for (const auto& a : point["accuracies"]) EXPECT_TRUE(a.get<double>() >= 0 && a.get<double>() <= 1);
    }
  }
  // The probe trained the head alone: its encoder is the seed's pretrained one, bitwise.
  EXPECT_EQ(core::load_json_file((options.output_dir / "probe/labels-2/seed-1/config.json").string())["finetune"]["phases"][0]["trainable"],
            core::Json({"head"}));
  for (const auto& pretraining : std::filesystem::directory_iterator(options.output_dir / "pretrain")) {
    EXPECT_TRUE(std::filesystem::exists(pretraining.path() / "pretrained.pt")) << pretraining.path();
  }
  EXPECT_FALSE(std::filesystem::exists(options.output_dir / "from_scratch/labels-2/seed-1/load_report.json"));
  EXPECT_TRUE(std::filesystem::exists(options.output_dir / "toy_longer/labels-2/seed-1/load_report.json"));
  EXPECT_EQ(core::load_json_file((options.output_dir / "curve.json").string()), curve);
  const auto csv = core::read_file(options.output_dir / "curve.csv");
  EXPECT_EQ(csv.rfind("variant,labels_per_class,labelled_per_class,seed,test_accuracy\nfine-tuned,2,2,1,", 0), 0u) << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 16);
  // The plot and at least 260 pixels of legend, wider for long names.
  const auto [width, height] = encore::testing::png_size(options.output_dir / "curve.png");
  EXPECT_GE(width, 990);
  EXPECT_EQ(height, 600);

  std::ostringstream again;
  options.log = &again;
  EXPECT_EQ(finetune::run_curve(config_file.string(), {}, components, options), curve);
  const auto reruns = again.str();
  EXPECT_EQ(reruns.find(": ran in"), std::string::npos) << reruns;
  EXPECT_NE(reruns.find("curve [18/18] toy_longer, all labels per class, seed 2: test accuracy"), std::string::npos) << reruns;
  EXPECT_THROW_WITH(finetune::run_curve(config_file.string(), {"/finetune/phases/0/epochs=4"}, components, options), core::UsageError,
                    "holds a finished run of another config");
  EXPECT_THROW_WITH(finetune::run_curve(config_file.string(), {"/finetune=null"}, components, options), core::ConfigError,
                    "config error at /finetune: is missing from " + config_file.string() + ": the curve fine-tunes");
}
