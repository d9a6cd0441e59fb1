// Reads one JSON object field by field, recording a FieldError (with the full dotted
// path) for every missing, mistyped or unknown field instead of stopping at the first.
// The domain model's parsers are built on it; so are later wire formats.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/core/clock.h"
#include "runtime/core/validation.h"

namespace mitigate {

// `present`: must be there (not null), but may be empty: a log line, a list of lines.
enum class Presence { required, present, optional };

// Limits on a JSON text that crossed a trust boundary. The depth limit matters most:
// nlohmann::json parses iteratively but copies, compares and dumps recursively, so one
// 1,000,000-deep array of 2 MB would overflow the stack of whoever touches it next.
struct JsonTextLimits {
    std::size_t max_bytes = 8u << 20;
    int max_depth = 64;
};

// Parses untrusted text: refuses it before building anything when it is larger or
// deeper than `limits` (the depth is counted in one linear pass, without recursion),
// and never throws. A key repeated within one object is refused with its path. On
// failure returns nullopt with `error` saying which limit, which key or where the syntax
// broke.
std::optional<nlohmann::json> parse_json_within(std::string_view text, const JsonTextLimits& limits,
                                                std::string& error);

class JsonObjectReader {
  public:
    // Records an error at `path` if `value` is not an object; reads then yield defaults.
    JsonObjectReader(const nlohmann::json& value, std::string path,
                     std::vector<FieldError>& errors);

    bool valid() const { return object_ != nullptr; }
    std::string path_of(std::string_view key) const;

    // A required string must be present and non-empty.
    std::string string(std::string_view key, Presence presence = Presence::required);
    std::optional<TimePoint> time(std::string_view key, Presence presence = Presence::required);
    std::optional<Duration> duration(std::string_view key, Presence presence);
    std::int64_t integer(std::string_view key, std::int64_t minimum, std::int64_t maximum,
                         std::optional<std::int64_t> default_value = std::nullopt);
    double number(std::string_view key, double minimum, double maximum);
    bool boolean(std::string_view key, bool default_value);
    // Any JSON object (free-form content such as action parameters). {} when absent.
    nlohmann::json object(std::string_view key, Presence presence);
    std::map<std::string, std::string> string_map(std::string_view key);
    std::vector<std::string> string_list(std::string_view key,
                                         Presence presence = Presence::optional);
    // The raw member for nested parsing, or nullptr (with an error when required).
    const nlohmann::json* member(std::string_view key, Presence presence);

    // Reads a string and maps it with `parse`; `expected` lists the accepted words. An
    // optional one that is absent reads as `fallback`.
    template <typename Enum, typename ParseFunction>
    Enum enumeration(std::string_view key, ParseFunction parse, Enum fallback,
                     std::string_view expected, Presence presence = Presence::required) {
        const nlohmann::json* raw = member(key, presence);
        if (raw == nullptr) {
            return fallback;
        }
        if (raw->is_string()) {
            if (auto parsed = parse(raw->template get_ref<const std::string&>())) {
                return *parsed;
            }
        }
        add_error(key, "must be one of " + std::string(expected));
        return fallback;
    }

    void add_error(std::string_view key, std::string message);

    // Reports every member that no read asked for: typos must not pass silently.
    void reject_unknown_fields();

  private:
    const nlohmann::json* object_ = nullptr;
    std::string path_;
    std::vector<FieldError>& errors_;
    std::set<std::string, std::less<>> seen_;
};

}  // namespace mitigate
