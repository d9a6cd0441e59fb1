// Identifiers for signals, incidents, proposals and mitigations: a type prefix, the
// creation time (so ids sort by age in listings and logs) and 64 random bits.
// "mit_20261123T072822Z_9f2c4e1ab07d3355".
#pragma once

#include <string>
#include <string_view>

#include "runtime/core/clock.h"

namespace mitigate {

std::string new_id(std::string_view prefix, TimePoint now);

}  // namespace mitigate
