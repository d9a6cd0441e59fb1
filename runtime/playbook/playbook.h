// What a playbook is to the runtime: metadata it declares (what it matches, priority,
// cooldown) and the proposals it returns, both validated into core types with errors
// that name the playbook and the field. The Lua itself runs in sandbox/lua.
//
// A playbook file returns a table:
//   return {
//     name = "error-rate-after-deploy", description = "...", priority = 10, cooldown = "15m",
//     matches = { alerts = {"HighErrorRate"}, labels = {team = "web"},
//                 services = {"checkout"}, environments = {"prod"} },
//     propose = function(incident) return { {provider=..., action=..., target=...,
//                                            parameters={...}, ttl="30m", reason="..."} } end,
//   }
// docs/playbooks.md is the authoring guide.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/core/model.h"
#include "runtime/core/validation.h"
#include "sandbox/lua/lua_sandbox.h"

namespace mitigate {

struct PlaybookMatch {
    std::vector<std::string> alerts;  // alert names; empty: any
    Labels labels;                    // every one present and equal on the incident
    std::vector<std::string> services;
    std::vector<std::string> environments;
};

struct PlaybookInfo {
    std::string name;
    std::string description;
    PlaybookMatch matches;
    int priority = 0;  // higher runs first
    std::optional<Duration> cooldown;
};

// The incident as a playbook sees it (a plain table): id, title, status, name (of the
// first alert), service, environment, labels, annotations, alerts[], drill.
nlohmann::json playbook_incident(const Incident& incident, const std::vector<Signal>& signals);

// Groups signals into the incident a playbook is tested against: labels of the first
// signal give service and environment.
Incident incident_from_signals(const std::vector<Signal>& signals, TimePoint now);

bool playbook_matches(const PlaybookInfo& info, const Incident& incident,
                      const std::vector<Signal>& signals);

Parsed<PlaybookInfo> parse_playbook_info(const nlohmann::json& module);
// `result` is what propose returned: a list of proposals, or an empty table for none.
Parsed<std::vector<Action>> parse_playbook_proposals(const nlohmann::json& result,
                                                     const std::string& playbook_name);

struct PlaybookOutcome {
    std::optional<PlaybookInfo> info;
    bool matched = false;
    std::vector<Action> proposals;
    std::vector<std::string> log;
    // Set on failure: a LuaFailure name, or "invalid" for metadata or proposals that do
    // not validate.
    std::optional<std::string> failure;
    std::string message;
};

// Where and with what playbooks run.
struct PlaybookEnvironment {
    // run_sandboxed in-process, or a LuaWorker's evaluate (a confined process; what the
    // runtime and the CLI use).
    std::function<LuaOutcome(const LuaCall&, const LuaLimits&)> evaluate;
    // scripts/lib/*.lua as {name, source}: lib.<name> in every playbook.
    std::vector<std::pair<std::string, std::string>> libraries;
    LuaLimits limits;
};

// Every *.lua directly in `directory` as {path, source}, sorted. Missing directory: none.
// Each is read with the limits of every operator file (runtime/core/text_file.h); one that
// cannot be (not a regular file, unreadable, too large, not UTF-8) throws
// std::runtime_error naming it.
std::vector<std::pair<std::string, std::string>> read_lua_files(
    const std::filesystem::path& directory);

// read_lua_files, named by file stem: what PlaybookEnvironment::libraries takes.
std::vector<std::pair<std::string, std::string>> load_playbook_libraries(
    const std::filesystem::path& directory);

// scripts/playbooks/*.lua and scripts/lib/*.lua as compiled into the binary
// ({file name, source}), for the demo when no playbook directory is configured.
std::vector<std::pair<std::string, std::string>> embedded_example_playbooks();
std::vector<std::pair<std::string, std::string>> embedded_playbook_libraries();

// Reads the metadata only (no propose call). For `mitigate playbook check`.
PlaybookOutcome load_playbook(const std::string& file, const std::string& source,
                              const PlaybookEnvironment& environment);

// Reads the metadata, and if the playbook matches, calls propose(incident).
PlaybookOutcome run_playbook(const std::string& file, const std::string& source,
                             const Incident& incident, const std::vector<Signal>& signals,
                             TimePoint now, const LuaHostApi& host,
                             const PlaybookEnvironment& environment);

// run_playbook for a playbook whose metadata was already loaded (load_playbook): one
// evaluation instead of two. The runtime loads each playbook's metadata once.
PlaybookOutcome run_loaded_playbook(const PlaybookInfo& info, const std::string& file,
                                    const std::string& source, const Incident& incident,
                                    const std::vector<Signal>& signals, TimePoint now,
                                    const LuaHostApi& host, const PlaybookEnvironment& environment);

}  // namespace mitigate
