// The broker's "sql" egress, for providers that change a row in PostgreSQL (the supabase
// provider's direct path):
//   {"kind":"sql","credential":"db","query":"UPDATE ... WHERE key = $1 AND value = $2
//    RETURNING ...","parameters":["k", "v", null],"timeout_ms":5000}
//   -> {"columns":["key","value"],"rows":[["k","v"]],"affected":1}
// One statement (libpq's extended protocol refuses more than one), parameters passed
// apart from the text, in its own transaction, with a statement timeout. The connection
// comes from a `postgres` credential profile: its host is checked like an HTTP host (a
// Unix socket directory counts as loopback), and its password never reaches the plugin.
// Errors carry PostgreSQL's SQLSTATE; connection failures (also a connection lost during
// the statement, which may have committed) and the retryable classes (08, 40001, 40P01,
// 53, 57P01) are MITIGATE_UNAVAILABLE.
#include <libpq-fe.h>

#include <memory>

#include "plugins/sdk/mitigate_plugin.h"
#include "runtime/egress/egress_broker.h"

namespace mitigate {

using nlohmann::json;

namespace {

struct ConnectionDeleter {
    void operator()(PGconn* connection) const { PQfinish(connection); }
};
struct ResultDeleter {
    void operator()(PGresult* result) const { PQclear(result); }
};

json sql_refused(int& status, int code, const std::string& why) {
    status = code;
    return {{"error", why}};
}

bool retryable(const std::string& sqlstate) {
    return sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("53", 0) == 0 || sqlstate == "40001" ||
           sqlstate == "40P01" || sqlstate == "57P01";
}

constexpr std::size_t max_query_bytes = std::size_t{16} * 1024;
constexpr std::size_t max_parameters = 100;

}  // namespace

json EgressBroker::sql(const json& request, int& status) const {
    const std::string credential = request.value("credential", "");
    const CredentialProfile* profile = nullptr;
    for (const auto& candidate : provider_.credentials) {
        if (candidate.name == credential) {
            profile = &candidate;
        }
    }
    if (profile == nullptr || profile->kind != CredentialKind::postgres) {
        return sql_refused(status, MITIGATE_INVALID,
                           "egress: sql needs a postgres credential profile under providers." +
                               provider_.name + ".credentials, not \"" + credential + "\"");
    }
    const std::string query = request.value("query", "");
    if (query.empty() || query.size() > max_query_bytes) {
        return sql_refused(status, MITIGATE_INVALID, "egress: sql query must be 1 to 16384 bytes");
    }
    const json parameters = request.value("parameters", json::array());
    if (!parameters.is_array() || parameters.size() > max_parameters) {
        return sql_refused(status, MITIGATE_INVALID,
                           "egress: sql parameters must be a list of at most 100");
    }
    std::vector<std::string> texts;
    std::vector<const char*> values;
    texts.reserve(parameters.size());
    for (const json& parameter : parameters) {
        if (!parameter.is_null() && !parameter.is_string()) {
            return sql_refused(status, MITIGATE_INVALID,
                               "egress: sql parameters are strings (PostgreSQL's text form) or "
                               "null");
        }
        texts.push_back(parameter.is_null() ? "" : parameter.get<std::string>());
    }
    for (std::size_t index = 0; index < parameters.size(); ++index) {
        values.push_back(parameters[index].is_null() ? nullptr : texts[index].c_str());
    }

    const std::string& host = profile->settings.at("host");
    const auto port_setting = profile->settings.find("port");
    const std::string port =
        port_setting != profile->settings.end() ? port_setting->second : "5432";
    std::string host_address;
    if (!host.empty() && host.front() == '/') {
        if (!provider_.egress.allow_loopback) {
            return sql_refused(status, MITIGATE_INVALID,
                               "egress: the Unix socket " + host + " is local; providers." +
                                   provider_.name + ".egress.allow_loopback allows it explicitly");
        }
    } else {
        std::vector<std::string> addresses;
        if (auto refusal = check_destination(host, port, "5432", addresses, status)) {
            return *refusal;
        }
        host_address = addresses.front();  // pinned, as for HTTP
    }
    std::string password;
    if (auto found = profile->secrets.find("password"); found != profile->secrets.end()) {
        SecretResolution resolution = resolve_secret(found->second);
        if (!resolution.value) {
            return sql_refused(status, MITIGATE_UNAVAILABLE,
                               "egress: credential \"" + credential + "\": " + resolution.error);
        }
        password = std::string(resolution.value->reveal());
    }
    auto timeout = limits_.timeout;
    if (request.contains("timeout_ms") && request["timeout_ms"].is_number_integer()) {
        timeout = std::clamp(std::chrono::milliseconds(request["timeout_ms"].get<std::int64_t>()),
                             std::chrono::milliseconds(1), limits_.timeout);
    }
    const std::string connect_seconds =
        std::to_string(std::max<std::int64_t>(2, (timeout.count() + 999) / 1000));
    const std::string options = "-c statement_timeout=" + std::to_string(timeout.count());
    // A silent network partition would otherwise block the call until the kernel gives
    // up on the connection (hours): data left unacknowledged is abandoned after the
    // statement timeout, and a peer that stops answering keepalives after about 10 s.
    const std::string user_timeout = std::to_string(timeout.count() + 2000);
    std::vector<const char*> keywords{"host",
                                      "port",
                                      "dbname",
                                      "user",
                                      "connect_timeout",
                                      "options",
                                      "application_name",
                                      "tcp_user_timeout",
                                      "keepalives",
                                      "keepalives_idle",
                                      "keepalives_interval",
                                      "keepalives_count"};
    std::vector<const char*> settings{host.c_str(),
                                      port.c_str(),
                                      profile->settings.at("dbname").c_str(),
                                      profile->settings.at("user").c_str(),
                                      connect_seconds.c_str(),
                                      options.c_str(),
                                      "mitigate",
                                      user_timeout.c_str(),
                                      "1",
                                      "4",
                                      "2",
                                      "3"};
    if (!host_address.empty()) {
        keywords.push_back("hostaddr");
        settings.push_back(host_address.c_str());
    }
    if (!password.empty()) {
        keywords.push_back("password");
        settings.push_back(password.c_str());
    }
    keywords.push_back(nullptr);
    settings.push_back(nullptr);
    std::unique_ptr<PGconn, ConnectionDeleter> connection(
        PQconnectdbParams(keywords.data(), settings.data(), 0));
    std::fill(password.begin(), password.end(), '\0');
    if (PQstatus(connection.get()) != CONNECTION_OK) {
        json failure = sql_refused(status, MITIGATE_UNAVAILABLE,
                                   "egress: cannot connect to PostgreSQL at " + host + ":" + port +
                                       ": " + PQerrorMessage(connection.get()));
        failure["not_sent"] = true;
        return failure;
    }
    std::unique_ptr<PGresult, ResultDeleter> result(
        PQexecParams(connection.get(), query.c_str(), static_cast<int>(values.size()), nullptr,
                     values.data(), nullptr, nullptr, 0));
    const ExecStatusType outcome = PQresultStatus(result.get());
    if (outcome != PGRES_TUPLES_OK && outcome != PGRES_COMMAND_OK) {
        const char* state = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
        const char* primary = PQresultErrorField(result.get(), PG_DIAG_MESSAGE_PRIMARY);
        const std::string sqlstate = state != nullptr ? state : "";
        // No SQLSTATE: libpq's own error, the connection lost mid-statement. The statement
        // may have committed: an unknown outcome, never "refused, nothing changed".
        const bool connection_lost =
            sqlstate.empty() || PQstatus(connection.get()) != CONNECTION_OK;
        json failure = sql_refused(
            status,
            connection_lost || retryable(sqlstate) || sqlstate == "57014" ? MITIGATE_UNAVAILABLE
                                                                          : MITIGATE_PROVIDER,
            "egress: PostgreSQL " + sqlstate + ": " +
                (primary != nullptr ? primary : PQerrorMessage(connection.get())));
        failure["sqlstate"] = sqlstate;
        return failure;
    }
    json columns = json::array();
    for (int column = 0; column < PQnfields(result.get()); ++column) {
        columns.push_back(PQfname(result.get(), column));
    }
    json rows = json::array();
    std::size_t bytes = 0;
    for (int row = 0; row < PQntuples(result.get()); ++row) {
        json values_of_row = json::array();
        for (int column = 0; column < PQnfields(result.get()); ++column) {
            if (PQgetisnull(result.get(), row, column)) {
                values_of_row.push_back(nullptr);
            } else {
                bytes += static_cast<std::size_t>(PQgetlength(result.get(), row, column));
                values_of_row.push_back(PQgetvalue(result.get(), row, column));
            }
        }
        if (bytes > limits_.max_response_bytes) {
            return sql_refused(status, MITIGATE_PROVIDER,
                               "egress: the sql result is larger than the " +
                                   std::to_string(limits_.max_response_bytes) + "-byte cap");
        }
        rows.push_back(values_of_row);
    }
    const char* affected = PQcmdTuples(result.get());
    status = MITIGATE_OK;
    return {{"columns", columns},
            {"rows", rows},
            {"affected", affected != nullptr && *affected != '\0' ? std::stoll(affected) : 0}};
}

}  // namespace mitigate
