/*
 * mitigate_plugin.h: the only contract between mitigate and a provider plugin.
 *
 * A plugin is a shared object that exports one C function, mitigate_plugin_entry, and
 * runs inside a confined plugin-host process (sandbox/plugin_host): it has no network,
 * no secrets and no writable filesystem. Everything it needs from outside, it asks the
 * host for through mitigate_host_api.
 *
 * Versioning (as Falco's plugin API does it):
 *   - MITIGATE_PLUGIN_ABI_MAJOR must be equal in host and plugin; a change that is not an
 *     append bumps it.
 *   - MITIGATE_PLUGIN_ABI_MINOR grows when fields are appended to a struct below. The
 *     host accepts a plugin whose minor is at most its own, and reads a struct only up to
 *     the struct_size the other side reports: fields are never reordered or removed.
 *     A struct_size below the first version's (MITIGATE_PLUGIN_API_FIRST_SIZE,
 *     MITIGATE_HOST_API_FIRST_SIZE) is refused; a field appended later is read only when
 *     struct_size covers it (do the same with the host's table).
 *
 * Threads and reentrancy: the host calls manifest(), init() and call() from one thread,
 * one at a time, never concurrently and never from inside a host API call. A plugin
 * calls the host API only from that thread, during init() or call(); the host API is
 * not reentrant (a plugin that starts threads of its own must not use it from them).
 *
 * Text crossing the boundary is NUL-terminated UTF-8 JSON. No C++ type, exception or
 * allocation crosses it; a plugin written in C++ catches everything before returning
 * (plugins/sdk/provider.h does this for you).
 *
 * Ownership, for every buffer:
 *   - Strings passed into the plugin belong to the host and are valid only during the
 *     call that passes them.
 *   - Strings the plugin returns belong to the plugin and must stay valid until the
 *     plugin's next call of any kind (manifest() stays valid forever).
 *   - Strings the host returns from host API calls belong to the host and stay valid
 *     until the next host API call or the end of the current plugin call, whichever
 *     comes first.
 *
 * A plugin is loaded once and never unloaded: to start afresh, the host restarts the
 * plugin-host process.
 */
#ifndef MITIGATE_PLUGIN_H
#define MITIGATE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MITIGATE_PLUGIN_ABI_MAJOR 1
/* Minor 1 added the "state" operation of call() and the http egress fields
 * "signing_service" and "timeout_ms". Minor 2 added the plan's "resource",
 * "settle_margin_ms" and "steps". */
#define MITIGATE_PLUGIN_ABI_MINOR 2

/* The name of the one exported symbol. */
#define MITIGATE_PLUGIN_ENTRY_NAME "mitigate_plugin_entry"

/* Error messages are cut to this many bytes (NUL excluded) by the host. */
#define MITIGATE_PLUGIN_ERROR_MAX 1024

/* Results of init() and call(). Anything but OK leaves an explanation in last_error(). */
typedef enum mitigate_status {
    MITIGATE_OK = 0,
    MITIGATE_INVALID = 1,     /* bad target or parameters: a retry cannot help */
    MITIGATE_CONFLICT = 2,    /* the live state is not what the operation expects */
    MITIGATE_PROVIDER = 3,    /* the provider refused or failed (its code in the message) */
    MITIGATE_UNAVAILABLE = 4, /* transient: timeout, 429, 5xx; the caller may retry */
    MITIGATE_INTERNAL = 5     /* a bug in the plugin */
} mitigate_status;

/* Log levels for mitigate_host_api.log. */
typedef enum mitigate_log_level {
    MITIGATE_LOG_DEBUG = 0,
    MITIGATE_LOG_INFO = 1,
    MITIGATE_LOG_WARN = 2,
    MITIGATE_LOG_ERROR = 3
} mitigate_log_level;

/* What the host offers a plugin. Owned by the host; valid for the life of the process. */
/* NOLINTNEXTLINE(readability-identifier-naming): C names, as C callers expect */
typedef struct mitigate_host_api {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size; /* sizeof(mitigate_host_api) as the host was built */

    /* Opaque; pass it back as the first argument of every function below. */
    void* host;

    /*
     * Brokered egress. request_json is one of
     *   {"kind":"http","method":"GET","url":"https://...","headers":{"name":"value"},
     *    "body":"...","credential":"profile-name",
     *    "signing_service":"ecs",   (optional, AWS SigV4 profiles: the service to sign for)
     *    "timeout_ms":5000}         (optional: shorter than the runtime's own limit)
     *   {"kind":"file_read","path":"/abs/path"}
     *   {"kind":"file_write","path":"/abs/path","content":"...","if_match":"sha256 hex"}
     *   {"kind":"sql","credential":"postgres-profile","query":"UPDATE t SET v = $1 ...",
     *    "parameters":["text", null],"timeout_ms":5000}                  (since minor 1)
     * The runtime checks the destination against the provider's configuration, adds the
     * credential itself (the plugin never sees it), does not follow redirects and caps
     * the response. On MITIGATE_OK, *response_json is
     *   {"status":200,"headers":{"lowercase-name":"value"},"body":"..."}  for http
     *   {"content":"...","etag":"sha256 hex"} / {"etag":"..."}             for files
     *   {"columns":["k"],"rows":[["text", null]],"affected":1}          for sql
     * whatever the HTTP status. Otherwise the request was refused or failed before an
     * answer, and *response_json is {"error":"why"}, with "not_sent":true when nothing
     * reached the destination (no connection) and "sqlstate" for a database error.
     */
    int32_t (*egress)(void* host, const char* request_json, const char** response_json);

    /* A line for the runtime's log, attributed to the plugin. Never log a secret: the
     * plugin has none, but a provider's response may echo one. */
    void (*log)(void* host, int32_t level, const char* message);
} mitigate_host_api;

/* What a plugin offers. Owned by the plugin; static storage. */
/* NOLINTNEXTLINE(readability-identifier-naming): C names, as C callers expect */
typedef struct mitigate_plugin_api {
    uint32_t abi_major; /* MITIGATE_PLUGIN_ABI_MAJOR as the plugin was built */
    uint32_t abi_minor;
    uint32_t struct_size; /* sizeof(mitigate_plugin_api) as the plugin was built */

    /*
     * The manifest, valid forever:
     *   {"name":"flags","version":"1.0.0","description":"...",
     *    "actions":{"set":{"description":"...","parameters":{JSON Schema},
     *                      "target":"what a target names"}},
     *    "settings":{JSON Schema of the provider's settings in mitigate.yaml},
     *    "egress":{"hosts":["api.example.com"],"credentials":["profile kinds it expects"]}}
     */
    const char* (*manifest)(void);

    /* Called once, before any call(). settings_json is the provider's `settings` object
     * from mitigate.yaml (never a secret). */
    int32_t (*init)(const mitigate_host_api* host, const char* settings_json);

    /*
     * One operation of the provider contract:
     *   {"operation":"read","action":"set","target":"..."}
     *       -> {"state":{...}}
     *   {"operation":"plan","action":"set","target":"...","parameters":{...},"state":{...}}
     *       -> {"observed_state":{...},"forward":{...},"inverse":{...},
     *           "blast_radius":{"ratio":0.5,"description":"...","resulting_fraction":0.5},
     *           "idempotency_key":"...","reversible":true,
     *           "resource":"...","settle_margin_ms":60000,                 (since minor 2)
     *           "steps":[{"name":"range","fields":["min","max"]},...]}   (optional)
     *       resource: one name for what the change is made to, the same whatever the
     *          target's spelling and whichever action makes it (an ECS service as
     *          region, cluster and service; a flag as backend and key). The runtime makes
     *          one change at a time per resource. Absent: the target as spelled.
     *       settle_margin_ms: how long after a call that ended without an answer (a
     *          timeout, a crash, a transient failure) a write it sent may still take
     *          effect at the service. The runtime sends nothing more to the target, and
     *          believes no read of it, until then. Absent: 30000.
     *       steps: a change made of several writes, in order; each names the fields of
     *          forward/inverse it writes, every field in exactly one step (at most 16).
     *          The runtime then sends apply and revert once per step, with a plan whose
     *          forward holds only that step's fields (an apply's inverse also holds the
     *          later steps' fields, as preconditions: refuse with a conflict when they
     *          changed, write only what forward holds); it journals each step before
     *          sending it, reads an unsettled step back with check on that step's plan,
     *          undoes the steps done when one is refused, and reverts in reverse order,
     *          or in the order applied with "revert_order":"apply_order". Verification
     *          checks the whole plan.
     *   {"operation":"apply","action":"set","target":"...","plan":{...}}
     *       -> {"applied":true,"changed":false when it already was}   (idempotent)
     *   {"operation":"check","action":"set","target":"...","plan":{...}}
     *       -> {"applied":true|false,"state":{...}}
     *   {"operation":"revert","action":"set","target":"...","plan":{...}}
     *       -> {"reverted":true,"changed":...}; MITIGATE_CONFLICT when the live state
     *          is no longer plan.forward (someone changed it since): nothing is written.
     *   {"operation":"state","target":"..."}                        (since minor 1)
     *       -> {"state":{...}}: what a playbook's mitigate.state(provider, target) sees;
     *          read-only. MITIGATE_INVALID when the provider offers none for the target.
     * On MITIGATE_OK, *response_json is the answer, owned by the plugin.
     */
    int32_t (*call)(const char* request_json, const char** response_json);

    /* After a status other than MITIGATE_OK: why, owned by the plugin. */
    const char* (*last_error)(void);
} mitigate_plugin_api;

/* The size of each table in ABI 1.0: everything a host or plugin may rely on. */
#define MITIGATE_HOST_API_FIRST_SIZE \
    (offsetof(mitigate_host_api, log) + sizeof(void (*)(void*, int32_t, const char*)))
#define MITIGATE_PLUGIN_API_FIRST_SIZE \
    (offsetof(mitigate_plugin_api, last_error) + sizeof(const char* (*)(void)))

/* The entry point every plugin exports (with default visibility; build the rest of the
 * plugin with -fvisibility=hidden). Returns static storage; never NULL. */
typedef const mitigate_plugin_api* (*mitigate_plugin_entry_function)(void);

#ifdef __cplusplus
}
#endif

#endif /* MITIGATE_PLUGIN_H */
