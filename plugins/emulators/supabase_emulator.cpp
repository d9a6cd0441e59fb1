#include "plugins/emulators/supabase_emulator.h"

#include <libpq-fe.h>

#include <mutex>
#include <regex>
#include <stdexcept>

#include "runtime/core/url_encoding.h"
#include "runtime/server/http_server.h"

namespace mitigate {

using nlohmann::json;

namespace {

struct ConnectionDeleter {
    void operator()(PGconn* connection) const { PQfinish(connection); }
};
struct ResultDeleter {
    void operator()(PGresult* result) const { PQclear(result); }
};

HttpReply json_reply(int status, const json& body) {
    return {status, {{"Content-Type", "application/json; charset=utf-8"}}, body.dump(), false};
}

HttpReply postgrest_error(int status, const std::string& code, const std::string& message,
                          const json& details = nullptr, const json& hint = nullptr) {
    return json_reply(status,
                      {{"code", code}, {"details", details}, {"hint", hint}, {"message", message}});
}

int status_for(const std::string& sqlstate) {
    if (sqlstate == "23505" || sqlstate == "23503") {
        return 409;
    }
    if (sqlstate == "42P01") {
        return 404;
    }
    if (sqlstate == "42501") {
        return 403;
    }
    if (sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01") {
        return 503;
    }
    if (sqlstate.rfind("XX", 0) == 0 || sqlstate.rfind("58", 0) == 0) {
        return 500;
    }
    return 400;
}

std::string quote_identifier(const std::string& name) {
    static const std::regex identifier("[A-Za-z_][A-Za-z0-9_]*");
    if (!std::regex_match(name, identifier)) {
        throw std::invalid_argument(name);
    }
    return "\"" + name + "\"";
}

}  // namespace

struct SupabaseEmulator::State {
    SupabaseEmulatorOptions options;
    std::mutex mutex;  // one connection, one statement at a time
    std::unique_ptr<PGconn, ConnectionDeleter> connection;
    int updates = 0;
    FaultInjector faults{[](int status, const std::string&, const std::string& message) {
        return postgrest_error(status, status == 429 ? "PGRST429" : "PGRST500", message);
    }};
    std::unique_ptr<HttpServer> server;

    void connect() {
        connection.reset(PQconnectdb(options.connection.c_str()));
        if (PQstatus(connection.get()) != CONNECTION_OK) {
            throw std::runtime_error(
                std::string("the Supabase emulator cannot reach PostgreSQL: ") +
                PQerrorMessage(connection.get()));
        }
    }

    HttpReply handle(const HttpExchange& request) {
        auto key = request.headers.find("apikey");
        auto authorization = request.headers.find("authorization");
        if (key == request.headers.end()) {
            return json_reply(401,
                              {{"message", "No API key found in request"},
                               {"hint", "No `apikey` request header or url param was found."}});
        }
        if (key->second != options.service_key || authorization == request.headers.end() ||
            authorization->second != "Bearer " + options.service_key) {
            return json_reply(401, {{"message", "Invalid API key"},
                                    {"hint",
                                     "Double check your Supabase `anon` or `service_role` "
                                     "API key."}});
        }
        const auto question = request.target.find('?');
        const std::string path = request.target.substr(0, question);
        const std::string prefix = "/rest/v1/";
        if (path.rfind(prefix, 0) != 0 || path.size() == prefix.size()) {
            return postgrest_error(404, "PGRST125", "Invalid path specified in request URL");
        }
        const std::string operation = request.method == "GET"     ? "select"
                                      : request.method == "PATCH" ? "update"
                                                                  : "";
        if (operation.empty()) {
            return postgrest_error(405, "PGRST117", "Unsupported HTTP method: " + request.method);
        }
        if (auto injected = faults.before(operation)) {
            return *injected;
        }
        std::string table;
        std::vector<std::string> conditions;
        std::vector<std::string> values;
        std::string select = "*";
        try {
            table = quote_identifier(percent_decode(path.substr(prefix.size())));
            const std::string query =
                question == std::string::npos ? "" : request.target.substr(question + 1);
            std::size_t start = 0;
            while (start < query.size()) {
                const auto amp = query.find('&', start);
                const std::string item = query.substr(start, amp - start);
                start = amp == std::string::npos ? query.size() : amp + 1;
                const auto equals = item.find('=');
                const std::string name = percent_decode(item.substr(0, equals));
                const std::string value =
                    equals == std::string::npos ? "" : percent_decode(item.substr(equals + 1));
                if (name == "select") {
                    select = value;
                    continue;
                }
                if (value.rfind("eq.", 0) != 0) {
                    return postgrest_error(400, "PGRST100",
                                           "\"failed to parse filter (" + value +
                                               ")\" (line 1, "
                                               "column 1)",
                                           "only the eq operator is served by this emulator");
                }
                values.push_back(value.substr(3));
                // Qualified: in an update the populated record r has the same columns.
                conditions.push_back(
                    table + "." + quote_identifier(name) + " = $" +
                    std::to_string(values.size() + (operation == "update" ? 1 : 0)));
            }
        } catch (const std::invalid_argument& bad) {
            return postgrest_error(400, "PGRST100",
                                   std::string("invalid identifier ") + bad.what());
        }
        std::string columns = "*";
        if (select != "*") {
            columns.clear();
            std::size_t start = 0;
            while (start <= select.size()) {
                const auto comma = select.find(',', start);
                try {
                    columns += (columns.empty() ? "" : ", ") +
                               quote_identifier(select.substr(start, comma - start));
                } catch (const std::invalid_argument& bad) {
                    return postgrest_error(400, "PGRST100",
                                           std::string("invalid select column ") + bad.what());
                }
                if (comma == std::string::npos) {
                    break;
                }
                start = comma + 1;
            }
        }
        std::string where;
        for (const std::string& condition : conditions) {
            where += (where.empty() ? " WHERE " : " AND ") + condition;
        }
        std::string sql;
        std::vector<std::string> parameters;
        if (operation == "select") {
            sql = "SELECT coalesce(json_agg(t), '[]'::json)::text FROM (SELECT " + columns +
                  " FROM " + table + where + ") t";
            parameters = values;
        } else {
            const json body = json::parse(request.body, nullptr, false);
            if (!body.is_object() || body.empty()) {
                return postgrest_error(400, "PGRST102", "Empty or invalid json");
            }
            std::string assignments;
            try {
                for (const auto& [name, unused] : body.items()) {
                    assignments += (assignments.empty() ? "" : ", ") + quote_identifier(name) +
                                   " = r." + quote_identifier(name);
                }
            } catch (const std::invalid_argument& bad) {
                return postgrest_error(400, "PGRST204",
                                       std::string("Could not find the '") + bad.what() +
                                           "' column in the schema cache");
            }
            // The row is read from the JSON body with the table's own types, as PostgREST does.
            sql = "WITH t AS (UPDATE " + table + " SET " + assignments +
                  " FROM json_populate_record(null::" + table + ", $1::json) r" + where +
                  " RETURNING " + table +
                  ".*) SELECT coalesce(json_agg(t), '[]'::json)::text FROM t";
            parameters.push_back(body.dump());
            parameters.insert(parameters.end(), values.begin(), values.end());
        }
        std::vector<const char*> pointers;
        for (const std::string& parameter : parameters) {
            pointers.push_back(parameter.c_str());
        }
        std::lock_guard lock(mutex);
        if (PQstatus(connection.get()) != CONNECTION_OK) {
            PQreset(connection.get());
        }
        std::unique_ptr<PGresult, ResultDeleter> result(
            PQexecParams(connection.get(), sql.c_str(), static_cast<int>(pointers.size()), nullptr,
                         pointers.data(), nullptr, nullptr, 0));
        if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
            const char* state = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
            const char* primary = PQresultErrorField(result.get(), PG_DIAG_MESSAGE_PRIMARY);
            const char* detail = PQresultErrorField(result.get(), PG_DIAG_MESSAGE_DETAIL);
            const char* hint = PQresultErrorField(result.get(), PG_DIAG_MESSAGE_HINT);
            const std::string sqlstate = state != nullptr ? state : "08006";
            return postgrest_error(status_for(sqlstate), sqlstate,
                                   primary != nullptr ? primary : PQerrorMessage(connection.get()),
                                   detail != nullptr ? json(detail) : json(),
                                   hint != nullptr ? json(hint) : json());
        }
        const json rows = json::parse(PQgetvalue(result.get(), 0, 0));
        if (operation == "update") {
            if (!rows.empty()) {
                ++updates;
                if (faults.drop_after(operation)) {
                    HttpReply dropped;
                    dropped.drop_connection = true;
                    return dropped;
                }
            }
            auto prefer = request.headers.find("prefer");
            if (prefer == request.headers.end() ||
                prefer->second.find("return=representation") == std::string::npos) {
                return {204, {}, "", false};
            }
        }
        return json_reply(200, rows);
    }
};

SupabaseEmulator::SupabaseEmulator(SupabaseEmulatorOptions options)
    : state_(std::make_unique<State>()) {
    if (options.service_key.empty()) {
        throw std::invalid_argument("the Supabase emulator needs a service key");
    }
    state_->options = std::move(options);
    state_->connect();
    State* state = state_.get();
    state_->server =
        serve_emulator(state_->options.host, state_->options.port, state_->faults,
                       [state](const HttpExchange& request) { return state->handle(request); });
}

SupabaseEmulator::~SupabaseEmulator() {
    state_->server->stop();
}

std::string SupabaseEmulator::url() const {
    return state_->server->url();
}

FaultInjector& SupabaseEmulator::faults() {
    return state_->faults;
}

void SupabaseEmulator::seed_flags(const std::string& table, const json& flags) {
    const std::string name = quote_identifier(table);
    std::lock_guard lock(state_->mutex);
    auto run = [&](const std::string& sql, const std::vector<std::string>& parameters) {
        std::vector<const char*> pointers;
        for (const std::string& parameter : parameters) {
            pointers.push_back(parameter.c_str());
        }
        std::unique_ptr<PGresult, ResultDeleter> result(
            PQexecParams(state_->connection.get(), sql.c_str(), static_cast<int>(pointers.size()),
                         nullptr, pointers.data(), nullptr, nullptr, 0));
        if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
            throw std::runtime_error("seeding " + table + ": " +
                                     PQresultErrorMessage(result.get()));
        }
    };
    run("CREATE TABLE IF NOT EXISTS " + name +
            " (key text PRIMARY KEY, value jsonb NOT NULL, updated_at timestamptz NOT NULL "
            "DEFAULT now())",
        {});
    for (const auto& [key, value] : flags.items()) {
        run("INSERT INTO " + name + " (key, value) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING",
            {key, value.dump()});
    }
}

int SupabaseEmulator::updates() const {
    std::lock_guard lock(state_->mutex);
    return state_->updates;
}

}  // namespace mitigate
