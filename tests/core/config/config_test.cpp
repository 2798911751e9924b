#include "encore/core/config.h"
#include "encore/core/options.h"

#include "support/support.h"

using encore::core::ConfigError;
using encore::core::Json;
using encore::core::JsonReader;

namespace {

Json parse(const std::string& text) { return encore::core::parse_json_text(text, "test.json"); }

enum class Shape { kRound, kSquare };

// Options as a user declares them: each field once, with its default, description and rule.
struct WidgetOptions {
  std::vector<std::int64_t> sizes;
  double rate = 0.5;
  std::optional<double> threshold;
  Shape shape = Shape::kRound;
  bool verbose = false;

  template <class Fields>
  void fields(Fields& f) {
    f.required("sizes", sizes, "widths", encore::core::at_least(std::int64_t{1}));
    f("rate", rate, "a rate", encore::core::greater_than(0.0));
    f("threshold", threshold, "a cut-off, or null", encore::core::in_unit_interval_open_right());
    f("shape", shape, "its shape", encore::core::Choices<Shape>{{"round", Shape::kRound}, {"square", Shape::kSquare}});
    f("verbose", verbose, "talk more");
  }
  void check() const {
    if (sizes.size() > 3) throw encore::core::OptionError("sizes", "at most 3 sizes, got " + std::to_string(sizes.size()));
  }
};

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
  // Choices are lower case; a value written in capitals is the near miss it looks like.
  const Json capitals = parse(R"({"format": "CSV"})");
  JsonReader capitals_reader(capitals);
  EXPECT_THROW_WITH(capitals_reader.choice("format", {"idx", "npy", "csv"}, "idx"), ConfigError,
                    "must be one of idx, npy, csv, got \"CSV\" (did you mean \"csv\"?)");
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

TEST(Options, ReadFromJsonWithDefaultsAndWrittenBackInFull) {
  const Json j = parse(R"({"sizes": [4, 2], "shape": "square", "threshold": 0.25})");
  JsonReader r(j);
  const auto o = encore::core::read_options<WidgetOptions>(r);
  EXPECT_EQ(o.sizes, (std::vector<std::int64_t>{4, 2}));
  EXPECT_EQ(o.rate, 0.5);
  EXPECT_EQ(o.threshold, 0.25);
  EXPECT_EQ(o.shape, Shape::kSquare);
  EXPECT_EQ(encore::core::options_json(o),
            parse(R"({"sizes": [4, 2], "rate": 0.5, "threshold": 0.25, "shape": "square", "verbose": false})"));
  // The written form reads back to the same options.
  const Json written = encore::core::options_json(o);
  JsonReader again(written);
  EXPECT_EQ(encore::core::options_json(encore::core::read_options<WidgetOptions>(again)), written);
}

TEST(Options, JsonMistakesAreConfigErrorsAtTheKeysPath) {
  const auto read = [](const std::string& text) {
    const Json j = parse(text);
    JsonReader r(j, "/widget");
    return encore::core::read_options<WidgetOptions>(r);
  };
  EXPECT_THROW_WITH(read(R"({})"), ConfigError, "config error at /widget/sizes: required key is missing");
  EXPECT_THROW_WITH(read(R"({"sizes": [3, 0]})"), ConfigError, "config error at /widget/sizes: entries must be >= 1, got 0 at index 1");
  EXPECT_THROW_WITH(read(R"({"sizes": [1], "rate": 0})"), ConfigError, "config error at /widget/rate: must be > 0, got 0");
  EXPECT_THROW_WITH(read(R"({"sizes": [1], "threshold": 1})"), ConfigError, "config error at /widget/threshold: must be in [0, 1), got 1");
  EXPECT_THROW_WITH(read(R"({"sizes": [1], "shape": "oval"})"), ConfigError, "config error at /widget/shape");
  EXPECT_THROW_WITH(read(R"({"sizes": [1, 1, 1, 1]})"), ConfigError, "config error at /widget/sizes: at most 3 sizes, got 4");
  EXPECT_THROW_WITH(read(R"({"sizes": [1], "rat": 1})"), ConfigError,
                    "config error at /widget: unknown key \"rat\" (did you mean \"rate\"?)");
}

TEST(Options, ValuesSetFromCppAreCheckedNamingTheOptionAndValue) {
  WidgetOptions o;
  o.sizes = {2};
  EXPECT_NO_THROW(encore::core::check_options(o));
  o.rate = -1;
  EXPECT_THROW_WITH(encore::core::check_options(o), encore::core::OptionError, "option rate: must be > 0, got -1");
  o.rate = 1;
  o.sizes = {1, 2, 3, 4};
  EXPECT_THROW_WITH(encore::core::check_options(o), encore::core::OptionError, "option sizes: at most 3 sizes, got 4");
}

TEST(Options, DescriptionsListEveryFieldWithItsDefaultAndRule) {
  const auto fields = encore::core::describe_options<WidgetOptions>();
  ASSERT_EQ(fields.size(), 5u);
  EXPECT_EQ(fields[0].name, "sizes");
  EXPECT_EQ(fields[0].default_value, "");  // required
  EXPECT_EQ(fields[1].default_value, "0.5");
  EXPECT_EQ(fields[1].allowed, "> 0");
  EXPECT_EQ(fields[2].default_value, "null");
  EXPECT_EQ(fields[3].allowed, "round | square");
  EXPECT_EQ(fields[3].default_value, "\"round\"");
  EXPECT_EQ(fields[4].description, "talk more");
}
