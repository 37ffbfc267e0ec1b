// Building blocks of the HTML reports (see html.h).
#include "vcpclip/eval/html.h"

#include <cmath>
#include <cstdio>

namespace vcpclip::eval::html {

namespace {

constexpr const char* kStyle = R"css(
:root { --ink: #1d232b; --muted: #5b6673; --line: #d9dee4; --band: #f4f6f8; --ok: #1c7c3c; --ng: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: #fff; }
header { padding: 18px 28px 14px; background: var(--band); border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: var(--muted); }
main { padding: 8px 28px 40px; max-width: 1500px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 8px; }
h4 { font-size: 14px; margin: 14px 0 6px; color: var(--muted); }
p.note, .note { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
th { background: var(--band); font-weight: 600; font-size: 13px; vertical-align: bottom; }
td.num, th.num { text-align: right; }
td.num { white-space: nowrap; }
.scroll { overflow-x: auto; }
tr.mean td { font-weight: 600; border-top: 2px solid var(--ink); }
tbody tr:hover { background: #fafbfc; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \25B2"; font-size: 10px; }
table.sortable th[aria-sort=descending]::after { content: " \25BC"; font-size: 10px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; font-size: 13px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.badge { display: inline-block; min-width: 34px; padding: 1px 8px; border-radius: 10px; color: #fff;
         font-weight: 700; font-size: 12px; text-align: center; }
.badge.ok { background: var(--ok); }
.badge.ng { background: var(--ng); }
.warn { background: #fff4e5; border-left: 4px solid #e8a33d; padding: 6px 12px; margin: 8px 0; font-size: 13px; }
.plots { display: flex; flex-wrap: wrap; gap: 14px; }
.plots img { width: 420px; max-width: 100%; border: 1px solid var(--line); }
figure { margin: 6px 0 12px; }
figure img { display: block; max-width: 100%; border: 1px solid var(--line); image-rendering: auto; }
figure.strip img { width: 1000px; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 3px; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; align-items: start; }
.pair > div > h4 { margin-top: 0; }
img.thumb { width: 96px; height: 96px; object-fit: contain; border: 1px solid var(--line); background: #000; }
td.path { max-width: 420px; overflow-wrap: anywhere; font-size: 13px; }
.up { color: var(--ok); }
.down { color: var(--ng); }
nav.toc { font-size: 13px; margin: 6px 0; }
nav.toc a { margin-right: 12px; }
)css";

// Sorts the rows of every table.sortable by the clicked column: numbers by data-sort (missing
// values last), text otherwise; a second click reverses.
constexpr const char* kScript = R"js(
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('thead th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var desc = th.getAttribute('aria-sort') === 'ascending';
      table.querySelectorAll('thead th').forEach(function (o) { o.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var c = row.cells[col];
        var s = c.getAttribute('data-sort');
        if (s !== null) { var v = parseFloat(s); return isNaN(v) ? null : v; }
        return c.textContent.trim().toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : 1) * (desc ? -1 : 1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
)js";

}  // namespace

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
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
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string url_path(std::string_view relative_path) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : relative_path) {
    const bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '.' || c == '_' || c == '~' || c == '/';
    if (keep) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return escape(out);
}

const char* to_string(Format f) {
  switch (f) {
    case Format::pct2:
      return "pct2";
    case Format::f3:
      return "f3";
    case Format::f4:
      return "f4";
  }
  return "?";
}

std::string format_number(const std::optional<double>& value, Format f) {
  if (!value || !std::isfinite(*value)) return "n/a";
  char b[64];
  switch (f) {
    case Format::pct2:
      std::snprintf(b, sizeof b, "%.2f", std::round(*value * 100 * 100) / 100);
      break;
    case Format::f3:
      std::snprintf(b, sizeof b, "%.3f", *value);
      break;
    case Format::f4:
      std::snprintf(b, sizeof b, "%.4f", *value);
      break;
  }
  return b;
}

std::string number_cell(const std::optional<double>& value, Format f, const std::string& src, const std::string& ptr,
                        const std::string& tag) {
  std::string sort;
  if (value && std::isfinite(*value)) {
    char b[64];
    std::snprintf(b, sizeof b, "%.10g", *value);
    sort = b;
  }
  return "<" + tag + " class=\"num\" data-src=\"" + escape(src) + "\" data-ptr=\"" + escape(ptr) + "\" data-fmt=\"" +
         to_string(f) + "\" data-sort=\"" + sort + "\">" + format_number(value, f) + "</" + tag + ">";
}

std::string figure(const std::string& relative_src, const std::string& caption, const std::string& css_class) {
  return "<figure" + (css_class.empty() ? std::string() : " class=\"" + escape(css_class) + "\"") + "><img src=\"" +
         url_path(relative_src) + "\" alt=\"" + escape(caption) + "\" loading=\"eager\"><figcaption>" +
         escape(caption) + "</figcaption></figure>\n";
}

std::string page(const std::string& title, const std::string& subtitle, const std::string& body) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
         escape(title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n<header><h1>" + escape(title) +
         "</h1><p>" + escape(subtitle) + "</p></header>\n<main>\n" + body + "</main>\n<script>" + kScript +
         "</script>\n</body>\n</html>\n";
}

}  // namespace vcpclip::eval::html
