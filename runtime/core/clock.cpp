#include "runtime/core/clock.h"

namespace mitigate {

TimePoint SystemClock::now() const {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
}

}  // namespace mitigate
