#include "encore/core/config.h"

#include "support/support.h"

using encore::core::ConfigError;
using encore::core::Json;
using encore::core::JsonReader;

namespace {

Json parse(const std::string& text) { return encore::core::parse_json_text(text, "test.json"); }

}  // namespace

TEST(JsonReader, ReadsTypedValuesWithDefaults) {
  const Json j = parse(R"({"epochs": 3, "lr": 0.5, "name": "x", "flag": true, "dims": [1, 2]})");
  JsonReader r(j);
  EXPECT_EQ(r.get<int>("epochs"), 3);
  EXPECT_DOUBLE_EQ(r.get<double>("lr"), 0.5);
  EXPECT_EQ(r.get<std::string>("name"), "x");
  EXPECT_TRUE(r.get<bool>("flag"));
  EXPECT_EQ(r.get<std::vector<std::int64_t>>("dims"), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(r.get<int>("absent", 7), 7);
  EXPECT_NO_THROW(r.finish());
}

TEST(JsonReader, IntegerFieldRejectsFractionInsteadOfTruncating) {
  const Json j = parse(R"({"model": {"epochs": 1.5}})");
  JsonReader r(j);
  auto model = r.object("model");
  EXPECT_THROW_WITH(model.get<int>("epochs"), ConfigError, "config error at /model/epochs: must be an integer, got 1.5");
}

TEST(JsonReader, WrongTypeNamesPathAndValue) {
  const Json j = parse(R"({"dims": [10, "twenty"]})");
  JsonReader r(j);
  EXPECT_THROW_WITH(r.get<std::vector<std::int64_t>>("dims"), ConfigError, "at /dims/1: must be an integer, got \"twenty\"");
}

TEST(JsonReader, UnknownKeySuggestsNearMissAndListsKnownKeys) {
  const Json j = parse(R"({"hiden_dims": [3], "activation": "relu"})");
  JsonReader r(j);
  r.get<std::vector<std::int64_t>>("hidden_dims", {});
  r.get<std::string>("activation", "sigmoid");
  EXPECT_THROW_WITH(r.finish(), ConfigError, "unknown key \"hiden_dims\" (did you mean \"hidden_dims\"?) (known: activation, hidden_dims)");
}

TEST(JsonReader, MissingRequiredKeyNamesItsPath) {
  const Json j = parse(R"({"data": {}})");
  JsonReader r(j);
  auto data = r.object("data");
  EXPECT_THROW_WITH(data.get<std::string>("train_images"), ConfigError, "config error at /data/train_images: required key is missing");
}

TEST(JsonReader, RangeRuleEchoesValue) {
  const Json j = parse(R"({"lr": -0.001})");
  JsonReader r(j);
  EXPECT_THROW_WITH(r.get<double>("lr", 1.0, encore::core::greater_than(0.0)), ConfigError, "at /lr: must be > 0, got -0.001");
}

TEST(JsonReader, ChoiceListsOptionsAndNearMiss) {
  const Json j = parse(R"({"mode": "gredy"})");
  JsonReader r(j);
  EXPECT_THROW_WITH(r.choice("mode", {"greedy", "end_to_end"}, "greedy"), ConfigError,
                    "must be one of greedy, end_to_end, got \"gredy\" (did you mean \"greedy\"?)");
}

TEST(JsonText, SyntaxErrorReportsLineAndColumn) {
  EXPECT_THROW_WITH(parse("{\n  \"a\": 1,\n  \"b\": ]\n}"), ConfigError, "test.json at line 3, column 8");
}

TEST(JsonText, NestingDepthIsLimitedBeforeTheTreeIsBuilt) {
  encore::core::JsonLimits limits;
  limits.max_depth = 8;
  EXPECT_THROW_WITH(encore::core::parse_json_text(std::string(50, '[') + std::string(50, ']'), "deep.json", limits), ConfigError,
                    "nesting is deeper than the limit of 8");
}

TEST(JsonText, AKeyGivenTwiceInOneObjectIsAnErrorAtItsPath) {
  EXPECT_THROW_WITH(parse(R"({"a": [{"x": 1}, {"y": 2, "z/w": {"q": 1, "q": 2}}]})"), ConfigError,
                    "test.json: key \"q\" is given twice in one object (at /a/1/z~1w/q)");
  EXPECT_EQ(parse(R"({"a": {"q": 1}, "b": {"q": 2}, "c": [{"q": 3}, {"q": 4}]})")["c"][1]["q"], 4);
}

TEST(JsonText, MissingFileIsNamed) {
  EXPECT_THROW_WITH(encore::core::load_json_file("/nonexistent/x.json"), ConfigError,
                    "config error in /nonexistent/x.json: does not exist");
}

TEST(Override, ReplacesAnExistingValueWithJson) {
  Json j = parse(R"({"pretrain": {"epochs": 3, "name": "a"}})");
  encore::core::apply_override(j, "/pretrain/epochs=5");
  encore::core::apply_override(j, "/pretrain/name=plain text");
  EXPECT_EQ(j["pretrain"]["epochs"], 5);
  EXPECT_EQ(j["pretrain"]["name"], "plain text");
}

TEST(Override, UnknownPathIsAnErrorListingSiblings) {
  Json j = parse(R"({"pretrain": {"epochs": 3}})");
  EXPECT_THROW_WITH(encore::core::apply_override(j, "/pretrain/epocs=5"), ConfigError,
                    "/pretrain/epocs: --set path does not exist in the resolved config (keys at /pretrain: epochs)");
}

TEST(Override, MalformedAssignmentIsAnError) {
  Json j = parse(R"({"a": 1})");
  EXPECT_THROW_WITH(encore::core::apply_override(j, "a=1"), ConfigError, "--set takes /json/pointer=value");
  EXPECT_THROW_WITH(encore::core::apply_override(j, "/a=[1"), ConfigError, "--set value is not valid JSON");
}

TEST(JsonText, NumberBeyondDoubleRangeIsAConfigErrorNamingTheFile) {
  // Found by fuzzing: the parser's overflow error escaped as an uncaught exception.
  EXPECT_THROW_WITH(encore::core::parse_json_text("{\"lr\": 1e400}", "x.json"), encore::core::ConfigError,
                    "number overflow parsing '1e400'");
}

TEST(Override, NumberBeyondDoubleRangeIsAConfigError) {
  // Found by fuzzing, like the parser case above.
  Json config{{"lr", 0.1}};
  EXPECT_THROW_WITH(encore::core::apply_override(config, "/lr=1e400"), ConfigError, "--set value is not valid JSON: 1e400");
}
