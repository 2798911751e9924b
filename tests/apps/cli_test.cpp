#include "cli.h"

#include <torch/torch.h>

#include <fstream>
#include <sstream>

#include "encore/core/config.h"
#include "support/support.h"

using encore::apps::run_cli;
using encore::core::Json;

namespace {

struct Result {
  int code;
  std::string out, err;
};

Result cli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

Json toy_config(const encore::testing::TempDir& dir) {
  auto [images, labels] = encore::testing::write_toy_idx(dir.path(), "train", 3, 20, 6, true);
  return Json{{"name", "cli"},
              {"threads", 1},
              {"data", {{"format", "idx"}, {"train_images", images.string()}, {"train_labels", labels.string()}}},
              {"model", {{"hidden_dims", {8}}}},
              {"pretrain", {{"mode", "end_to_end"}, {"end_to_end", {{"epochs", 2}}}}}};
}

std::string write_config(const encore::testing::TempDir& dir, const std::string& name, const std::string& text) {
  encore::testing::write_text(dir / name, text);
  return (dir / name).string();
}

}  // namespace

TEST(Cli, HelpAndVersionExitZero) {
  const auto help = cli({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("check"), std::string::npos);
  const auto version = cli({"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_NE(version.out.find("encore 0.1.0"), std::string::npos);
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(cli({}).code, 2);
  EXPECT_EQ(cli({"frobnicate"}).code, 2);
  EXPECT_EQ(cli({"check"}).code, 2);
}

TEST(Cli, ListShowsRegisteredComponentsWithDescriptions) {
  const auto r = cli({"list"});
  EXPECT_EQ(r.code, 0);
  for (const auto* name : {"stacked_autoencoder", "adamw", "sgd", "early_stopping", "checkpoint"}) {
    EXPECT_NE(r.out.find(name), std::string::npos) << name;
  }
  // Model and head options, from the fields their options declare.
  EXPECT_NE(r.out.find("hidden_dims          code width of each layer, from the input up (required; >= 1)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("activation           activation of every code (default \"sigmoid\"; sigmoid | relu | tanh | linear)"),
            std::string::npos);
  EXPECT_NE(r.out.find("abstain_threshold"), std::string::npos);
}

TEST(Cli, CheckPrintsTheResolvedConfig) {
  encore::testing::TempDir dir;
  const auto file = write_config(dir, "ok.json", toy_config(dir).dump());
  const auto r = cli({"check", file, "--set", "/pretrain/end_to_end/epochs=4"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto printed = Json::parse(r.out);
  EXPECT_EQ(printed["pretrain"]["end_to_end"]["epochs"], 4);
  EXPECT_EQ(printed["pretrain"]["end_to_end"]["optimizer"]["lr"], 0.001);
}

TEST(Cli, BadConfigsExitTwoNamingThePathAndWriteNothing) {
  encore::testing::TempDir dir;
  const Json good = toy_config(dir);
  auto with = [&](const std::string& pointer, const Json& value) {
    Json j = good;
    j[Json::json_pointer(pointer)] = value;
    return j.dump();
  };
  Json missing = good;
  missing["data"].erase("train_images");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {with("/pretrain/end_to_end/epochs", "three"), "config error at /pretrain/end_to_end/epochs: must be an integer, got \"three\""},
      {with("/model/hiden_dims", Json::array({4})), "unknown key \"hiden_dims\" (did you mean \"hidden_dims\"?)"},
      {missing.dump(), "config error at /data/train_images: required key is missing"},
      {with("/pretrain/end_to_end/optimizer", Json{{"lr", -0.001}}),
       "config error at /pretrain/end_to_end/optimizer/lr: must be > 0, got -0.001"},
      {"{\n  \"name\": \"x\",\n  \"seed\": 1,,\n}", "at line 3, column 13"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto file = write_config(dir, "bad" + std::to_string(i) + ".json", cases[i].first);
    const auto before = encore::testing::list_tree(dir.path());
    for (const std::string command : {"check", "run"}) {
      std::vector<std::string> args{command, file};
      if (command == "run") args.insert(args.end(), {"--output-dir", (dir / "run").string()});
      const auto r = cli(args);
      EXPECT_EQ(r.code, 2) << command << " case " << i << ": " << r.err;
      EXPECT_NE(r.err.find(cases[i].second), std::string::npos) << command << " case " << i << ": " << r.err;
      EXPECT_NE(r.err.find(file), std::string::npos) << "the message names the file: " << r.err;
      EXPECT_EQ(encore::testing::list_tree(dir.path()), before) << command << " case " << i << " wrote files";
    }
  }
}

TEST(Cli, RunWritesEveryRunDirectoryFileAndItsConfigChecksBackToItself) {
  encore::testing::TempDir dir;
  Json j = toy_config(dir);
  auto [test_images, test_labels] = encore::testing::write_toy_idx(dir.path(), "test", 3, 5, 6, false);
  j["data"]["test_images"] = test_images.string();
  j["data"]["test_labels"] = test_labels.string();
  j["model"]["hidden_dims"] = {8, 4};
  j["pretrain"] = {{"mode", "greedy_then_end_to_end"}, {"greedy", {{"epochs", 1}}}, {"end_to_end", {{"epochs", 1}}}};
  j["finetune"] = {{"phases",
                    {{{"name", "head_only"}, {"trainable", {"head"}}, {"epochs", 2}},
                     {{"name", "all"}, {"trainable", {"encoder", "head"}}, {"epochs", 2}, {"lr_decay_per_depth", 0.5}}}}};
  const auto file = write_config(dir, "ok.json", j.dump());
  const auto run_dir = dir / "out";
  const auto r = cli({"run", file, "--output-dir", run_dir.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("intra-op threads"), std::string::npos);
  EXPECT_NE(r.err.find("BLAS:"), std::string::npos);
  for (const auto* name : {"config.json", "metrics.jsonl", "split.json", "pretrained.pt", "load_report.json", "model.pt", "summary.json",
                           "reconstructions.png", "filters.png", "confusion.png", "checkpoints/latest.pt", "checkpoints/previous.pt"}) {
    EXPECT_TRUE(std::filesystem::exists(run_dir / name)) << name;
  }
  const auto summary = encore::core::load_json_file((run_dir / "summary.json").string());
  for (const auto* key : {"accuracy", "macro_f1", "per_class", "confusion"}) EXPECT_TRUE(summary["test"].contains(key)) << key;
  EXPECT_EQ(summary["test"]["confusion"].size(), 3u);
  const auto check = cli({"check", (run_dir / "config.json").string()});
  ASSERT_EQ(check.code, 0) << check.err;
  EXPECT_EQ(Json::parse(check.out), encore::core::load_json_file((run_dir / "config.json").string()));

  const auto evaluated = cli({"evaluate", run_dir.string()});
  ASSERT_EQ(evaluated.code, 0) << evaluated.err;
  EXPECT_EQ(Json::parse(evaluated.out)["test"]["accuracy"], summary["test"]["accuracy"]);

  const auto predicted = cli({"predict", "--model", (run_dir / "model.pt").string(), "--input", test_images.string(), "--output",
                              (dir / "predictions.csv").string()});
  ASSERT_EQ(predicted.code, 0) << predicted.err;
  std::ifstream csv(dir / "predictions.csv");
  std::string header, line;
  std::getline(csv, header);
  EXPECT_EQ(header, "prediction,p_0,p_1,p_2");
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 15);

  // Fine-tuning the same pretrained encoder again, from its file.
  const auto again = cli({"finetune", file, "--from", (run_dir / "pretrained.pt").string(), "--output-dir", (dir / "again").string()});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "again" / "pretrained.pt"));
  EXPECT_TRUE(std::filesystem::exists(dir / "again" / "model.pt"));
}

TEST(Cli, AVariationalRunReportsItsTestElboAndSampleDrawsFromItsPriorOrBetweenTwoExamples) {
  encore::testing::TempDir dir;
  auto config = toy_config(dir);
  auto [test_images, test_labels] = encore::testing::write_toy_idx(dir.path(), "test", 3, 5, 6, false);
  config["data"]["test_images"] = test_images.string();
  config["data"]["test_labels"] = test_labels.string();
  config["model"] = {{"type", "variational_autoencoder"}, {"hidden_dims", {8}}, {"latent_dim", 2}, {"kl_warmup_steps", 4}};
  config["pretrain"]["loss"] = "bce";
  const auto file = write_config(dir, "vae.json", config.dump());
  const auto run = (dir / "run").string();
  ASSERT_EQ(cli({"pretrain", file, "--output-dir", run}).code, 0);
  const auto bound = encore::core::load_json_file((dir / "run" / "summary.json").string())["pretrain"]["test"]["variational_bound"];
  EXPECT_GT(bound["kl"].get<double>(), 0);
  EXPECT_NEAR(bound["elbo"].get<double>(), -(bound["reconstruction"].get<double>() + bound["kl"].get<double>()), 1e-9);

  // 6 samples of 6x6 images: 3 columns, 2 rows, 1 px gaps, drawn 3x.
  const auto samples = cli({"sample", run, "--output", (dir / "samples.png").string(), "--count", "6", "--seed", "4"});
  ASSERT_EQ(samples.code, 0) << samples.err;
  EXPECT_EQ(encore::testing::png_size(dir / "samples.png"), std::make_pair(3 * (3 * 7 + 1), 3 * (2 * 7 + 1)));
  const auto between =
      cli({"sample", run, "--output", (dir / "between.png").string(), "--between", "0,2", "--input", test_images.string(), "--steps", "4"});
  ASSERT_EQ(between.code, 0) << between.err;
  EXPECT_EQ(encore::testing::png_size(dir / "between.png"), std::make_pair(3 * (4 * 7 + 1), 3 * (1 * 7 + 1)));

  const auto out_of_range =
      cli({"sample", run, "--output", (dir / "x.png").string(), "--between", "0,15", "--input", test_images.string()});
  EXPECT_EQ(out_of_range.code, 2);
  EXPECT_NE(out_of_range.err.find("has 15 examples (0 to 14)"), std::string::npos) << out_of_range.err;
  EXPECT_EQ(cli({"sample", run, "--output", (dir / "x.png").string(), "--between", "3"}).code, 2);
  EXPECT_FALSE(std::filesystem::exists(dir / "x.png"));
  // A model that is not generative is told apart.
  const auto plain_run = (dir / "plain").string();
  ASSERT_EQ(cli({"pretrain", write_config(dir, "plain.json", toy_config(dir).dump()), "--output-dir", plain_run}).code, 0);
  const auto plain = cli({"sample", plain_run, "--output", (dir / "x.png").string()});
  EXPECT_EQ(plain.code, 2);
  EXPECT_NE(plain.err.find("its model (stacked_autoencoder) is not variational"), std::string::npos) << plain.err;
}

TEST(Cli, FinetuneFromAMismatchedEncoderFailsNamingTheTensorAndShapes) {
  encore::testing::TempDir dir;
  Json j = toy_config(dir);
  j["finetune"] = {{"phases", {{{"trainable", {"head"}}, {"epochs", 1}}}}};
  const auto first = cli({"pretrain", write_config(dir, "a.json", j.dump()), "--output-dir", (dir / "a").string()});
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "a" / "model.pt"));
  j["model"]["hidden_dims"] = {5};
  const auto r = cli({"finetune", write_config(dir, "b.json", j.dump()), "--from", (dir / "a" / "pretrained.pt").string(), "--output-dir",
                      (dir / "b").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("tensor \"layer0.encoder_weight\" has shape [8, 36], the model expects [5, 36]"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "b")) << "a refused encoder leaves no run directory";
}

TEST(Cli, UnknownBlockNameIsAConfigErrorListingTheBlocks) {
  encore::testing::TempDir dir;
  Json j = toy_config(dir);
  j["finetune"] = {{"phases", {{{"trainable", {"encoder.layer3"}}}}}};
  const auto r = cli({"run", write_config(dir, "c.json", j.dump()), "--output-dir", (dir / "c").string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("config error at /finetune/phases/0/trainable/0: unknown block \"encoder.layer3\" (available: encoder, "
                       "encoder.layer0, decoder, head)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "c"));
}

TEST(Cli, NonFiniteTrainingExitsThree) {
  encore::testing::TempDir dir;
  // Features near the float limit square to infinity in the reconstruction error.
  std::string csv = "a,b,label\n";
  for (int i = 0; i < 20; ++i) csv += "3e38," + std::to_string(i) + "," + std::to_string(i % 2) + "\n";
  encore::testing::write_text(dir / "huge.csv", csv);
  Json j = {{"threads", 1},
            {"data", {{"format", "csv"}, {"train_csv", (dir / "huge.csv").string()}, {"scaling", "none"}}},
            {"model", {{"hidden_dims", {2}}, {"output_activation", "linear"}}},
            {"pretrain", {{"mode", "end_to_end"}, {"end_to_end", {{"epochs", 1}}}}}};
  const auto file = write_config(dir, "nan.json", j.dump());
  const auto r = cli({"run", file, "--output-dir", (dir / "run").string()});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("non-finite training loss"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("epoch 1, step 1"), std::string::npos) << r.err;
}

TEST(Cli, BadDataFileExitsOneNamingFileAndOffsetAndLeavesNoRunDirectory) {
  encore::testing::TempDir dir;
  Json j = toy_config(dir);
  encore::testing::write_bytes(dir / "broken.idx", encore::testing::idx_bytes(0x08, {60, 6, 6}, std::vector<unsigned char>(100, 1)));
  j["data"]["train_images"] = (dir / "broken.idx").string();
  const auto file = write_config(dir, "broken.json", j.dump());
  const auto r = cli({"run", file, "--output-dir", (dir / "run").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("broken.idx: offset 16: header promises"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "run"));
}

TEST(Cli, ARunDirectoryThatCannotBeUsedAsAskedIsAUsageErrorThatWritesNothing) {
  encore::testing::TempDir dir;
  const auto file = write_config(dir, "c.json", toy_config(dir).dump());
  std::filesystem::create_directories(dir / "taken");
  encore::testing::write_text(dir / "taken" / "notes.txt", "someone's files");
  const auto taken = cli({"run", file, "--output-dir", (dir / "taken").string()});
  EXPECT_EQ(taken.code, 2) << taken.err;
  EXPECT_NE(taken.err.find("is not empty, and one run never writes over another"), std::string::npos) << taken.err;
  EXPECT_EQ(encore::testing::list_tree(dir / "taken"), (std::vector<std::string>{"notes.txt"}));
  const auto not_a_run = cli({"run", file, "--resume", (dir / "taken").string()});
  EXPECT_EQ(not_a_run.code, 2) << not_a_run.err;
  EXPECT_NE(not_a_run.err.find("it has no config.json (is it a run directory?)"), std::string::npos) << not_a_run.err;
  const auto missing = cli({"run", file, "--resume", (dir / "nowhere").string()});
  EXPECT_EQ(missing.code, 2) << missing.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "nowhere"));
}

TEST(Cli, AModelTrainedOnAnImageFolderPredictsImageFilesByNameAndIsEvaluatedOnClassFolders) {
  encore::testing::TempDir dir;
  encore::testing::write_toy_image_folder(dir / "train", 2, 10, 6, 3);
  encore::testing::write_toy_image_folder(dir / "test", 2, 3, 6, 3);
  auto config = toy_config(dir);
  config["data"] = {{"format", "image_folder"},
                    {"train_folder", (dir / "train").string()},
                    {"test_folder", (dir / "test").string()},
                    {"height", 6},
                    {"width", 6},
                    {"cache_dir", (dir / "cache").string()}};
  config["finetune"] = {{"phases", {{{"name", "all"}, {"epochs", 2}, {"batch_size", 4}}}}};
  const auto run = (dir / "run").string();
  ASSERT_EQ(cli({"run", write_config(dir, "folder.json", config.dump()), "--output-dir", run}).code, 0);
  const auto predicted = cli({"predict", "--model", run + "/model.pt", "--input", (dir / "test" / "class1").string(), "--output", "-"});
  ASSERT_EQ(predicted.code, 0) << predicted.err;
  std::istringstream lines(predicted.out);
  std::string header, first;
  std::getline(lines, header);
  std::getline(lines, first);
  EXPECT_EQ(header, "file,prediction,p_class0,p_class1");
  EXPECT_EQ(first.rfind((dir / "test" / "class1" / "000.png").string() + ",class", 0), 0u) << first;
  EXPECT_EQ(std::count(predicted.out.begin(), predicted.out.end(), '\n'), 4);
  // The run's own test folder, evaluated again, gives the run's accuracy.
  const auto evaluated = cli({"evaluate", run});
  ASSERT_EQ(evaluated.code, 0) << evaluated.err;
  EXPECT_EQ(Json::parse(evaluated.out)["test"]["accuracy"], encore::core::load_json_file(run + "/summary.json")["test"]["accuracy"]);
  const auto labels = cli({"evaluate", run, "--data", (dir / "test").string(), "--labels", (dir / "x").string()});
  EXPECT_EQ(labels.code, 2);
  EXPECT_NE(labels.err.find("an image folder's labels are its class folders"), std::string::npos) << labels.err;
}
