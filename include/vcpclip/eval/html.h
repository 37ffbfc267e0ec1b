#pragma once
// Building blocks of the HTML reports (report.html of eval, demo, ablate and predict; README
// "Reports"): one self-contained page per output folder, no network, no JavaScript framework.
//
// Every string that reaches a page goes through escape(); every file a page shows is a relative
// link (url_path) to a file inside the report's folder, so the folder can be copied or archived.
// A number shown in a page carries where it came from:
//   <td class="num" data-src="metrics.json" data-ptr="/classes/0/pixel_auroc" data-fmt="pct2">92.20</td>
// (data-src: a JSON file relative to the page; data-ptr: a JSON pointer into it; data-fmt: how
// it is written, see Format), which the browser test (tests/browser/check_report.mjs) compares
// with the file.
#include <optional>
#include <string>
#include <string_view>

namespace vcpclip::eval::html {

/// & < > " ' as entities: safe in text and in quoted attribute values.
std::string escape(std::string_view text);

/// A relative path as a URL path: every byte outside [A-Za-z0-9-._~/] percent-encoded (spaces,
/// '#', '?', non-ASCII file names), then escaped for an attribute.
std::string url_path(std::string_view relative_path);

/// How a number is written: pct2 = value × 100 with 2 decimals (the metrics.md cells), f3 / f4 =
/// the value with 3 / 4 decimals; "n/a" when undefined.
enum class Format { pct2, f3, f4 };
const char* to_string(Format f);
std::string format_number(const std::optional<double>& value, Format f);

/// A table cell (or any `tag`) holding a number of a JSON file, with its data-src / data-ptr /
/// data-fmt attributes (header comment) and a data-sort value for sortable tables.
std::string number_cell(const std::optional<double>& value, Format f, const std::string& src, const std::string& ptr,
                        const std::string& tag = "td");

/// <figure> with a lazily decoded image (relative path) and an escaped caption.
std::string figure(const std::string& relative_src, const std::string& caption, const std::string& css_class = "");

/// The whole page: doctype, UTF-8, viewport, the report style sheet, the title (escaped) as <h1>
/// under `subtitle` (escaped), `body` (already HTML), and a small vanilla script that sorts the
/// rows of every <table class="sortable"> by the clicked column (numbers by data-sort).
std::string page(const std::string& title, const std::string& subtitle, const std::string& body);

}  // namespace vcpclip::eval::html
