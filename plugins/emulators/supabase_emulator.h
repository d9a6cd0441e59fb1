// A Supabase emulator on loopback: a PostgREST-compatible endpoint in front of a real
// PostgreSQL (the tests start one from the Debian package), for the supabase provider.
//   GET   /rest/v1/{table}?col=eq.value&select=*          -> 200 [rows]
//   PATCH /rest/v1/{table}?col=eq.value   body {"col": v}  -> 200 [rows] with
//         Prefer: return=representation, else 204; [] when no row matched
// Filters are PostgREST's `eq` (the only operator served); values are compared by
// PostgreSQL with the column's type, and the body is read with json_populate_record as
// PostgREST does. Every request needs `apikey: <key>` and `Authorization: Bearer <key>`
// with the same key (401 {"message": "Invalid API key"} otherwise). Database errors are
// PostgREST's {"code", "details", "hint", "message"} with its status mapping (23505 ->
// 409, 22P02 and 42703 -> 400, 42P01 -> 404, 42501 -> 403, 08* -> 503).
// Faults: faults() by operation "select" or "update", and /_emulator/faults.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "plugins/emulators/fault_injector.h"

namespace mitigate {

struct SupabaseEmulatorOptions {
    std::string connection;  // libpq connection string of the database behind it
    std::string service_key;
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
};

class SupabaseEmulator {
  public:
    // Connects once to check the database answers; throws std::runtime_error otherwise.
    explicit SupabaseEmulator(SupabaseEmulatorOptions options);
    ~SupabaseEmulator();
    SupabaseEmulator(const SupabaseEmulator&) = delete;
    SupabaseEmulator& operator=(const SupabaseEmulator&) = delete;

    std::string url() const;
    FaultInjector& faults();
    int updates() const;  // PATCH requests that changed at least one row

    // For offline rehearsal (`mitigate emulate supabase`): creates `table` (key text,
    // value jsonb) when it is missing and adds the flags it does not have yet.
    void seed_flags(const std::string& table, const nlohmann::json& flags);

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace mitigate
