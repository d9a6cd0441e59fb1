// Runs a program to completion and captures what it printed, for tests of the mitigate
// binary. No shell is involved: arguments are passed as they are.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace mitigate::testing {

struct ProcessResult {
    int exit_code = -1;  // 128 + signal number when killed by a signal
    std::string out;
    std::string err;
};

// `environment` entries are added to (or replace) the test's own environment.
ProcessResult run_process(const std::vector<std::string>& arguments,
                          const std::map<std::string, std::string>& environment = {});

// The mitigate binary under test.
std::string mitigate_binary();

// The root of the source tree.
std::string source_directory();

}  // namespace mitigate::testing
