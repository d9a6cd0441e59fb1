// What a YAML text would cost once loaded, measured before it is loaded. yaml-cpp keeps
// an alias as a reference, but everything that walks the tree (our readers, yaml_to_json)
// walks it expanded: nine aliases of nine aliases of ... ("billion laughs") are a few
// hundred bytes of text and billions of nodes. The text is read once as parser events,
// each alias counted as the size and depth of what it names, and refused at the first
// limit crossed, so a hostile file costs no more than its own size.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include <yaml-cpp/mark.h>

namespace mitigate {

struct YamlCostLimits {
    std::size_t max_nodes = 200000;  // after alias expansion
    int max_depth = 64;              // after alias expansion
};

struct YamlCostProblem {
    YAML::Mark mark;
    std::string message;
};

// nullopt when within the limits (or when the text does not parse: loading it then
// reports the syntax error with its position).
std::optional<YamlCostProblem> yaml_cost_problem(const std::string& text,
                                                 const YamlCostLimits& limits = {});

}  // namespace mitigate
