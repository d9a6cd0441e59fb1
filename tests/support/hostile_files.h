// Hostile file contents the loaders' tests share.
#pragma once

#include <string>

namespace mitigate::testing {

// Nine anchors, each a list of nine aliases of the one before: a few hundred bytes of
// YAML that expand to 9^9 nodes once walked ("billion laughs").
inline std::string yaml_alias_bomb() {
    std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n";
    for (int level = 1; level <= 9; ++level) {
        const std::string before = "*a" + std::to_string(level - 1);
        text += "a" + std::to_string(level) + ": &a" + std::to_string(level) + " [";
        for (int copy = 0; copy < 9; ++copy) {
            text += (copy ? ", " : "") + before;
        }
        text += "]\n";
    }
    return text;
}

}  // namespace mitigate::testing
