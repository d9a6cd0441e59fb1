# Writes a C++ source returning every policies/*.yaml file, so that the binary carries the
# default policy set (the demo and a first `serve` run on it) and the files users read
# and the compiled-in defaults cannot drift apart. Run at build time by CMakeLists.txt.
file(GLOB policy_files "${POLICY_DIRECTORY}/*.yaml")
list(SORT policy_files)
set(entries "")
foreach(policy_file IN LISTS policy_files)
    file(READ "${policy_file}" text)
    get_filename_component(name "${policy_file}" NAME)
    string(APPEND entries "        {\"${name}\", R\"mitigate_policy(${text})mitigate_policy\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp" "// Generated from policies/*.yaml by embed_policies.cmake. Edit those files.
#include \"runtime/policy/policy_set.h\"

namespace mitigate {

std::vector<std::pair<std::string, std::string>> embedded_default_policies() {
    return {
${entries}    };
}

}  // namespace mitigate
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
