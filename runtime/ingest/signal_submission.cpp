#include "runtime/ingest/signal_submission.h"

#include "runtime/core/json_reader.h"
#include "runtime/core/sha256.h"
#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

Signal read_submitted(const nlohmann::json& in, const std::string& path, SignalSource source,
                      TimePoint received_at, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, path, errors);
    Signal signal;
    signal.source = source;
    signal.name = reader.string("name");
    signal.status = reader.enumeration(
        "status", [](std::string_view text) { return parse_signal_status(text); },
        SignalStatus::firing, "firing, resolved", Presence::optional);
    signal.labels = reader.string_map("labels");
    signal.annotations = reader.string_map("annotations");
    signal.fingerprint = reader.string("fingerprint", Presence::optional);
    signal.starts_at = reader.time("starts_at", Presence::optional).value_or(received_at);
    signal.ends_at = reader.time("ends_at", Presence::optional);
    reader.reject_unknown_fields();
    if (signal.fingerprint.empty()) {
        // Name and labels identify an alert the way Alertmanager's fingerprint does.
        Sha256 hash;
        hash.update(signal.name);
        for (const auto& [name, value] : signal.labels) {
            hash.update("\n").update(name).update("=").update(value);
        }
        signal.fingerprint = hash.hex_digest().substr(0, 16);
    }
    signal.labels.emplace("alertname", signal.name);
    signal.received_at = received_at;
    signal.id = signal_id(signal.fingerprint, signal.starts_at, signal.status);
    return signal;
}

}  // namespace

std::string signal_id(const std::string& fingerprint, TimePoint starts_at, SignalStatus status) {
    return "sig_" + Sha256()
                        .update(fingerprint)
                        .update("|")
                        .update(format_rfc3339(starts_at))
                        .update("|")
                        .update(to_string(status))
                        .hex_digest()
                        .substr(0, 24);
}

Parsed<std::vector<Signal>> parse_signal_submission(const nlohmann::json& body, SignalSource source,
                                                    TimePoint received_at) {
    Parsed<std::vector<Signal>> result;
    std::vector<Signal> signals;
    if (body.is_object() && body.contains("signals")) {
        JsonObjectReader reader(body, "body", result.errors);
        const auto* list = reader.member("signals", Presence::required);
        reader.reject_unknown_fields();
        if (list != nullptr &&
            (!list->is_array() || list->empty() || list->size() > max_signals_per_submission)) {
            reader.add_error("signals", "must be a list of 1 to " +
                                            std::to_string(max_signals_per_submission) +
                                            " signals");
        } else if (list != nullptr) {
            for (std::size_t i = 0; i < list->size(); ++i) {
                signals.push_back(read_submitted((*list)[i], "signals[" + std::to_string(i) + "]",
                                                 source, received_at, result.errors));
            }
        }
    } else {
        signals.push_back(read_submitted(body, "signal", source, received_at, result.errors));
    }
    if (result.errors.empty()) {
        result.value = std::move(signals);
    }
    return result;
}

}  // namespace mitigate
