// The C++ side of plugins/sdk: write a provider as a class, let MITIGATE_PLUGIN export it
// through the C ABI of mitigate_plugin.h. The helper turns the five operations of the
// contract (read, plan, apply, check, revert) into three things an action implements:
//
//   read(target)                    -> the live state, as JSON
//   plan(target, parameters, state) -> the state to set (forward), the state to restore
//                                      (inverse, taken from `state`), a blast radius
//   write(target, from, to)         -> make the live state `to`; when the provider can,
//                                      only if it still is `from` (compare-and-set)
//
// and derives the rest so that every provider gets them right the same way:
//   apply  reads first: already `forward` -> nothing to do (idempotent); not `inverse`
//          any more -> conflict (the plan was made on a state that no longer exists).
//   check  reads and compares with `forward`.
//   revert reads first: already `inverse` -> nothing to do; not `forward` -> conflict
//          (someone changed it since; mitigate does not clobber a human's change).
// A state "matches" an expected one when every field of the expected object has the same
// value in the live one (extra live fields are ignored), unless the action overrides it.
//
// Anything thrown escapes no further than the exported functions: Failure carries its
// status, any other exception becomes MITIGATE_INTERNAL.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "plugins/sdk/mitigate_plugin.h"

namespace mitigate::plugin {

using nlohmann::json;

// An expected failure, with the status the host sees.
class Failure : public std::runtime_error {
  public:
    Failure(mitigate_status status, const std::string& message)
        : std::runtime_error(message), status_(status) {}
    mitigate_status status() const { return status_; }

  private:
    mitigate_status status_;
};

[[noreturn]] void fail_invalid(const std::string& message);
[[noreturn]] void fail_conflict(const std::string& message);
[[noreturn]] void fail_provider(const std::string& message);
[[noreturn]] void fail_unavailable(const std::string& message);

struct HttpRequest {
    std::string method = "GET";
    std::string url;
    std::map<std::string, std::string> headers;
    std::string body;
    std::string credential;  // a credential profile of the provider's config; "" for none
};

struct HttpResponse {
    int status = 0;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
    // The body as JSON; a provider failure naming the status when it is not JSON.
    json json_body() const;
};

struct FileContent {
    std::string content;
    std::string etag;  // SHA-256 of the content, for write_file's if_match
};

// What the runtime offers the plugin, wrapped. Refusals and transport failures throw
// Failure(MITIGATE_UNAVAILABLE); an HTTP error status is a response, not an exception.
class Host {
  public:
    explicit Host(const mitigate_host_api* api) : api_(api) {}
    HttpResponse http(const HttpRequest& request) const;
    FileContent read_file(const std::string& path) const;
    // Replaces the file atomically if its content still has `if_match` as etag; throws
    // Failure(MITIGATE_CONFLICT) when it changed. Returns the new etag.
    std::string write_file(const std::string& path, const std::string& content,
                           const std::string& if_match) const;
    void log(mitigate_log_level level, const std::string& message) const;

  private:
    json egress(const json& request) const;
    const mitigate_host_api* api_;
};

struct PlannedChange {
    json forward;  // the fields apply() sets
    json inverse;  // the same fields as they are now: what revert() sets back
    double blast_ratio = 0;
    std::string blast_description;
    std::optional<double> resulting_fraction;
    bool reversible = true;
};

class Action {
  public:
    virtual ~Action() = default;
    virtual json read(const std::string& target) = 0;
    virtual PlannedChange plan(const std::string& target, const json& parameters,
                               const json& state) = 0;
    virtual void write(const std::string& target, const json& from, const json& to) = 0;
    virtual bool matches(const json& live, const json& expected) const;
};

class Provider {
  public:
    virtual ~Provider() = default;
    // See mitigate_plugin_api.manifest. Parameters are validated against each action's
    // "parameters" schema before plan() sees them (json_schema.h lists what is checked).
    virtual json manifest() const = 0;
    virtual void configure(const json& settings, const Host& host) = 0;
    // nullptr for an action the manifest does not list.
    virtual Action* action(const std::string& name) = 0;
};

// Used by MITIGATE_PLUGIN; `instance` returns the one provider object of the plugin.
const mitigate_plugin_api* export_provider(Provider& (*instance)());

// The whole contract for one request, as the exported call() runs it (exposed for
// tests that drive a provider in-process).
json handle_request(Provider& provider, const json& request);

}  // namespace mitigate::plugin

// Exports `ProviderType` (default-constructible, derived from Provider) as the plugin.
#define MITIGATE_PLUGIN(ProviderType)                                                      \
    extern "C" __attribute__((visibility("default"))) const mitigate_plugin_api*           \
    mitigate_plugin_entry(void) {                                                          \
        return ::mitigate::plugin::export_provider([]() -> ::mitigate::plugin::Provider& { \
            static ProviderType provider;                                                  \
            return provider;                                                               \
        });                                                                                \
    }
