// The PostgreSQL that tests/postgres/postgres-fixture started for this CTest run: its
// state file is named by MITIGATE_POSTGRES_STATE (set on the tests that require the
// postgres_server fixture).
#pragma once

#include <string>

namespace mitigate::testing {

struct PostgresFixture {
    std::string socket_directory;  // empty when no fixture is running
    std::string user;
    std::string database;
    // A libpq connection string.
    std::string connection() const {
        return "host=" + socket_directory + " user=" + user + " dbname=" + database;
    }
};

PostgresFixture postgres_fixture();

}  // namespace mitigate::testing
