// Reads a YAML mapping key by key with positions, for every YAML file mitigate loads
// (mitigate.yaml now; policies and drills later). Like JsonObjectReader for JSON: every
// problem is recorded with file:line:column and the dotted key, unknown and duplicate
// keys are errors, and an unknown key close to a known one gets a "did you mean".
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "runtime/config/config.h"

namespace mitigate {

class YamlErrors {
  public:
    YamlErrors(std::string file, std::vector<ConfigError>& errors)
        : file_(std::move(file)), errors_(errors) {}
    void add(const YAML::Mark& mark, std::string key, std::string message);
    const std::string& file() const { return file_; }

  private:
    std::string file_;
    std::vector<ConfigError>& errors_;
};

class YamlMapReader {
  public:
    // A null node (an empty section such as "chat:") reads as an empty mapping.
    YamlMapReader(const YAML::Node& node, std::string path, YamlErrors& errors);

    std::string path_of(std::string_view key) const;
    bool has(std::string_view key) const;

    // The value under `key`, marking the key as known. Absent: an empty node, and an
    // error when required.
    YAML::Node get(std::string_view key, bool required = false);

    std::optional<std::string> string(std::string_view key, bool required = false);
    std::optional<bool> boolean(std::string_view key);
    std::optional<std::int64_t> integer(std::string_view key, std::int64_t minimum,
                                        std::int64_t maximum);
    std::vector<std::string> string_list(std::string_view key);
    // "env:NAME" or "file:PATH"; a literal secret is refused without being echoed.
    std::optional<SecretReference> secret(std::string_view key, bool required,
                                          std::vector<SecretUse>& uses);

    // Every entry, for mappings whose keys are names (providers, users). Marks all known.
    struct Entry {
        std::string key;
        YAML::Node key_node;
        YAML::Node value;
    };
    std::vector<Entry> entries();

    void error_at_key(std::string_view key, std::string message);
    void error_at_value(std::string_view key, std::string message);
    void error_at(const YAML::Node& node, std::string key_path, std::string message);

    // Reports keys no accessor asked for, suggesting the closest known key.
    void reject_unknown_keys();

  private:
    const Entry* find(std::string_view key) const;

    std::string path_;
    YamlErrors& errors_;
    YAML::Mark mark_;
    std::vector<Entry> entries_;
    std::vector<std::string> known_;
};

// An operator's file (configuration, policy, drill, fixture) as text, read with the
// limits of runtime/core/text_file.h; nullopt, with the error appended to `errors`
// naming the file (and the line of a bad byte), when it cannot be.
std::optional<std::string> read_operator_file(const std::filesystem::path& path,
                                              std::vector<ConfigError>& errors);

// Every YAML text mitigate reads is loaded here: measured first (yaml_cost.h: an alias
// bomb or a deep nest is refused before anything is built), then parsed. nullopt, with
// the problem recorded at its position in `errors`, when it is too costly or not YAML.
std::optional<YAML::Node> load_yaml(const std::string& text, YamlErrors& errors);

// Free-form YAML (provider settings) as JSON. Plain scalars become booleans and numbers
// where they read as such; quoted scalars stay strings.
nlohmann::json yaml_to_json(const YAML::Node& node);

// Levenshtein distance, for "did you mean".
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace mitigate
