#include "runtime/core/json_reader.h"

#include <algorithm>
#include <set>
#include <vector>

#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

// The deepest nesting of arrays and objects in `text`, stopping early once it passes
// `limit`. Brackets inside strings do not count; escapes inside strings are skipped.
// Invalid JSON may be miscounted, which is harmless: the parser refuses it anyway.
int nesting_depth(std::string_view text, int limit) {
    int depth = 0;
    int deepest = 0;
    bool in_string = false;
    for (std::size_t index = 0; index < text.size(); ++index) {
        const char character = text[index];
        if (in_string) {
            if (character == '\\') {
                ++index;
            } else if (character == '"') {
                in_string = false;
            }
            continue;
        }
        if (character == '"') {
            in_string = true;
        } else if (character == '[' || character == '{') {
            deepest = std::max(deepest, ++depth);
            if (deepest > limit) {
                return deepest;
            }
        } else if (character == ']' || character == '}') {
            --depth;
        }
    }
    return deepest;
}

// Watches the parser's events for a key repeated within one object. nlohmann keeps the
// last value of a repeated key; a sender that wrote {"role": "viewer", "role": "admin"}
// could then mean one thing to a proxy or a log reader and another to us, so a repeated
// key is refused and named by its path ("alerts[2].labels.severity").
struct DuplicateKeyFinder {
    struct Level {
        bool object = false;
        std::set<std::string, std::less<>> keys;
        std::string key;          // the current member's key, in an object
        std::size_t element = 0;  // the current element's index, in an array
    };
    std::vector<Level> levels;
    std::optional<std::string> found;

    void see(nlohmann::json::parse_event_t event, const nlohmann::json& value) {
        using Event = nlohmann::json::parse_event_t;
        switch (event) {
            case Event::object_start:
            case Event::array_start:
                levels.push_back({event == Event::object_start, {}, {}, 0});
                break;
            case Event::key: {
                Level& level = levels.back();
                level.key = value.get<std::string>();
                if (!level.keys.insert(level.key).second && !found) {
                    found = path();
                }
                break;
            }
            case Event::object_end:
            case Event::array_end:
                levels.pop_back();
                finished_value();
                break;
            case Event::value: finished_value(); break;
        }
    }

    void finished_value() {
        if (!levels.empty() && !levels.back().object) {
            ++levels.back().element;
        }
    }

    std::string path() const {
        std::string text;
        for (const Level& level : levels) {
            if (level.object) {
                text += (text.empty() ? "" : ".") + level.key;
            } else {
                text += "[" + std::to_string(level.element) + "]";
            }
        }
        return text;
    }
};

}  // namespace

std::optional<nlohmann::json> parse_json_within(std::string_view text, const JsonTextLimits& limits,
                                                std::string& error) {
    if (text.size() > limits.max_bytes) {
        error = "the JSON text is " + std::to_string(text.size()) + " bytes, over the limit of " +
                std::to_string(limits.max_bytes);
        return std::nullopt;
    }
    if (nesting_depth(text, limits.max_depth) > limits.max_depth) {
        error = "the JSON text nests deeper than " + std::to_string(limits.max_depth) + " levels";
        return std::nullopt;
    }
    DuplicateKeyFinder duplicates;
    try {
        nlohmann::json parsed = nlohmann::json::parse(
            text, [&duplicates](int, nlohmann::json::parse_event_t event, nlohmann::json& value) {
                duplicates.see(event, value);
                return true;
            });
        if (duplicates.found) {
            error = "the key " + *duplicates.found + " appears twice";
            return std::nullopt;
        }
        return parsed;
    } catch (const nlohmann::json::exception& failure) {
        error = std::string("not valid JSON: ") + failure.what();
        return std::nullopt;
    }
}

JsonObjectReader::JsonObjectReader(const nlohmann::json& value, std::string path,
                                   std::vector<FieldError>& errors)
    : path_(std::move(path)), errors_(errors) {
    if (value.is_object()) {
        object_ = &value;
    } else {
        errors_.push_back({path_, std::string("must be an object, not ") + value.type_name()});
    }
}

std::string JsonObjectReader::path_of(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void JsonObjectReader::add_error(std::string_view key, std::string message) {
    errors_.push_back({path_of(key), std::move(message)});
}

const nlohmann::json* JsonObjectReader::member(std::string_view key, Presence presence) {
    seen_.emplace(key);
    if (object_ == nullptr) {
        return nullptr;
    }
    auto found = object_->find(key);
    if (found == object_->end() || found->is_null()) {
        if (presence != Presence::optional) {
            add_error(key, "is required");
        }
        return nullptr;
    }
    return &*found;
}

std::string JsonObjectReader::string(std::string_view key, Presence presence) {
    const nlohmann::json* raw = member(key, presence);
    if (raw == nullptr) {
        return {};
    }
    if (!raw->is_string()) {
        add_error(key, std::string("must be a string, not ") + raw->type_name());
        return {};
    }
    const auto& text = raw->get_ref<const std::string&>();
    if (presence == Presence::required && text.empty()) {
        add_error(key, "must not be empty");
    }
    return text;
}

std::optional<TimePoint> JsonObjectReader::time(std::string_view key, Presence presence) {
    const nlohmann::json* raw = member(key, presence);
    if (raw == nullptr) {
        return std::nullopt;
    }
    if (raw->is_string()) {
        if (auto parsed = parse_rfc3339(raw->get_ref<const std::string&>())) {
            return parsed;
        }
    }
    add_error(key, "must be an RFC 3339 time such as \"2026-01-31T09:30:00Z\"");
    return std::nullopt;
}

std::optional<Duration> JsonObjectReader::duration(std::string_view key, Presence presence) {
    const nlohmann::json* raw = member(key, presence);
    if (raw == nullptr) {
        return std::nullopt;
    }
    if (raw->is_string()) {
        if (auto parsed = parse_duration(raw->get_ref<const std::string&>())) {
            return parsed;
        }
    }
    add_error(key, "must be a duration such as \"90s\", \"30m\" or \"1h30m\"");
    return std::nullopt;
}

std::int64_t JsonObjectReader::integer(std::string_view key, std::int64_t minimum,
                                       std::int64_t maximum,
                                       std::optional<std::int64_t> default_value) {
    const nlohmann::json* raw =
        member(key, default_value ? Presence::optional : Presence::required);
    if (raw == nullptr) {
        return default_value.value_or(minimum);
    }
    if (!raw->is_number_integer()) {
        add_error(key, std::string("must be an integer, not ") + raw->type_name());
        return default_value.value_or(minimum);
    }
    const auto value = raw->get<std::int64_t>();
    if (value < minimum || value > maximum) {
        add_error(key,
                  "must be between " + std::to_string(minimum) + " and " + std::to_string(maximum));
    }
    return value;
}

double JsonObjectReader::number(std::string_view key, double minimum, double maximum) {
    const nlohmann::json* raw = member(key, Presence::required);
    if (raw == nullptr) {
        return minimum;
    }
    if (!raw->is_number()) {
        add_error(key, std::string("must be a number, not ") + raw->type_name());
        return minimum;
    }
    const auto value = raw->get<double>();
    if (!(value >= minimum && value <= maximum)) {
        add_error(key, "must be between " + nlohmann::json(minimum).dump() + " and " +
                           nlohmann::json(maximum).dump());
    }
    return value;
}

bool JsonObjectReader::boolean(std::string_view key, bool default_value) {
    const nlohmann::json* raw = member(key, Presence::optional);
    if (raw == nullptr) {
        return default_value;
    }
    if (!raw->is_boolean()) {
        add_error(key, std::string("must be true or false, not ") + raw->type_name());
        return default_value;
    }
    return raw->get<bool>();
}

nlohmann::json JsonObjectReader::object(std::string_view key, Presence presence) {
    const nlohmann::json* raw = member(key, presence);
    if (raw == nullptr) {
        return nlohmann::json::object();
    }
    if (!raw->is_object()) {
        add_error(key, std::string("must be an object, not ") + raw->type_name());
        return nlohmann::json::object();
    }
    return *raw;
}

std::map<std::string, std::string> JsonObjectReader::string_map(std::string_view key) {
    std::map<std::string, std::string> result;
    const nlohmann::json* raw = member(key, Presence::optional);
    if (raw == nullptr) {
        return result;
    }
    if (!raw->is_object()) {
        add_error(key, std::string("must be an object of strings, not ") + raw->type_name());
        return result;
    }
    for (const auto& [name, value] : raw->items()) {
        if (!value.is_string()) {
            errors_.push_back({path_of(key) + "." + name,
                               std::string("must be a string, not ") + value.type_name()});
            continue;
        }
        result.emplace(name, value.get<std::string>());
    }
    return result;
}

std::vector<std::string> JsonObjectReader::string_list(std::string_view key, Presence presence) {
    std::vector<std::string> result;
    const nlohmann::json* raw = member(key, presence);
    if (raw == nullptr) {
        return result;
    }
    if (!raw->is_array()) {
        add_error(key, std::string("must be a list of strings, not ") + raw->type_name());
        return result;
    }
    for (std::size_t i = 0; i < raw->size(); ++i) {
        const auto& value = (*raw)[i];
        if (!value.is_string()) {
            errors_.push_back({path_of(key) + "[" + std::to_string(i) + "]",
                               std::string("must be a string, not ") + value.type_name()});
            continue;
        }
        result.push_back(value.get<std::string>());
    }
    return result;
}

void JsonObjectReader::reject_unknown_fields() {
    if (object_ == nullptr) {
        return;
    }
    for (const auto& [name, value] : object_->items()) {
        if (!seen_.contains(name)) {
            errors_.push_back({path_of(name), "unknown field"});
        }
    }
}

}  // namespace mitigate
