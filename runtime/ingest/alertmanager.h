// Alertmanager's webhook payload (version 4; ../shared/reference/providers.md) as
// mitigate Signals: one Signal per alert. The same parser will serve
// POST /v1/alerts/alertmanager; `mitigate playbook test` uses it for recorded payloads.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/core/model.h"
#include "runtime/core/validation.h"

namespace mitigate {

// `received_at` stamps every signal. Ids are derived from fingerprint, startsAt and status:
// Alertmanager keeps the first two stable across its retries, so a redelivered alert maps
// to the same signal id, while the alert's resolution is a new signal.
Parsed<std::vector<Signal>> parse_alertmanager_webhook(const nlohmann::json& payload,
                                                       TimePoint received_at);

// True when the JSON looks like an Alertmanager payload rather than a mitigate Signal.
bool is_alertmanager_webhook(const nlohmann::json& payload);

}  // namespace mitigate
