#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/core/time_format.h"
#include "runtime/ingest/alertmanager.h"

namespace mitigate {
namespace {

using ::testing::HasSubstr;

const nlohmann::json payload = nlohmann::json::parse(R"({
  "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
  "status": "firing", "receiver": "mitigate", "groupLabels": {"alertname": "HighErrorRate"},
  "commonLabels": {"alertname": "HighErrorRate"}, "commonAnnotations": {},
  "externalURL": "http://alertmanager.example.invalid",
  "alerts": [
    {"status": "firing", "labels": {"alertname": "HighErrorRate", "service": "checkout"},
     "annotations": {"summary": "5xx"}, "startsAt": "2026-11-24T09:55:00.123456789Z",
     "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://p/graph", "fingerprint": "abc"},
    {"status": "resolved", "labels": {"alertname": "HighErrorRate", "service": "search"},
     "annotations": {}, "startsAt": "2026-11-24T09:00:00Z", "endsAt": "2026-11-24T09:30:00Z",
     "generatorURL": "", "fingerprint": "def"}]})");

TEST(Alertmanager, EveryAlertBecomesASignal) {
    const TimePoint now = *parse_rfc3339("2026-11-24T10:00:00Z");
    ASSERT_TRUE(is_alertmanager_webhook(payload));
    const auto signals = parse_alertmanager_webhook(payload, now);
    ASSERT_TRUE(signals) << describe(signals.errors);
    ASSERT_EQ(signals->size(), 2u);
    const Signal& first = signals->at(0);
    EXPECT_EQ(first.name, "HighErrorRate");
    EXPECT_EQ(first.source, SignalSource::alertmanager);
    EXPECT_EQ(format_rfc3339(first.starts_at), "2026-11-24T09:55:00.123Z");
    EXPECT_FALSE(first.ends_at);  // Alertmanager's zero time means "no end"
    EXPECT_EQ(signals->at(1).status, SignalStatus::resolved);
    EXPECT_TRUE(signals->at(1).ends_at);
}

TEST(Alertmanager, RetriesMapToTheSameSignalIds) {
    const auto once = parse_alertmanager_webhook(payload, *parse_rfc3339("2026-11-24T10:00:00Z"));
    const auto again = parse_alertmanager_webhook(payload, *parse_rfc3339("2026-11-24T10:05:00Z"));
    ASSERT_TRUE(once && again);
    EXPECT_EQ(once->at(0).id, again->at(0).id);
    EXPECT_NE(once->at(0).id, once->at(1).id);
}

TEST(Alertmanager, MalformedPayloadsNameTheField) {
    nlohmann::json bad = payload;
    bad["version"] = "3";
    bad["alerts"][0].erase("fingerprint");
    bad["alerts"][1]["status"] = "pending";
    bad["alerts"][1]["startsAt"] = "yesterday";
    const auto parsed = parse_alertmanager_webhook(bad, TimePoint{});
    ASSERT_FALSE(parsed);
    const std::string text = describe(parsed.errors);
    EXPECT_THAT(text, HasSubstr("webhook.version: must be \"4\""));
    EXPECT_THAT(text, HasSubstr("webhook.alerts[0].fingerprint: is required"));
    EXPECT_THAT(text, HasSubstr("webhook.alerts[1].status: must be one of firing, resolved"));
    EXPECT_THAT(text, HasSubstr("webhook.alerts[1].startsAt"));
    EXPECT_FALSE(parse_alertmanager_webhook(
        nlohmann::json::parse(R"({"version": "4", "alerts": []})"), TimePoint{}));
}

}  // namespace
}  // namespace mitigate
