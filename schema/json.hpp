// JSON text for plain values: conclavectl's output and the JSON log lines.
#pragma once

#include <string>
#include <string_view>

namespace conclave {

// JSON string literal for arbitrary bytes (control and non-ASCII bytes as
// \u00XX), so the result is always valid ASCII JSON.
std::string json_string(std::string_view s);

}  // namespace conclave
