#include "runtime/engine/incident_grouping.h"

#include "runtime/core/ids.h"

namespace mitigate {

struct IncidentGrouping::OpenIncident {
    Incident incident;
    std::unordered_set<std::string> firing;
    std::unordered_set<std::string> known;
};

// One incident as the batch leaves it: its header, and the alerts the batch changed on
// top of what was committed (`base`), so that nothing is copied per alert of the incident.
struct GroupingBatch::Draft {
    Incident incident;
    std::string key;
    const void* base = nullptr;  // the committed OpenIncident, for incidents open before
    bool create = false;
    bool resolved = false;
    std::unordered_map<std::string, IncidentAlert> alerts;
    std::vector<Signal> first_signals;
};

GroupingBatch::GroupingBatch() = default;
GroupingBatch::~GroupingBatch() = default;

IncidentGrouping::IncidentGrouping(std::vector<std::string> group_by)
    : group_by_(std::move(group_by)) {}

IncidentGrouping::~IncidentGrouping() = default;

std::string IncidentGrouping::group_key(const Signal& signal) const {
    std::string key;
    for (const std::string& label : group_by_) {
        const auto found = signal.labels.find(label);
        if (found != signal.labels.end()) {
            key += (key.empty() ? "" : ",") + label + "=" + found->second;
        }
    }
    key = key.empty() ? "fingerprint=" + signal.fingerprint : key;
    return signal.isolation.empty() ? key : signal.isolation + "|" + key;
}

void IncidentGrouping::load(const std::vector<Incident>& open,
                            const std::vector<std::pair<std::string, IncidentAlert>>& alerts) {
    std::unordered_map<std::string, OpenIncident*> by_id;
    for (const Incident& incident : open) {
        auto entry = std::make_unique<OpenIncident>();
        entry->incident = incident;
        by_id[incident.id] = entry.get();
        know(incident);
        open_by_key_[incident.group_key] = std::move(entry);
    }
    for (const auto& [incident_id, alert] : alerts) {
        const auto found = by_id.find(incident_id);
        if (found == by_id.end()) {
            continue;
        }
        found->second->known.insert(alert.fingerprint);
        if (alert.firing) {
            found->second->firing.insert(alert.fingerprint);
        }
    }
}

std::unique_ptr<GroupingBatch> IncidentGrouping::group(const std::vector<const Signal*>& signals,
                                                       TimePoint now) const {
    using Draft = GroupingBatch::Draft;
    auto batch = std::make_unique<GroupingBatch>();
    GroupedSignals& writes = batch->writes;
    std::unordered_map<std::string, Draft*> current;  // the live draft of each key
    std::unordered_set<std::string> closed;  // keys whose committed incident this batch resolved

    const auto is_firing = [](const Draft& draft, const std::string& fingerprint) {
        if (const auto changed = draft.alerts.find(fingerprint); changed != draft.alerts.end()) {
            return changed->second.firing;
        }
        const auto* base = static_cast<const OpenIncident*>(draft.base);
        return base != nullptr && base->firing.contains(fingerprint);
    };
    const auto is_known = [](const Draft& draft, const std::string& fingerprint) {
        if (draft.alerts.contains(fingerprint)) {
            return true;
        }
        const auto* base = static_cast<const OpenIncident*>(draft.base);
        return base != nullptr && base->known.contains(fingerprint);
    };

    for (const Signal* pointer : signals) {
        const Signal& signal = *pointer;
        const std::string key = group_key(signal);
        Draft* draft = nullptr;
        if (const auto live = current.find(key); live != current.end()) {
            draft = live->second;
        } else if (!closed.contains(key)) {
            if (const auto open = open_by_key_.find(key); open != open_by_key_.end()) {
                auto made = std::make_unique<Draft>();
                made->incident = open->second->incident;
                made->key = key;
                made->base = open->second.get();
                draft = made.get();
                current[key] = draft;
                batch->drafts.push_back(std::move(made));
            }
        }
        if (signal.status == SignalStatus::resolved) {
            if (draft == nullptr) {
                writes.signal_incidents.emplace_back();  // nothing open to resolve
                continue;
            }
            Incident& incident = draft->incident;
            if (is_firing(*draft, signal.fingerprint)) {
                --incident.counters.firing;
            }
            if (is_known(*draft, signal.fingerprint)) {
                draft->alerts[signal.fingerprint] = {signal.fingerprint, false, signal.id, now};
            }
            ++incident.counters.signals;
            writes.signal_incidents.push_back(incident.id);
            if (incident.counters.firing <= 0) {
                incident.counters.firing = 0;
                incident.status = IncidentStatus::resolved;
                incident.resolved_at = now;
                draft->resolved = true;
                writes.audit.push_back({now,
                                        "runtime",
                                        "incident.resolved",
                                        incident.id,
                                        {{"group_key", key}, {"signal", signal.id}}});
                batch->resolved.push_back(incident.id);
                current.erase(key);
                if (draft->base != nullptr) {
                    closed.insert(key);
                }
            }
            continue;
        }
        if (draft == nullptr) {
            auto made = std::make_unique<Draft>();
            Incident& incident = made->incident;
            incident.id = new_id("inc", now);
            incident.group_key = key;
            incident.title = signal.name;
            if (const auto service = signal.labels.find("service");
                service != signal.labels.end()) {
                incident.service = service->second;
                incident.title += " on " + service->second;
            }
            if (const auto environment = signal.labels.find("environment");
                environment != signal.labels.end()) {
                incident.environment = environment->second;
                incident.title += " (" + environment->second + ")";
            }
            incident.labels = signal.labels;
            incident.opened_at = signal.received_at;
            incident.drill = signal.source == SignalSource::drill;
            incident.dry_run = signal.dry_run;
            made->key = key;
            made->create = true;
            made->first_signals = {signal};
            writes.audit.push_back({now,
                                    "runtime",
                                    "incident.opened",
                                    incident.id,
                                    {{"group_key", key},
                                     {"title", incident.title},
                                     {"signal", signal.id},
                                     {"drill", incident.drill}}});
            draft = made.get();
            current[key] = draft;
            batch->drafts.push_back(std::move(made));
        }
        Incident& incident = draft->incident;
        if (!is_firing(*draft, signal.fingerprint)) {
            if (!is_known(*draft, signal.fingerprint)) {
                ++incident.counters.alerts;
            }
            ++incident.counters.firing;
        }
        draft->alerts[signal.fingerprint] = {signal.fingerprint, true, signal.id, now};
        ++incident.counters.signals;
        writes.signal_incidents.push_back(incident.id);
    }

    for (const auto& draft : batch->drafts) {
        if (draft->create || draft->resolved) {
            writes.incidents.push_back({draft->incident, draft->create});
        }
        for (const auto& [fingerprint, alert] : draft->alerts) {
            writes.alerts.push_back({draft->incident.id, alert});
        }
        writes.counters[draft->incident.id] = draft->incident.counters;
        if (draft->create) {
            batch->opened.emplace_back(draft->incident, draft->first_signals);
        }
    }
    return batch;
}

void IncidentGrouping::apply(const GroupingBatch& batch) {
    for (const auto& draft : batch.drafts) {
        if (draft->create && !draft->resolved) {
            auto entry = std::make_unique<OpenIncident>();
            entry->incident = draft->incident;
            for (const auto& [fingerprint, alert] : draft->alerts) {
                entry->known.insert(fingerprint);
                if (alert.firing) {
                    entry->firing.insert(fingerprint);
                }
            }
            open_by_key_[draft->key] = std::move(entry);
        } else if (draft->base != nullptr) {
            const auto open = open_by_key_.find(draft->key);
            if (open != open_by_key_.end() && open->second.get() == draft->base) {
                if (draft->resolved) {
                    open_by_key_.erase(open);
                } else {
                    OpenIncident& entry = *open->second;
                    entry.incident = draft->incident;
                    for (const auto& [fingerprint, alert] : draft->alerts) {
                        entry.known.insert(fingerprint);
                        if (alert.firing) {
                            entry.firing.insert(fingerprint);
                        } else {
                            entry.firing.erase(fingerprint);
                        }
                    }
                }
            }
        }
        know(draft->incident);
    }
}

std::shared_ptr<const Incident> IncidentGrouping::find(const std::string& id) const {
    std::lock_guard lock(known_mutex_);
    const auto found = known_.find(id);
    return found == known_.end() ? nullptr : found->second;
}

void IncidentGrouping::remember(const Incident& incident) {
    std::lock_guard lock(known_mutex_);
    if (!known_.contains(incident.id)) {
        know_locked(incident);
    }
}

void IncidentGrouping::know(const Incident& incident) {
    std::lock_guard lock(known_mutex_);
    know_locked(incident);
}

void IncidentGrouping::know_locked(const Incident& incident) {
    auto& slot = known_[incident.id];
    const bool newly_resolved = incident.status == IncidentStatus::resolved &&
                                (!slot || slot->status != IncidentStatus::resolved);
    slot = std::make_shared<const Incident>(incident);
    if (newly_resolved) {
        resolved_order_.push_back(incident.id);
        if (resolved_order_.size() > resolved_remembered) {
            // What is forgotten is read from the store again when asked for.
            known_.erase(resolved_order_.front());
            resolved_order_.pop_front();
        }
    }
}

std::size_t IncidentGrouping::open_incidents() const {
    return open_by_key_.size();
}

}  // namespace mitigate
