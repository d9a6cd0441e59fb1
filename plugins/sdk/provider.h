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
//
// Faults (every provider gets the same rules):
//   - Host::send() retries what is safe to retry: a request that never reached the
//     provider, 429 and 503 (refused before processing), and, for requests marked
//     idempotent (reads), any 5xx and a lost connection.
//     Backoff is exponential with full jitter, Retry-After is honoured, and the whole
//     call has a deadline; all from the settings' "retry" object (RetryPolicy).
//   - apply and revert treat a write whose outcome is unknown (the connection dropped
//     after the provider applied it, a 5xx) by reading again: the change is there ->
//     done; the old state is still there -> write again; anything else -> conflict. So a
//     retried write is never applied twice.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

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
    std::string credential;       // a credential profile of the provider's config; "" for none
    std::string signing_service;  // AWS SigV4 profiles: the service to sign for ("ecs")
    // Sending it twice has the same effect as once (a read, or a write of a value): any
    // transient failure may be retried. Otherwise only failures known to have happened
    // before the provider processed it are.
    bool idempotent = false;
};

// From the provider's settings, "retry": {"attempts": 4, "base_delay_ms": 200,
// "max_delay_ms": 5000, "deadline_ms": 20000}. The SDK takes the key out of the settings
// before the provider's own schema sees them, so every provider accepts it.
struct RetryPolicy {
    int attempts = 4;  // tries of one request, the first included
    std::chrono::milliseconds base_delay{200};
    std::chrono::milliseconds max_delay{5000};
    // For one operation (apply, revert...), every retry included; it must fit in the
    // runtime's sandbox.plugin_call_timeout_ms.
    std::chrono::milliseconds deadline{20000};
};

struct HttpResponse {
    int status = 0;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
    // The body as JSON; a provider failure naming the status when it is not JSON.
    json json_body() const;
};

// One statement on a PostgreSQL connection the runtime holds (egress kind "sql").
struct SqlRequest {
    std::string credential;                              // a postgres credential profile
    std::string query;                                   // $1, $2... for parameters
    std::vector<std::optional<std::string>> parameters;  // text form; nullopt is NULL
    bool idempotent = false;  // a read: retried after any transient failure
};

struct SqlResult {
    std::vector<std::string> columns;
    std::vector<std::vector<std::optional<std::string>>> rows;
    long long affected = 0;
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
    // One exchange, no retry.
    HttpResponse http(const HttpRequest& request) const;
    // With the retries of the RetryPolicy (see the top of this file). Returns the last
    // response, which may still be a 429 or 5xx once attempts or the deadline ran out;
    // throws Failure(MITIGATE_UNAVAILABLE) when no answer came at all.
    HttpResponse send(const HttpRequest& request) const;
    // Retried like send(); a database error throws Failure with its SQLSTATE in the
    // message (MITIGATE_UNAVAILABLE for connection loss, timeouts, serialization failures).
    SqlResult sql(const SqlRequest& request) const;
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

// One write of a change that takes several (see mitigate_plugin.h, plan's "steps").
struct PlannedStep {
    std::string name;
    std::vector<std::string> fields;  // of forward and inverse
};

struct PlannedChange {
    json forward;  // the fields apply() sets
    json inverse;  // the same fields as they are now: what revert() sets back
    // Empty: write() sets every field at once. Otherwise the runtime applies them step by
    // step, in order (and reverts in reverse order), calling write() with only one step's
    // fields each time: write() must then write only what `to` holds.
    std::vector<PlannedStep> steps;
    // The steps are reverted in the order they are applied, not in reverse.
    bool revert_in_apply_order = false;
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
    // The one name of what `target` changes, however the target is spelled and whichever
    // action changes it (the plan's "resource"): the runtime makes one change at a time
    // per resource. The default, the target as written, is right only where a target has
    // one spelling and no other action of the provider touches it.
    virtual std::string resource(const std::string& target);
    // How long after a call that ended without an answer a write it sent may still take
    // effect at the service (the plan's "settle_margin_ms"). The default is conservative.
    virtual std::chrono::milliseconds settle_margin() const;
};

class Provider {
  public:
    virtual ~Provider() = default;
    // What a playbook's mitigate.state(provider, target) sees: read-only, plain data.
    // The default offers nothing.
    virtual json state(const std::string& target);
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

// RFC 3986 percent-encoding: unreserved characters as they are, every other byte %XX.
// For a path segment, a query value or a form field.
std::string url_encode(std::string_view text);

// The retry policy in force (set by init from the settings), and the time left of the
// current operation's deadline.
const RetryPolicy& retry_policy();
std::chrono::milliseconds time_left();
// Sleeps the backoff before retry number `retry` (1 for the first), capped by
// time_left(); `at_least` is a Retry-After the provider asked for. False, without
// sleeping, when the deadline would pass first.
bool back_off(int retry, std::chrono::milliseconds at_least = std::chrono::milliseconds(0));

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
