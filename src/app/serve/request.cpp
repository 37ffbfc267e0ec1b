// The parts of a `vcpclip serve` request that its head does not give ready-made (see
// src/app/serve/internal.h): case-insensitive headers, the percent-decoded query, and the
// multipart/form-data field `image` of POST /v1/predict (RFC 7578).
#include <algorithm>
#include <cctype>

#include "internal.h"
#include "vcpclip/app/serve/image.h"

namespace vcpclip::app {
namespace {

bool same_name(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// application/x-www-form-urlencoded decoding ('+' is a space; a malformed %XY stays as sent).
std::string percent_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

/// The query's parameter `name` (decoded), if present.
std::optional<std::string> find_param(const std::string& query, const std::string& name) {
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const std::string item = query.substr(start, end - start);
    const size_t eq = item.find('=');
    if (percent_decode(item.substr(0, eq)) == name)
      return eq == std::string::npos ? std::string() : percent_decode(item.substr(eq + 1));
    start = end + 1;
  }
  return std::nullopt;
}

/// The value of `key` in a header's parameters (`...; key=value` or `key="value"`), or "".
std::string header_param(const std::string& header, const std::string& key) {
  size_t pos = 0;
  while ((pos = header.find(';', pos)) != std::string::npos) {
    ++pos;
    while (pos < header.size() && header[pos] == ' ') ++pos;
    const size_t eq = header.find('=', pos);
    if (eq == std::string::npos) return "";
    if (same_name(header.substr(pos, eq - pos), key)) {
      if (eq + 1 < header.size() && header[eq + 1] == '"') {
        const size_t close = header.find('"', eq + 2);
        return close == std::string::npos ? "" : header.substr(eq + 2, close - eq - 2);
      }
      const size_t end = header.find(';', eq + 1);
      return header.substr(eq + 1, end == std::string::npos ? std::string::npos : end - eq - 1);
    }
  }
  return "";
}

}  // namespace

bool HttpRequest::has_header(const std::string& name) const {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return same_name(h.first, name); });
}

std::string HttpRequest::get_header_value(const std::string& name) const {
  for (const auto& h : headers)
    if (same_name(h.first, name)) return h.second;
  return "";
}

bool HttpRequest::has_param(const std::string& name) const { return find_param(query, name).has_value(); }

std::string HttpRequest::get_param_value(const std::string& name) const { return find_param(query, name).value_or(""); }

std::optional<std::string> multipart_field(const std::string& body, const std::string& content_type,
                                           const std::string& name) {
  const std::string boundary = header_param(content_type, "boundary");
  if (boundary.empty() || boundary.size() > 200)
    throw ServeError(400, "multipart/form-data without a boundary parameter in its Content-Type");
  const std::string delimiter = "--" + boundary;
  size_t pos = body.find(delimiter);
  if (pos == std::string::npos) throw ServeError(400, "multipart/form-data body without its boundary");
  while (true) {
    pos += delimiter.size();
    if (body.compare(pos, 2, "--") == 0) return std::nullopt;  // the closing delimiter
    const size_t head_end = body.find("\r\n\r\n", pos);
    if (head_end == std::string::npos) throw ServeError(400, "multipart/form-data part without its headers' end");
    const size_t next = body.find("\r\n" + delimiter, head_end + 4);
    if (next == std::string::npos) throw ServeError(400, "multipart/form-data part without a closing boundary");
    std::string disposition;
    size_t line = body.find("\r\n", pos) + 2;
    while (line < head_end + 2) {
      const size_t eol = body.find("\r\n", line);
      const std::string text = body.substr(line, eol - line);
      const size_t colon = text.find(':');
      if (colon != std::string::npos && same_name(text.substr(0, colon), "Content-Disposition"))
        disposition = text.substr(colon + 1);
      line = eol + 2;
    }
    if (header_param(disposition, "name") == name) return body.substr(head_end + 4, next - head_end - 4);
    pos = next + 2;
  }
}

}  // namespace vcpclip::app
