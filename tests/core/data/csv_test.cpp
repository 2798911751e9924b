#include "encore/core/csv.h"

#include <torch/torch.h>

#include <cmath>

#include "encore/core/dataset.h"
#include "encore/core/errors.h"
#include "support/support.h"

using encore::core::DataError;
using encore::core::parse_csv;

TEST(Csv, ParsesFeaturesAndNamedLabelColumnAnywhere) {
  const auto table = parse_csv("a,species,b\n1.5,setosa,2\n-3,\"versicolor\",+4e1\n", "iris.csv", {"species"});
  EXPECT_EQ(table.rows, 2u);
  EXPECT_EQ(table.feature_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(table.features, (std::vector<float>{1.5f, 2.f, -3.f, 40.f}));
  EXPECT_EQ(table.labels, (std::vector<std::string>{"setosa", "versicolor"}));
}

TEST(Csv, AcceptsCrlfAndTrailingBlankLines) {
  const auto table = parse_csv("x,label\r\n1,0\r\n2,1\r\n\r\n", "w.csv");
  EXPECT_EQ(table.rows, 2u);
}

TEST(Csv, RaggedRowIsRejectedWithRowAndColumn) {
  EXPECT_THROW_WITH(parse_csv("x,y,label\n1,2,0\n3,1\n", "r.csv"), DataError, "r.csv:3:3: row has 2 fields, the header has 3");
}

TEST(Csv, NonNumericCellIsRejectedWithRowAndColumn) {
  EXPECT_THROW_WITH(parse_csv("x,y,label\n1,2,0\n3,abc,1\n", "n.csv"), DataError, "n.csv:3:2: \"abc\" is not a number");
  EXPECT_THROW_WITH(parse_csv("x,y,label\n1,,0\n", "e.csv"), DataError, "e.csv:2:2: \"\" is not a number");
}

TEST(Csv, NanAndInfAreRejected) {
  EXPECT_THROW_WITH(parse_csv("x,label\nnan,0\n", "nan.csv"), DataError, "nan.csv:2:1: \"nan\" is not a finite number");
  EXPECT_THROW_WITH(parse_csv("label,x\n0,1\n1,-inf\n", "inf.csv"), DataError, "inf.csv:3:2: \"-inf\" is not a finite number");
}

TEST(Csv, NumbersBelowAFloatsRangeReadAsZeroAndAboveItAreRejected) {
  const auto table = parse_csv("x,y,label\n1e-400,-1e-50,0\n", "tiny.csv");
  EXPECT_EQ(table.features, (std::vector<float>{0.f, -0.f}));
  EXPECT_TRUE(std::signbit(table.features[1]));
  EXPECT_THROW_WITH(parse_csv("x,label\n1e39,0\n", "big.csv"), DataError, "big.csv:2:1: \"1e39\" is beyond the range of 32-bit floats");
  EXPECT_THROW_WITH(parse_csv("x,label\n1e400,0\n", "huge.csv"), DataError, "huge.csv:2:1: \"1e400\" is beyond the range");
}

TEST(Csv, MissingLabelColumnIsRejectedListingColumns) {
  EXPECT_THROW_WITH(parse_csv("x,y,class\n1,2,0\n", "m.csv"), DataError,
                    "m.csv:1:1: no label column \"label\" in the header (columns: x, y, class)");
  EXPECT_THROW_WITH(parse_csv("x;y;label\n1;2;0\n", "semicolons.csv"), DataError,
                    "semicolons.csv:1:1: no label column \"label\" in the header (columns: x;y;label); the header reads as a single "
                    "column: encore reads comma-separated values, and this file looks separated by ';'");
}

TEST(Csv, TextInAnotherEncodingThanUtf8IsRefusedAtItsRowAndColumn) {
  EXPECT_THROW_WITH(parse_csv("x,label\n1,Th\xE9\n", "latin1.csv"), DataError,
                    "latin1.csv:2:2: \"Th\" is followed by byte 0xE9, which is not UTF-8 text: save the file as UTF-8");
  EXPECT_THROW_WITH(parse_csv("x,\xE9tiquette\n1,a\n", "header.csv"), DataError, "header.csv:1:2: \"\" is followed by byte 0xE9");
  // Feature cells are numbers, and UTF-8 text passes.
  EXPECT_EQ(parse_csv("x,label\n1,Caf\xC3\xA9\n", "utf8.csv").labels, (std::vector<std::string>{"Caf\xC3\xA9"}));
}

TEST(Csv, DuplicateColumnNamesAreRejectedNamingBoth) {
  EXPECT_THROW_WITH(parse_csv("x,y,label, x \n1,2,0,3\n", "d.csv"), DataError, "d.csv:1:4: columns 1 and 4 are both named \"x\"");
}

TEST(Csv, FieldsAreQuotedAsRfc4180WritesThemAndReadBack) {
  EXPECT_EQ(encore::core::csv_field("plain"), "plain");
  EXPECT_EQ(encore::core::csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(encore::core::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  const auto table = parse_csv("x," + encore::core::csv_field("odd, \"name\"") + "\n1,0\n", "q.csv", {"odd, \"name\""});
  EXPECT_EQ(table.labels, (std::vector<std::string>{"0"}));
}

TEST(Csv, AByteOrderMarkBeforeTheHeaderIsNotPartOfTheFirstName) {
  const auto table = parse_csv("\xEF\xBB\xBFlabel,x\n0,1\n", "bom.csv");
  EXPECT_EQ(table.labels, (std::vector<std::string>{"0"}));
  EXPECT_EQ(table.feature_names, (std::vector<std::string>{"x"}));
  // Spreadsheets quote names with spaces; the mark comes before the opening quote.
  const auto quoted = parse_csv("\xEF\xBB\xBF\"a b\",label\r\n1,0\r\n", "bom_quoted.csv");
  EXPECT_EQ(quoted.feature_names, (std::vector<std::string>{"a b"}));
}

TEST(Csv, DatasetMapsTextLabelsAndKeepsTrainingClassesForTest) {
  encore::testing::TempDir dir;
  encore::testing::write_text(dir / "train.csv", "f,label\n1,b\n2,a\n3,b\n");
  encore::testing::write_text(dir / "test.csv", "f,label\n1,a\n2,c\n");
  const auto train = encore::core::load_csv_dataset((dir / "train.csv").string(), "label");
  EXPECT_EQ(train.class_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(train.labels[0].item<std::int64_t>(), 1);
  EXPECT_THROW_WITH(encore::core::load_csv_dataset((dir / "test.csv").string(), "label", {train.class_names, {}}), DataError,
                    "row 3: label \"c\" is not one of the training classes");
}

TEST(Csv, IntegerLabelsKeepNumericOrder) {
  encore::testing::TempDir dir;
  encore::testing::write_text(dir / "d.csv", "f,label\n1,10\n2,9\n3,2\n");
  const auto data = encore::core::load_csv_dataset((dir / "d.csv").string(), "label");
  EXPECT_EQ(data.class_names, (std::vector<std::string>{"2", "9", "10"}));
}

TEST(Csv, FeatureColumnsAreMatchedByNameInAnyOrderAndExtraColumnsAreListed) {
  encore::core::CsvOptions options;
  options.feature_columns = {"a", "b", "c"};
  const auto table = parse_csv("c,extra,label,a,b\n3,9,x,1,2\n6,9,y,4,5\n", "shuffled.csv", options);
  EXPECT_EQ(table.feature_names, options.feature_columns);
  EXPECT_EQ(table.features, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(table.labels, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(table.ignored_columns, (std::vector<std::string>{"extra"}));
  EXPECT_EQ(encore::core::ignored_columns_note("shuffled.csv", table.ignored_columns),
            "shuffled.csv: ignoring 1 column that the model does not use: extra");
}

TEST(Csv, AMissingFeatureColumnIsAnErrorNamingIt) {
  encore::core::CsvOptions options;
  options.feature_columns = {"a", "b", "c"};
  EXPECT_THROW_WITH(parse_csv("c,label,a\n3,x,1\n", "short.csv", options), DataError,
                    "short.csv:1:1: 1 of the 3 expected feature columns is missing: b");
  // The label column is never a feature, even when asked for by name.
  options.feature_columns = {"a", "label"};
  EXPECT_THROW_WITH(parse_csv("label,a\nx,1\n", "label.csv", options), DataError, "is missing: label");
}

TEST(Csv, ATestSetWithShuffledColumnsReadsInTheTrainingOrder) {
  encore::testing::TempDir dir;
  encore::testing::write_text(dir / "train.csv", "f,g,label\n1,10,a\n2,20,b\n");
  encore::testing::write_text(dir / "test.csv", "label,note,g,f\nb,z,30,3\n");
  const auto train = encore::core::load_csv_dataset((dir / "train.csv").string(), "label");
  EXPECT_EQ(train.feature_names, (std::vector<std::string>{"f", "g"}));
  std::vector<std::string> notes;
  const auto test = encore::core::load_csv_dataset((dir / "test.csv").string(), "label", {train.class_names, train.feature_names}, &notes);
  EXPECT_TRUE(torch::equal(test.features, torch::tensor({{3.f, 30.f}})));
  EXPECT_EQ(test.labels[0].item<std::int64_t>(), 1);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("test.csv: ignoring 1 column that the model does not use: note"), std::string::npos);
}
