// The `supabase` provider: flags in a config_flags table (maintenance_mode, kill switches,
// rate_limit_multiplier...), a row per flag with a `key` (text) and a `value` (jsonb).
// Two ways to reach it, chosen by settings.via:
//   postgrest  Supabase's REST API: GET and PATCH /rest/v1/TABLE?key=eq.K, with the
//              service key the runtime adds as apikey and bearer (credential kind
//              supabase)
//   postgres   the database itself over libpq, through the runtime's "sql" egress (a
//              postgres credential profile: the plugin never sees the password)
// Both write compare-and-set: the update's filter holds the old value as well as the key,
// so a row someone changed meanwhile is not matched and nothing is written.
//
// Action flag.set {"value": any JSON}; the target is the flag's key. State {"value": ...}.
// mitigate.state("supabase", KEY) is the same.
#include <cmath>
#include <regex>

#include "plugins/sdk/provider.h"

namespace mitigate::plugin {
namespace {

const json settings_schema = json::parse(R"json({
  "type": "object",
  "properties": {
    "via": {"enum": ["postgrest", "postgres"], "description": "default postgrest"},
    "url": {"type": "string", "minLength": 1,
            "description": "postgrest: the project URL, https://PROJECT.supabase.co"},
    "credential": {"type": "string", "minLength": 1,
                   "description": "postgrest: a supabase profile; postgres: a postgres profile"},
    "table": {"type": "string", "minLength": 1, "description": "default config_flags"}
  },
  "required": ["credential"],
  "additionalProperties": false
})json");

const json set_parameters = json::parse(R"json({
  "type": "object",
  "properties": {"value": {"description": "the flag's new value (any JSON)"}},
  "required": ["value"],
  "additionalProperties": false
})json");

class FlagTable {
  public:
    virtual ~FlagTable() = default;
    // The flag's value; fails MITIGATE_INVALID when there is no such row.
    virtual json read(const std::string& key) = 0;
    // Sets `to` where the value is still `from`; false when no row matched.
    virtual bool compare_and_set(const std::string& key, const json& from, const json& to) = 0;
    // The table, as one name for the plan's resource.
    virtual std::string where() const = 0;
    // See Action::settle_margin.
    virtual std::chrono::milliseconds settle_margin() const = 0;
};

class PostgrestTable : public FlagTable {
  public:
    PostgrestTable(const Host& host, std::string url, std::string credential,
                   const std::string& table)
        : host_(host),
          base_(std::move(url) + "/rest/v1/" + url_encode(table)),
          credential_(std::move(credential)) {}

    json read(const std::string& key) override {
        HttpRequest request;
        request.url = base_ + "?key=eq." + url_encode(key) + "&select=key,value";
        request.credential = credential_;
        request.idempotent = true;
        const json rows = answer(host_.send(request), "GET");
        if (!rows.is_array() || rows.empty()) {
            fail_invalid("no flag \"" + key + "\" in the table");
        }
        return rows[0].value("value", json());
    }

    bool compare_and_set(const std::string& key, const json& from, const json& to) override {
        HttpRequest request;
        request.method = "PATCH";
        request.url = base_ + "?key=eq." + url_encode(key) + "&value=eq." + url_encode(from.dump());
        request.credential = credential_;
        request.headers = {{"Content-Type", "application/json"},
                           {"Prefer", "return=representation"}};
        request.body = json{{"value", to}}.dump();
        const json rows = answer(host_.send(request), "PATCH");
        return rows.is_array() && !rows.empty();
    }

    std::string where() const override { return base_; }
    // PostgREST waits up to 10 s for a database connection, and Supabase's default
    // statement timeout is 8 s: a PATCH whose answer was lost is over within 20 s.
    std::chrono::milliseconds settle_margin() const override { return std::chrono::seconds(20); }

  private:
    static json answer(const HttpResponse& response, const std::string& method) {
        if (response.status >= 200 && response.status < 300) {
            return response.json_body();
        }
        const json body = json::parse(response.body, nullptr, false);
        std::string text = method + " answered " + std::to_string(response.status);
        if (body.is_object()) {
            text += ": " + body.value("code", std::string()) + " " +
                    body.value("message", std::string());
            if (body.contains("hint") && body["hint"].is_string()) {
                text += " (" + body["hint"].get<std::string>() + ")";
            }
        }
        if (response.status == 429 || response.status >= 500) {
            fail_unavailable(text);
        }
        if (response.status == 404) {
            fail_invalid(text);
        }
        fail_provider(text);
    }

    const Host& host_;
    std::string base_;
    std::string credential_;
};

class PostgresTable : public FlagTable {
  public:
    PostgresTable(const Host& host, std::string credential, const std::string& table)
        : host_(host),
          credential_(std::move(credential)),
          name_(table),
          table_("\"" + table + "\"") {}

    json read(const std::string& key) override {
        const SqlResult result = host_.sql(
            {credential_, "SELECT value::text FROM " + table_ + " WHERE key = $1", {key}, true});
        if (result.rows.empty() || !result.rows[0][0]) {
            fail_invalid("no flag \"" + key + "\" in the table");
        }
        return json::parse(*result.rows[0][0]);
    }

    bool compare_and_set(const std::string& key, const json& from, const json& to) override {
        const SqlResult result = host_.sql(
            {credential_,
             "UPDATE " + table_ +
                 " SET value = $1::jsonb WHERE key = $2 AND value = $3::jsonb RETURNING key",
             {to.dump(), key, from.dump()},
             false});
        return result.affected > 0;
    }

    std::string where() const override { return "postgres:" + credential_ + ":" + name_; }
    // The runtime runs each statement with a statement timeout of at most 10 s; the
    // commit that follows is short.
    std::chrono::milliseconds settle_margin() const override { return std::chrono::seconds(12); }

  private:
    const Host& host_;
    std::string credential_;
    std::string name_;   // as configured
    std::string table_;  // quoted, for the statements
};

class FlagSet : public Action {
  public:
    explicit FlagSet(std::unique_ptr<FlagTable>& table) : table_(table) {}

    json read(const std::string& target) override { return {{"value", table().read(target)}}; }

    PlannedChange plan(const std::string& target, const json& parameters,
                       const json& state) override {
        PlannedChange change;
        change.forward = {{"value", parameters.at("value")}};
        change.inverse = {{"value", state.at("value")}};
        const json& old_value = state.at("value");
        const json& new_value = parameters.at("value");
        if (old_value.is_number() && new_value.is_number() && old_value.get<double>() != 0) {
            const double before = old_value.get<double>();
            const double after = new_value.get<double>();
            change.resulting_fraction = after / before;
            change.blast_ratio =
                std::abs(after - before) / std::max(std::abs(before), std::abs(after));
        } else {
            change.blast_ratio = 1.0;  // a switch: everything that reads the flag
        }
        change.blast_description = target + ": " + old_value.dump() + " -> " + new_value.dump();
        return change;
    }

    void write(const std::string& target, const json& from, const json& to) override {
        if (table().compare_and_set(target, from.at("value"), to.at("value"))) {
            return;
        }
        const json live = table().read(target);
        if (live == to.at("value")) {
            return;
        }
        fail_conflict(target + " is " + live.dump() + ", not " + from.at("value").dump() +
                      ": someone changed it; nothing was written");
    }

    std::string resource(const std::string& target) override {
        return "supabase:" + table().where() + "#" + target;
    }

    std::chrono::milliseconds settle_margin() const override { return table().settle_margin(); }

  private:
    FlagTable& table() const {
        if (!table_) {
            fail_invalid("the supabase provider is not configured");
        }
        return *table_;
    }
    std::unique_ptr<FlagTable>& table_;
};

class SupabaseProvider : public Provider {
  public:
    json manifest() const override {
        return {{"name", "supabase"},
                {"version", "1.0.0"},
                {"description",
                 "Supabase: set a flag in a config_flags table (maintenance mode, kill "
                 "switches, rate limit multipliers), through PostgREST or PostgreSQL"},
                {"actions",
                 {{"flag.set",
                   {{"description", "set the flag's value (compare-and-set)"},
                    {"target", "the flag's key"},
                    {"parameters", set_parameters}}}}},
                {"settings", settings_schema},
                {"egress",
                 {{"hosts", "PROJECT.supabase.co (postgrest) or the database host (postgres)"},
                  {"credentials",
                   "postgrest: supabase (the service_role key); postgres: postgres (a role "
                   "allowed SELECT and UPDATE on the table)"}}}};
    }

    void configure(const json& settings, const Host& host) override {
        host_ = std::make_unique<Host>(host);
        const std::string table = settings.value("table", "config_flags");
        static const std::regex identifier("[A-Za-z_][A-Za-z0-9_]*");
        if (!std::regex_match(table, identifier)) {
            fail_invalid("settings.table: \"" + table + "\" is not a table name");
        }
        const std::string credential = settings.at("credential");
        if (settings.value("via", "postgrest") == "postgres") {
            table_ = std::make_unique<PostgresTable>(*host_, credential, table);
            return;
        }
        std::string url = settings.value("url", "");
        if (url.empty()) {
            fail_invalid("settings.url: is required with via: postgrest");
        }
        while (url.back() == '/') {
            url.pop_back();
        }
        table_ = std::make_unique<PostgrestTable>(*host_, url, credential, table);
    }

    json state(const std::string& target) override { return set_.read(target); }

    Action* action(const std::string& name) override {
        return name == "flag.set" ? &set_ : nullptr;
    }

  private:
    std::unique_ptr<Host> host_;
    std::unique_ptr<FlagTable> table_;
    FlagSet set_{table_};
};

}  // namespace
}  // namespace mitigate::plugin

MITIGATE_PLUGIN(mitigate::plugin::SupabaseProvider)
