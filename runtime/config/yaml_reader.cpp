#include "runtime/config/yaml_reader.h"

#include "runtime/config/yaml_cost.h"
#include "runtime/core/text_file.h"

#include <algorithm>
#include <limits>
#include <numeric>

namespace mitigate {
namespace {

std::string describe_node_type(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Null: return "nothing";
        case YAML::NodeType::Scalar: return "a scalar";
        case YAML::NodeType::Sequence: return "a list";
        case YAML::NodeType::Map: return "a mapping";
        case YAML::NodeType::Undefined: return "nothing";
    }
    return "something else";
}

bool is_plain_scalar(const YAML::Node& node) {
    return node.IsScalar() && node.Tag() == "?";
}

}  // namespace

void YamlErrors::add(const YAML::Mark& mark, std::string key, std::string message) {
    ConfigError error;
    error.file = file_;
    // yaml-cpp counts from 0 and uses -1 for "no position" (a node built in memory).
    error.line = mark.line >= 0 ? mark.line + 1 : 0;
    error.column = mark.column >= 0 ? mark.column + 1 : 0;
    error.key = std::move(key);
    error.message = std::move(message);
    errors_.push_back(std::move(error));
}

YamlMapReader::YamlMapReader(const YAML::Node& node, std::string path, YamlErrors& errors)
    : path_(std::move(path)), errors_(errors), mark_(node.Mark()) {
    if (!node.IsDefined() || node.IsNull()) {
        return;
    }
    if (!node.IsMap()) {
        errors_.add(node.Mark(), path_,
                    "must be a mapping of keys to values, not " + describe_node_type(node));
        return;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
        const YAML::Node key_node = it->first;
        if (!key_node.IsScalar()) {
            errors_.add(key_node.Mark(), path_, "keys must be plain names");
            continue;
        }
        const std::string& key = key_node.Scalar();
        if (find(key) != nullptr) {
            errors_.add(key_node.Mark(), path_of(key), "duplicate key (it is also set above)");
            continue;
        }
        entries_.push_back({key, key_node, it->second});
    }
}

std::string YamlMapReader::path_of(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

const YamlMapReader::Entry* YamlMapReader::find(std::string_view key) const {
    for (const auto& entry : entries_) {
        if (entry.key == key) {
            return &entry;
        }
    }
    return nullptr;
}

bool YamlMapReader::has(std::string_view key) const {
    return find(key) != nullptr;
}

YAML::Node YamlMapReader::get(std::string_view key, bool required) {
    known_.emplace_back(key);
    const Entry* entry = find(key);
    if (entry == nullptr || entry->value.IsNull()) {
        if (required) {
            errors_.add(entry != nullptr ? entry->key_node.Mark() : mark_, path_of(key),
                        "is required");
        }
        return YAML::Node(YAML::NodeType::Undefined);
    }
    return entry->value;
}

void YamlMapReader::error_at_key(std::string_view key, std::string message) {
    const Entry* entry = find(key);
    errors_.add(entry != nullptr ? entry->key_node.Mark() : mark_, path_of(key),
                std::move(message));
}

void YamlMapReader::error_at_value(std::string_view key, std::string message) {
    const Entry* entry = find(key);
    errors_.add(entry != nullptr ? entry->value.Mark() : mark_, path_of(key), std::move(message));
}

void YamlMapReader::error_at(const YAML::Node& node, std::string key_path, std::string message) {
    errors_.add(node.Mark(), std::move(key_path), std::move(message));
}

std::optional<std::string> YamlMapReader::string(std::string_view key, bool required) {
    const YAML::Node value = get(key, required);
    if (!value.IsDefined()) {
        return std::nullopt;
    }
    if (!value.IsScalar()) {
        error_at_value(key, "must be a string, not " + describe_node_type(value));
        return std::nullopt;
    }
    if (required && value.Scalar().empty()) {
        error_at_value(key, "must not be empty");
        return std::nullopt;
    }
    return value.Scalar();
}

std::optional<bool> YamlMapReader::boolean(std::string_view key) {
    const YAML::Node value = get(key);
    if (!value.IsDefined()) {
        return std::nullopt;
    }
    bool result = false;
    if (!is_plain_scalar(value) || !YAML::convert<bool>::decode(value, result)) {
        error_at_value(key, "must be true or false");
        return std::nullopt;
    }
    return result;
}

std::optional<std::int64_t> YamlMapReader::integer(std::string_view key, std::int64_t minimum,
                                                   std::int64_t maximum) {
    const YAML::Node value = get(key);
    if (!value.IsDefined()) {
        return std::nullopt;
    }
    std::int64_t result = 0;
    if (!is_plain_scalar(value) || !YAML::convert<std::int64_t>::decode(value, result) ||
        result < minimum || result > maximum) {
        error_at_value(key, "must be a whole number from " + std::to_string(minimum) + " to " +
                                std::to_string(maximum));
        return std::nullopt;
    }
    return result;
}

std::vector<std::string> YamlMapReader::string_list(std::string_view key) {
    std::vector<std::string> result;
    const YAML::Node value = get(key);
    if (!value.IsDefined()) {
        return result;
    }
    if (!value.IsSequence()) {
        error_at_value(key, "must be a list, not " + describe_node_type(value));
        return result;
    }
    for (std::size_t i = 0; i < value.size(); ++i) {
        const YAML::Node item = value[i];
        if (!item.IsScalar() || item.Scalar().empty()) {
            error_at(item, path_of(key) + "[" + std::to_string(i) + "]",
                     "must be a non-empty string");
            continue;
        }
        result.push_back(item.Scalar());
    }
    return result;
}

std::optional<SecretReference> YamlMapReader::secret(std::string_view key, bool required,
                                                     std::vector<SecretUse>& uses) {
    const YAML::Node value = get(key, required);
    if (!value.IsDefined()) {
        return std::nullopt;
    }
    std::optional<SecretReference> reference;
    if (value.IsScalar()) {
        reference = SecretReference::parse(value.Scalar());
    }
    if (!reference) {
        // Never echo the value: it may be a pasted secret.
        error_at_value(key,
                       "must be a secret reference, \"env:VARIABLE\" or \"file:/path\"; "
                       "secrets are never written into the configuration itself");
        return std::nullopt;
    }
    const YAML::Mark mark = value.Mark();
    uses.push_back({path_of(key), *reference, mark.line + 1, mark.column + 1});
    return reference;
}

std::vector<YamlMapReader::Entry> YamlMapReader::entries() {
    for (const auto& entry : entries_) {
        known_.push_back(entry.key);
    }
    return entries_;
}

void YamlMapReader::reject_unknown_keys() {
    for (const auto& entry : entries_) {
        if (std::find(known_.begin(), known_.end(), entry.key) != known_.end()) {
            continue;
        }
        std::string message = "unknown key";
        std::string best;
        std::size_t best_distance = std::numeric_limits<std::size_t>::max();
        for (const auto& candidate : known_) {
            const std::size_t distance = edit_distance(entry.key, candidate);
            if (distance < best_distance) {
                best_distance = distance;
                best = candidate;
            }
        }
        // Close enough to be a typo: at most 2 edits, and at most a third of the word.
        if (!best.empty() && best_distance <= 2 &&
            best_distance * 3 <= std::max(best.size(), entry.key.size())) {
            message += " (did you mean \"" + best + "\"?)";
        } else if (!known_.empty()) {
            std::vector<std::string> sorted = known_;
            std::sort(sorted.begin(), sorted.end());
            sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
            message += "; expected one of: ";
            for (std::size_t i = 0; i < sorted.size(); ++i) {
                message += (i == 0 ? "" : ", ") + sorted[i];
            }
        }
        errors_.add(entry.key_node.Mark(), path_of(entry.key), message);
    }
}

std::optional<std::string> read_operator_file(const std::filesystem::path& path,
                                              std::vector<ConfigError>& errors) {
    TextFileError problem;
    std::optional<std::string> text = read_text_file(path, text_file_max_bytes, problem);
    if (!text) {
        errors.push_back({path.string(), problem.line, problem.column, "", problem.message});
    }
    return text;
}

std::optional<YAML::Node> load_yaml(const std::string& text, YamlErrors& errors) {
    if (auto problem = yaml_cost_problem(text)) {
        errors.add(problem->mark, "", problem->message);
        return std::nullopt;
    }
    try {
        return YAML::Load(text);
    } catch (const YAML::Exception& error) {
        errors.add(error.mark, "", "not valid YAML: " + error.msg);
        return std::nullopt;
    }
}

nlohmann::json yaml_to_json(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Undefined:
        case YAML::NodeType::Null: return nullptr;
        case YAML::NodeType::Scalar: {
            if (is_plain_scalar(node)) {
                bool boolean = false;
                std::int64_t integer = 0;
                double number = 0;
                if (YAML::convert<bool>::decode(node, boolean)) {
                    return boolean;
                }
                if (YAML::convert<std::int64_t>::decode(node, integer)) {
                    return integer;
                }
                if (YAML::convert<double>::decode(node, number)) {
                    return number;
                }
            }
            return node.Scalar();
        }
        case YAML::NodeType::Sequence: {
            nlohmann::json list = nlohmann::json::array();
            for (const auto& item : node) {
                list.push_back(yaml_to_json(item));
            }
            return list;
        }
        case YAML::NodeType::Map: {
            nlohmann::json object = nlohmann::json::object();
            for (auto it = node.begin(); it != node.end(); ++it) {
                object[it->first.Scalar()] = yaml_to_json(it->second);
            }
            return object;
        }
    }
    return nullptr;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    std::iota(row.begin(), row.end(), 0);
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] =
                std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

}  // namespace mitigate
