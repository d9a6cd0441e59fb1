// Signals into incidents, decided in memory (runtime/engine/incident_grouping.h): what opens
// an incident, what resolves it, what a batch writes, and that what it remembers is bounded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/core/time_format.h"
#include "runtime/engine/incident_grouping.h"

namespace mitigate {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

const TimePoint now = *parse_rfc3339("2026-11-23T12:00:00Z");

Signal signal(const std::string& fingerprint, SignalStatus status = SignalStatus::firing,
              const std::string& service = "checkout") {
    Signal made;
    made.id = "sig_" + fingerprint + (status == SignalStatus::resolved ? "_r" : "");
    made.name = "HighErrorRate";
    made.status = status;
    made.fingerprint = fingerprint;
    made.labels = {{"alertname", "HighErrorRate"}, {"service", service}};
    made.received_at = now;
    return made;
}

// Groups one batch and takes it into the index, as the signal intake does once committed.
std::unique_ptr<GroupingBatch> commit(IncidentGrouping& grouping, std::vector<Signal> signals) {
    std::vector<const Signal*> pointers;
    for (const Signal& one : signals) {
        pointers.push_back(&one);
    }
    auto batch = grouping.group(pointers, now);
    grouping.apply(*batch);
    return batch;
}

TEST(IncidentGrouping, AlertsOfOneGroupOpenOneIncidentThatResolvesWithItsLastAlert) {
    IncidentGrouping grouping({"alertname", "service"});
    auto first = commit(grouping, {signal("a"), signal("b"), signal("a")});
    ASSERT_THAT(first->opened, SizeIs(1));
    const std::string id = first->opened[0].first.id;
    EXPECT_EQ(first->opened[0].first.title, "HighErrorRate on checkout");
    EXPECT_EQ(first->writes.counters.at(id), (Incident::Counters{2, 2, 3}));
    EXPECT_THAT(first->writes.signal_incidents, ElementsAre(id, id, id));
    EXPECT_EQ(first->writes.incidents.size(), 1u);  // created once, counters beside it

    auto half = commit(grouping, {signal("a", SignalStatus::resolved)});
    EXPECT_TRUE(half->resolved.empty());
    EXPECT_TRUE(half->writes.incidents.empty());  // the body is not rewritten
    EXPECT_EQ(grouping.find(id)->counters, (Incident::Counters{2, 1, 4}));

    auto last = commit(grouping, {signal("b", SignalStatus::resolved)});
    EXPECT_THAT(last->resolved, ElementsAre(id));
    EXPECT_EQ(grouping.find(id)->status, IncidentStatus::resolved);
    EXPECT_EQ(grouping.open_incidents(), 0u);
}

TEST(IncidentGrouping,
     AResolutionNobodyTracksChangesNothingAndAGroupCanResolveAndReopenInOneBatch) {
    IncidentGrouping grouping({"alertname", "service"});
    auto untracked = commit(grouping, {signal("x", SignalStatus::resolved)});
    EXPECT_THAT(untracked->writes.signal_incidents, ElementsAre(""));
    EXPECT_TRUE(untracked->opened.empty());

    auto opened = commit(grouping, {signal("a")});
    const std::string old_id = opened->opened[0].first.id;
    auto again =
        commit(grouping, {signal("a", SignalStatus::resolved), signal("a2", SignalStatus::firing)});
    ASSERT_THAT(again->opened, SizeIs(1));
    EXPECT_NE(again->opened[0].first.id, old_id);
    // The old incident is written resolved before the new one is inserted: one open
    // incident per group at every moment.
    ASSERT_THAT(again->writes.incidents, SizeIs(2));
    EXPECT_EQ(again->writes.incidents[0].incident.id, old_id);
    EXPECT_FALSE(again->writes.incidents[0].create);
    EXPECT_TRUE(again->writes.incidents[1].create);
    EXPECT_EQ(grouping.open_incidents(), 1u);
}

TEST(IncidentGrouping, AnIsolationKeyKeepsSignalsApartFromEqualOnes) {
    IncidentGrouping grouping({"alertname", "service"});
    Signal isolated = signal("drill-1");
    isolated.isolation = "drill:drl_1";
    isolated.dry_run = true;
    auto batch = commit(grouping, {signal("a"), isolated});
    ASSERT_THAT(batch->opened, SizeIs(2));
    EXPECT_EQ(batch->opened[1].first.group_key,
              "drill:drl_1|alertname=HighErrorRate,service=checkout");
    EXPECT_TRUE(batch->opened[1].first.dry_run);
    EXPECT_FALSE(batch->opened[0].first.dry_run);
}

TEST(IncidentGrouping, WhatItRemembersOfResolvedIncidentsIsBounded) {
    IncidentGrouping grouping({"alertname", "service"});
    std::string first;
    for (int i = 0; i < 10'050; ++i) {
        const std::string service = "s" + std::to_string(i);
        auto opened =
            commit(grouping, {signal("f" + std::to_string(i), SignalStatus::firing, service)});
        if (i == 0) {
            first = opened->opened[0].first.id;
        }
        commit(grouping, {signal("f" + std::to_string(i), SignalStatus::resolved, service)});
    }
    // The oldest resolved ones are forgotten (read from the store again when asked for);
    // open ones never are.
    EXPECT_EQ(grouping.find(first), nullptr);
    auto open = commit(grouping, {signal("still-open", SignalStatus::firing, "open")});
    const std::string open_id = open->opened[0].first.id;
    for (int i = 0; i < 10'050; ++i) {
        const std::string service = "t" + std::to_string(i);
        commit(grouping, {signal("g" + std::to_string(i), SignalStatus::firing, service)});
        commit(grouping, {signal("g" + std::to_string(i), SignalStatus::resolved, service)});
    }
    ASSERT_NE(grouping.find(open_id), nullptr);
    // A copy read from the store never replaces a newer one a batch left.
    Incident stale = *grouping.find(open_id);
    stale.title = "read before the batch";
    grouping.remember(stale);
    EXPECT_NE(grouping.find(open_id)->title, "read before the batch");
}

}  // namespace
}  // namespace mitigate
