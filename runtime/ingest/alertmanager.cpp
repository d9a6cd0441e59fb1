#include "runtime/ingest/alertmanager.h"

#include "runtime/ingest/signal_submission.h"

#include "runtime/core/json_reader.h"
#include "runtime/core/time_format.h"

namespace mitigate {

bool is_alertmanager_webhook(const nlohmann::json& payload) {
    return payload.is_object() && payload.contains("alerts") && payload.contains("version");
}

Parsed<std::vector<Signal>> parse_alertmanager_webhook(const nlohmann::json& payload,
                                                       TimePoint received_at) {
    Parsed<std::vector<Signal>> result;
    JsonObjectReader reader(payload, "webhook", result.errors);
    const std::string version = reader.string("version");
    if (!version.empty() && version != "4") {
        reader.add_error("version", "must be \"4\" (the Alertmanager webhook format this reads)");
    }
    // Read so that they are known fields; their content is carried per alert.
    for (const char* key : {"groupKey", "receiver", "externalURL"}) {
        reader.string(key, Presence::optional);
    }
    reader.integer("truncatedAlerts", 0, 1'000'000, 0);
    reader.string("status", Presence::optional);
    for (const char* key : {"groupLabels", "commonLabels", "commonAnnotations"}) {
        reader.string_map(key);
    }
    std::vector<Signal> signals;
    if (const auto* alerts = reader.member("alerts", Presence::required)) {
        if (!alerts->is_array() || alerts->empty()) {
            reader.add_error("alerts", "must be a non-empty list");
        } else {
            for (std::size_t i = 0; i < alerts->size(); ++i) {
                JsonObjectReader alert((*alerts)[i], "webhook.alerts[" + std::to_string(i) + "]",
                                       result.errors);
                Signal signal;
                signal.source = SignalSource::alertmanager;
                signal.status = alert.enumeration(
                    "status", [](std::string_view text) { return parse_signal_status(text); },
                    SignalStatus::firing, "firing, resolved");
                signal.labels = alert.string_map("labels");
                signal.annotations = alert.string_map("annotations");
                signal.starts_at = alert.time("startsAt").value_or(TimePoint{});
                // Alertmanager sends 0001-01-01T00:00:00Z for "no end".
                const auto ends_at = alert.time("endsAt", Presence::optional);
                if (ends_at && ends_at->time_since_epoch().count() > 0) {
                    signal.ends_at = ends_at;
                }
                alert.string("generatorURL", Presence::optional);
                signal.fingerprint = alert.string("fingerprint");
                signal.name =
                    signal.labels.contains("alertname") ? signal.labels.at("alertname") : "";
                if (signal.name.empty()) {
                    alert.add_error("labels.alertname", "is required");
                }
                alert.reject_unknown_fields();
                signal.received_at = received_at;
                signal.id = signal_id(signal.fingerprint, signal.starts_at, signal.status);
                signals.push_back(std::move(signal));
            }
        }
    }
    reader.reject_unknown_fields();
    if (result.errors.empty()) {
        result.value = std::move(signals);
    }
    return result;
}

}  // namespace mitigate
