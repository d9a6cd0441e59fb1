# Writes a C++ source whose function FUNCTION returns every DIRECTORY/PATTERN file as
# {file name, contents}, so that the binary carries its defaults (the policy set, the
# example playbooks and their library) and the files users read and the compiled-in
# copies cannot drift apart. Run at build time through mitigate_embed_files().
file(GLOB embedded_files "${DIRECTORY}/${PATTERN}")
list(SORT embedded_files)
set(entries "")
foreach(embedded_file IN LISTS embedded_files)
    file(READ "${embedded_file}" text)
    get_filename_component(name "${embedded_file}" NAME)
    string(APPEND entries "        {\"${name}\", R\"mitigate_embed(${text})mitigate_embed\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp" "// Generated from ${PATTERN} files by cmake/embed_files.cmake. Edit those files.
#include \"${HEADER}\"

namespace mitigate {

std::vector<std::pair<std::string, std::string>> ${FUNCTION}() {
    return {
${entries}    };
}

}  // namespace mitigate
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
