// mitigate's own signal format, for POST /v1/signals and `mitigate signal send FILE`:
// what a detector, a script or a person sends when Alertmanager is not the source.
//
//   {"name": "HighErrorRate", "status": "firing",            // status: firing | resolved
//    "labels": {"service": "checkout", "environment": "prod"},
//    "annotations": {"summary": "..."},                       // optional
//    "fingerprint": "checkout-errors",                        // optional
//    "starts_at": "2026-11-23T12:00:00Z"}                     // optional
//
// or {"signals": [ ...up to 1000 of those... ]}. Unknown fields are errors. Without a
// fingerprint, one is derived from name and labels; without starts_at, the time received.
// Ids are derived as for Alertmanager (fingerprint, starts_at, status), so a resent
// signal is recognised as the same one.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/core/model.h"
#include "runtime/core/validation.h"

namespace mitigate {

inline constexpr std::size_t max_signals_per_submission = 1000;

Parsed<std::vector<Signal>> parse_signal_submission(const nlohmann::json& body, SignalSource source,
                                                    TimePoint received_at);

// The id both formats give a signal.
std::string signal_id(const std::string& fingerprint, TimePoint starts_at, SignalStatus status);

}  // namespace mitigate
