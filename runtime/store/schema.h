// The SQLite schema as an ordered list of migrations. Migration N moves a database from
// user_version N-1 to N inside one transaction. Never edit a released migration: append.
#pragma once

#include <span>
#include <string_view>

namespace mitigate {

struct SqliteMigration {
    int version;
    std::string_view description;
    std::string_view sql;
};

std::span<const SqliteMigration> sqlite_migrations();

}  // namespace mitigate
