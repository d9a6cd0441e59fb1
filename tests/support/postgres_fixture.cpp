#include "tests/support/postgres_fixture.h"

#include <cstdlib>
#include <fstream>
#include <map>

namespace mitigate::testing {

PostgresFixture postgres_fixture() {
    const char* file = std::getenv("MITIGATE_POSTGRES_STATE");
    std::map<std::string, std::string> state;
    std::ifstream input(file != nullptr ? file : "");
    for (std::string line; std::getline(input, line);) {
        const auto equals = line.find('=');
        if (equals != std::string::npos) {
            state[line.substr(0, equals)] = line.substr(equals + 1);
        }
    }
    return {state["PG_SOCKET_DIR"], state["PG_USER"], state["PG_DB"]};
}

}  // namespace mitigate::testing
