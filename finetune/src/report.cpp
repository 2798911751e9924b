#include "encore/finetune/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "encore/core/config.h"
#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "encore/finetune/run_directory.h"

namespace encore::finetune {

namespace {

namespace fs = std::filesystem;
using core::Json;

// Colours of the curves: the palette embedding.png and most plotting tools start with.
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  static constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    std::uint32_t group = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) group |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) group |= static_cast<unsigned char>(bytes[i + 2]);
    out += kDigits[(group >> 18) & 63];
    out += kDigits[(group >> 12) & 63];
    out += i + 1 < bytes.size() ? kDigits[(group >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kDigits[group & 63] : '=';
  }
  return out;
}

std::string number(double value) {
  if (!std::isfinite(value)) return value > 0 ? "inf" : value < 0 ? "-inf" : "nan";
  return fmt::format("{:.4g}", value);
}

// A JSON value as a table shows it: counts as integers, measurements to 4 digits, lists of names
// and sizes as text.
std::string cell(const Json& value) {
  if (value.is_number_integer()) return value.dump();
  if (value.is_number()) return number(value.get<double>());
  if (value.is_string()) return escape(value.get<std::string>());
  if (value.is_array()) {
    std::string text;
    for (const auto& item : value) text += (text.empty() ? "" : ", ") + (item.is_string() ? item.get<std::string>() : item.dump());
    return escape(text);
  }
  return escape(value.dump());
}

std::optional<Json> read_json(const fs::path& file) {
  if (!fs::is_regular_file(file)) return std::nullopt;
  return core::parse_json_text(core::read_file(file), file.string());
}

// metrics.jsonl's epoch records, by stage in the order stages ran. A line that does not parse (the
// last one of a killed run) is counted, not shown.
struct StageCurves {
  std::vector<std::string> order;
  std::map<std::string, std::vector<Json>> records;
  int unreadable = 0;
};

StageCurves read_metrics(const fs::path& file) {
  StageCurves out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Json record;
    try {
      record = Json::parse(line);
    } catch (const Json::exception&) {
      ++out.unreadable;
      continue;
    }
    if (!record.is_object() || !record.contains("stage") || !record["stage"].is_string() || !record.contains("epoch")) continue;
    const auto stage = record["stage"].get<std::string>();
    if (!out.records.count(stage)) out.order.push_back(stage);
    out.records[stage].push_back(std::move(record));
  }
  return out;
}

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

// A line chart of `series` against epochs, as inline SVG with axes, ticks and a legend.
std::string line_chart(const std::string& title, const std::vector<Series>& series) {
  constexpr double kWidth = 400, kHeight = 250, kLeft = 72, kRight = 12, kTop = 28, kBottom = 42;
  double x_low = INFINITY, x_high = -INFINITY, y_low = INFINITY, y_high = -INFINITY;
  for (const auto& s : series) {
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      x_low = std::min(x_low, x), x_high = std::max(x_high, x), y_low = std::min(y_low, y), y_high = std::max(y_high, y);
    }
  }
  if (!std::isfinite(x_low)) return {};
  if (x_high == x_low) x_low -= 1, x_high += 1;
  const double pad = y_high > y_low ? (y_high - y_low) * 0.06 : std::max(std::abs(y_high) * 0.1, 1e-3);
  y_low -= pad, y_high += pad;
  const auto px = [&](double x) { return kLeft + (x - x_low) / (x_high - x_low) * (kWidth - kLeft - kRight); };
  const auto py = [&](double y) { return kHeight - kBottom - (y - y_low) / (y_high - y_low) * (kHeight - kTop - kBottom); };
  std::string svg = fmt::format(R"(<svg class="chart" role="img" width="{0}" height="{1}" viewBox="0 0 {0} {1}"><title>{2}</title>)",
                                kWidth, kHeight, escape(title));
  svg += fmt::format(R"(<text x="{}" y="16" class="title">{}</text>)", kLeft, escape(title));
  svg += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" class="frame"/>)", kLeft, kTop, kWidth - kLeft - kRight,
                     kHeight - kTop - kBottom);
  for (int i = 0; i <= 4; ++i) {
    const double y = y_low + (y_high - y_low) * i / 4;
    svg += fmt::format(
        R"(<line x1="{0}" x2="{1}" y1="{2:.1f}" y2="{2:.1f}" class="grid"/><text x="{3}" y="{4:.1f}" class="tick" text-anchor="end">{5}</text>)",
        kLeft, kWidth - kRight, py(y), kLeft - 4, py(y) + 4, number(y));
  }
  // Epochs are whole numbers: ticks at every epoch, or every few.
  const double x_step = std::max(1.0, std::ceil((x_high - x_low) / 6));
  for (double x = std::ceil(x_low); x <= x_high; x += x_step) {
    svg += fmt::format(R"(<text x="{:.1f}" y="{}" class="tick" text-anchor="middle">{}</text>)", px(x), kHeight - kBottom + 15, number(x));
  }
  svg += fmt::format(R"(<text x="{}" y="{}" class="axis" text-anchor="middle">epoch</text>)", (kLeft + kWidth - kRight) / 2, kHeight - 6);
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto* colour = kPalette[k % std::size(kPalette)];
    std::string path;
    for (const auto& [x, y] : series[k].points) {
      if (!std::isfinite(y)) continue;
      path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "" : " ", px(x), py(y));
      svg += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}"/>)", px(x), py(y), colour);
    }
    svg += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>)", path, colour);
    const double legend_y = kTop + 14 + 16 * static_cast<double>(k);
    svg += fmt::format(R"(<rect x="{}" y="{}" width="12" height="4" fill="{}"/><text x="{}" y="{}" class="legend">{}</text>)",
                       kWidth - kRight - 150, legend_y - 4, colour, kWidth - kRight - 134, legend_y, escape(series[k].name));
  }
  return svg + "</svg>";
}

Series series_of(const std::vector<Json>& records, const std::string& key) {
  Series s{key, {}};
  for (const auto& r : records) {
    if (r.contains(key) && r[key].is_number()) s.points.emplace_back(r["epoch"].get<double>(), r[key].get<double>());
  }
  return s;
}

// Per stage: the loss (train and validation), the other validation metrics (fractions: accuracy,
// unit activity), and the learning rate.
std::string curves_section(const StageCurves& curves) {
  if (curves.order.empty()) return "<p>metrics.jsonl holds no epochs.</p>";
  std::string html;
  if (curves.unreadable) html += fmt::format("<p class=\"warning\">{} lines of metrics.jsonl could not be read.</p>", curves.unreadable);
  for (const auto& stage : curves.order) {
    const auto& records = curves.records.at(stage);
    std::set<std::string> validation_keys;
    for (const auto& r : records) {
      for (const auto& [key, value] : r.items()) {
        if (key.rfind("val/", 0) == 0 && key != "val/loss" && key != "val/reconstruction") validation_keys.insert(key);
      }
    }
    std::vector<Series> losses;
    for (const auto* key : {"train/loss", "val/loss"}) {
      auto s = series_of(records, key);
      if (!s.points.empty()) losses.push_back(std::move(s));
    }
    std::vector<Series> metrics;
    for (const auto& key : validation_keys) metrics.push_back(series_of(records, key));
    html +=
        fmt::format("<h3>{}</h3><div class=\"charts\">{}{}{}</div>", escape(stage), line_chart(stage + ": loss", losses),
                    line_chart(stage + ": validation metrics", metrics), line_chart(stage + ": learning rate", {series_of(records, "lr")}));
  }
  return html;
}

std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string html = "<table><tr>";
  for (const auto& h : header) html += "<th>" + escape(h) + "</th>";
  html += "</tr>";
  for (const auto& row : rows) {
    html += "<tr>";
    for (const auto& c : row) html += "<td>" + c + "</td>";
    html += "</tr>";
  }
  return html + "</table>";
}

std::string data_section(const Json& summary, const std::optional<Json>& split) {
  std::vector<std::vector<std::string>> rows;
  if (summary.contains("data")) {
    for (const auto& [key, value] : summary["data"].items()) rows.push_back({escape(key), cell(value)});
  }
  if (split && split->contains("sizes")) {
    for (const auto& [key, value] : (*split)["sizes"].items()) rows.push_back({escape("split: " + key), cell(value)});
  }
  if (rows.empty()) return "<p>The run recorded no data summary.</p>";
  return table({"", ""}, rows);
}

// Pretraining stages in the order they ran.
std::string pretraining_section(const Json& summary, const StageCurves& curves) {
  std::vector<std::string> stages;
  std::set<std::string> keys;
  const auto all_stages = summary.value("stages", Json::object());
  for (const auto& stage : curves.order) {
    if (stage.rfind("pretrain/", 0) != 0 || !all_stages.contains(stage)) continue;
    stages.push_back(stage);
    const auto& metrics = all_stages[stage];
    for (const auto& [key, value] : metrics.items()) {
      if (key.rfind("val/", 0) == 0 || key == "train/loss") keys.insert(key);
    }
  }
  if (stages.empty()) return "<p>This run did not pretrain.</p>";
  std::vector<std::string> header{"stage"};
  header.insert(header.end(), keys.begin(), keys.end());
  std::vector<std::vector<std::string>> rows;
  for (const auto& stage : stages) {
    std::vector<std::string> row{escape(stage)};
    const auto& metrics = summary["stages"][stage];
    for (const auto& key : keys) row.push_back(metrics.contains(key) ? cell(metrics[key]) : "");
    rows.push_back(std::move(row));
  }
  auto html = "<p>Each stage's last epoch. dead_fraction: code units never active; saturated_fraction: units stuck near their bounds.</p>" +
              table(header, rows);
  if (summary.contains("pretrain")) {
    for (const auto& [split_name, values] : summary["pretrain"].items()) {
      html += fmt::format("<p>Reconstruction MSE per input on the {} set: {}</p>", escape(split_name),
                          values.contains("reconstruction_mse") ? cell(values["reconstruction_mse"]) : "absent");
    }
  }
  return html;
}

std::string picture(const fs::path& file, const std::string& caption) {
  if (!fs::is_regular_file(file)) return {};
  return fmt::format(R"(<figure><img alt="{0}" src="data:image/png;base64,{1}"><figcaption>{0}</figcaption></figure>)", escape(caption),
                     base64(core::read_file(file)));
}

std::string evaluation_section(const Json& summary, const fs::path& run_dir) {
  if (!summary.contains("test")) return "<p>No test evaluation: the run has no test set or no fine-tuned model.</p>";
  const auto& test = summary["test"];
  std::string html = fmt::format("<p>Test accuracy <b>{}</b>, macro-F1 {}, abstained {}.</p>", cell(test.value("accuracy", Json())),
                                 cell(test.value("macro_f1", Json())), cell(test.value("abstained", Json(0))));
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : test.value("per_class", Json::array())) {
    names.push_back(c.value("class", std::string()));
    rows.push_back({escape(names.back()), cell(c.value("precision", Json())), cell(c.value("recall", Json())), cell(c.value("f1", Json())),
                    cell(c.value("support", Json()))});
  }
  html += "<h3>Per class</h3>" + table({"class", "precision", "recall", "F1", "support"}, rows);
  const auto confusion = test.value("confusion", Json::array());
  if (!confusion.empty()) {
    html +=
        "<h3>Confusion matrix</h3><p>Rows: true class; columns: predicted class.</p><table class=\"confusion\"><tr><th>true \\ "
        "predicted</th>";
    for (const auto& n : names) html += "<th>" + escape(n) + "</th>";
    html += "</tr>";
    for (std::size_t i = 0; i < confusion.size(); ++i) {
      double total = 0;
      for (const auto& v : confusion[i]) total += v.get<double>();
      html += "<tr><th>" + escape(i < names.size() ? names[i] : std::to_string(i)) + "</th>";
      for (const auto& v : confusion[i]) {
        const double share = total > 0 ? v.get<double>() / total : 0;
        html += fmt::format(R"html(<td style="background: rgba(31, 119, 180, {:.2f})">{}</td>)html", share, v.dump());
      }
      html += "</tr>";
    }
    html += "</table>";
  }
  return html + picture(run_dir / RunDirectory::kConfusion, "confusion.png");
}

std::string load_section(const std::optional<Json>& report) {
  if (!report) return "<p>No load report: nothing was loaded into the encoder before fine-tuning.</p>";
  std::string html = "<table><tr><th>tensors</th><th>count</th><th>names</th></tr>";
  for (const auto* key : {"matched", "missing", "unexpected", "mismatched"}) {
    const auto list = report->value(key, Json::array());
    html += fmt::format("<tr><td>{}</td><td>{}</td><td><details><summary>show</summary><pre>{}</pre></details></td></tr>", key, list.size(),
                        escape(list.dump(1)));
  }
  return html + "</table>";
}

std::string timings_section(const StageCurves& curves) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& stage : curves.order) {
    double seconds = 0;
    for (const auto& r : curves.records.at(stage)) seconds += r.value("epoch_seconds", 0.0);
    const auto& last = curves.records.at(stage).back();
    rows.push_back({escape(stage), std::to_string(curves.records.at(stage).size()), number(seconds),
                    last.contains("train/samples_per_second") ? number(last["train/samples_per_second"].get<double>()) : ""});
  }
  if (rows.empty()) return "<p>No timings recorded.</p>";
  return table({"stage", "epochs", "seconds", "examples per second (last epoch)"}, rows);
}

constexpr const char* kStyle = R"(
body { font-family: "DejaVu Sans", sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
nav a { margin-right: 1em; }
section { border-top: 1px solid #ccc; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; }
pre { background: #f7f7f7; padding: 0.8em; overflow: auto; max-height: 28em; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart .frame { fill: none; stroke: #999; }
.chart .grid { stroke: #eee; }
.chart text { font-size: 11px; fill: #333; }
.chart .title { font-size: 13px; font-weight: bold; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
.warning { color: #b00; }
)";

// Marks the page for automated checks (the DOM test): images that did not decode and script errors.
constexpr const char* kSelfCheck = R"(<script>
window.addEventListener("error", function () {
  document.body.dataset.scriptErrors = String(Number(document.body.dataset.scriptErrors || 0) + 1);
});
window.addEventListener("load", function () {
  var broken = 0;
  for (var i = 0; i < document.images.length; ++i) if (!document.images[i].complete || document.images[i].naturalWidth === 0) ++broken;
  document.body.dataset.brokenImages = String(broken);
  document.body.dataset.loaded = "true";
});
</script>)";

}  // namespace

fs::path write_report(const fs::path& run_dir) {
  const auto config = read_json(run_dir / RunDirectory::kConfig);
  if (!config)
    throw core::UsageError(fmt::format("{} has no {}: it is not an encore run directory", run_dir.string(), RunDirectory::kConfig));
  const auto summary = read_json(run_dir / RunDirectory::kSummary).value_or(Json::object());
  const auto curves = read_metrics(run_dir / RunDirectory::kMetrics);
  const auto name = config->value("name", std::string("run"));
  const std::vector<std::pair<std::string, std::string>> sections = {
      {"data", data_section(summary, read_json(run_dir / RunDirectory::kSplit))},
      {"curves", curves_section(curves)},
      {"pretraining", pretraining_section(summary, curves)},
      {"pictures",
       picture(run_dir / RunDirectory::kReconstructions, "reconstructions.png: held-out examples (top) and their reconstructions") +
           picture(run_dir / RunDirectory::kFilters, "filters.png: first-layer units' input weights")},
      {"evaluation", evaluation_section(summary, run_dir)},
      {"load", load_section(read_json(run_dir / RunDirectory::kLoadReport))},
      {"timings", timings_section(curves)},
      {"config", "<pre>" + escape(config->dump(2)) + "</pre>"},
  };
  std::string html = fmt::format(R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>encore run {0}</title><style>{1}</style>{2}</head>
<body><h1>encore run {0}</h1><p>{3}</p><nav>)",
                                 escape(name), kStyle, kSelfCheck, escape(fs::absolute(run_dir).string()));
  for (const auto& [id, body] : sections) html += fmt::format(R"(<a href="#{0}">{0}</a>)", id);
  html += "</nav>";
  for (const auto& [id, body] : sections) {
    html += fmt::format(R"(<section id="{0}"><h2>{0}</h2>{1}</section>)", id, body.empty() ? "<p>None in this run.</p>" : body);
  }
  html += "</body></html>\n";
  const auto file = run_dir / RunDirectory::kReport;
  core::write_file_atomically(file, html);
  return file;
}

}  // namespace encore::finetune
