// waf.rate_limit. Target "waf/SCOPE/ACL_NAME/ACL_ID/RULE_NAME" (SCOPE is REGIONAL or
// CLOUDFRONT). State {"present": true, "limit", "evaluation_window_sec",
// "aggregate_key_type"} for a rate-based rule, {"present": false} when the web ACL has no
// rule of that name: the plan then adds one (Block, per IP, after the other rules) and
// the revert removes it.
//
// UpdateWebACL replaces every mutable field, so each write reads the whole web ACL with
// its LockToken, changes the one rule, and sends everything back. A stale token
// (someone else saved in between) is WAFOptimisticLockException: read again, check that
// the rule still holds what was planned from, and try again.
#include <algorithm>
#include <cmath>

#include "plugins/aws/aws_actions.h"

namespace mitigate::plugin {
namespace {

const char* const waf_prefix = "AWSWAF_20190729";
constexpr int lock_attempts = 5;

struct WafTarget {
    std::string scope;
    std::string name;
    std::string id;
    std::string rule;
};

json rate_state(const json& web_acl, const std::string& rule_name) {
    for (const json& rule : web_acl.value("Rules", json::array())) {
        if (rule.value("Name", "") != rule_name) {
            continue;
        }
        const json statement = rule.value("Statement", json::object());
        if (!statement.contains("RateBasedStatement")) {
            fail_invalid("rule " + rule_name + " is not a rate-based rule");
        }
        const json& rate = statement["RateBasedStatement"];
        return {{"present", true},
                {"limit", rate.value("Limit", 0LL)},
                {"evaluation_window_sec", rate.value("EvaluationWindowSec", 300)},
                {"aggregate_key_type", rate.value("AggregateKeyType", "IP")}};
    }
    return {{"present", false}};
}

class WafRateLimit : public Action {
  public:
    explicit WafRateLimit(const AwsApi& api) : api_(api) {}

    json read(const std::string& target) override {
        const WafTarget where = parse(target);
        return rate_state(get(where).at("WebACL"), where.rule);
    }

    PlannedChange plan(const std::string& target, const json& parameters,
                       const json& state) override {
        const long long limit = parameters.at("limit").get<long long>();
        PlannedChange change;
        change.forward = {{"present", true}, {"limit", limit}};
        if (parameters.contains("evaluation_window_sec")) {
            change.forward["evaluation_window_sec"] = parameters["evaluation_window_sec"];
        }
        const bool present = state.value("present", false);
        const std::string window = std::to_string(change.forward.value(
            "evaluation_window_sec", state.value("evaluation_window_sec", 300)));
        if (!present) {
            change.inverse = {{"present", false}};
            change.blast_ratio = 1.0;  // a new throttle: every client above it is affected
            change.blast_description = target + ": new rate-based rule, " + std::to_string(limit) +
                                       " requests per " + window + " s per IP (none before)";
            return change;
        }
        const long long old_limit = state.at("limit").get<long long>();
        change.inverse = {{"present", true}, {"limit", old_limit}};
        if (change.forward.contains("evaluation_window_sec")) {
            change.inverse["evaluation_window_sec"] = state.value("evaluation_window_sec", 300);
        }
        const double larger = static_cast<double>(std::max({limit, old_limit, 1LL}));
        change.blast_ratio = std::abs(static_cast<double>(limit - old_limit)) / larger;
        if (old_limit > 0) {
            change.resulting_fraction = static_cast<double>(limit) / static_cast<double>(old_limit);
        }
        change.blast_description = target + ": rate limit " + std::to_string(old_limit) + " -> " +
                                   std::to_string(limit) + " requests per " + window + " s per " +
                                   state.value("aggregate_key_type", "IP");
        return change;
    }

    void write(const std::string& target, const json& from, const json& to) override {
        const WafTarget where = parse(target);
        for (int attempt = 1;; ++attempt) {
            const json answer = get(where);
            const json& web_acl = answer.at("WebACL");
            const json live = rate_state(web_acl, where.rule);
            if (matches(live, to)) {
                return;  // an earlier attempt landed
            }
            if (!matches(live, from)) {
                fail_conflict(target + " changed since it was read (" + live.dump() + ")");
            }
            json input{{"Name", where.name},
                       {"Scope", where.scope},
                       {"Id", where.id},
                       {"DefaultAction", web_acl.at("DefaultAction")},
                       {"VisibilityConfig", web_acl.at("VisibilityConfig")},
                       {"Rules", changed_rules(web_acl, where.rule, to)},
                       {"LockToken", answer.at("LockToken")}};
            if (!web_acl.value("Description", "").empty()) {
                input["Description"] = web_acl["Description"];
            }
            // Everything else UpdateWebACL would otherwise reset.
            for (const char* field :
                 {"CustomResponseBodies", "CaptchaConfig", "ChallengeConfig", "TokenDomains",
                  "AssociationConfig", "DataProtectionConfig"}) {
                if (web_acl.contains(field)) {
                    input[field] = web_acl[field];
                }
            }
            try {
                api_.call_json("wafv2", waf_prefix, "UpdateWebACL", input, CallKind::write);
                return;
            } catch (const AwsFailure& failure) {
                if (failure.code() != "WAFOptimisticLockException" || attempt >= lock_attempts) {
                    throw;
                }
            }
        }
    }

    // The rule, by the web ACL's id (its name is only a label) and the rule's name.
    std::string resource(const std::string& target) override {
        const WafTarget where = parse(target);
        return "wafv2:" + api_.settings().region + ":" + where.scope + ":" + where.id + "/" +
               where.rule;
    }

    std::chrono::milliseconds settle_margin() const override { return aws_settle_margin; }

  private:
    json get(const WafTarget& where) const {
        const json answer = api_.call_json(
            "wafv2", waf_prefix, "GetWebACL",
            {{"Name", where.name}, {"Scope", where.scope}, {"Id", where.id}}, CallKind::read);
        if (!answer.contains("WebACL") || !answer.contains("LockToken")) {
            fail_provider("GetWebACL answered without WebACL or LockToken");
        }
        return answer;
    }

    static json changed_rules(const json& web_acl, const std::string& rule_name, const json& to) {
        json rules = json::array();
        int last_priority = -1;
        bool found = false;
        for (json rule : web_acl.value("Rules", json::array())) {
            last_priority = std::max(last_priority, rule.value("Priority", 0));
            if (rule.value("Name", "") == rule_name) {
                found = true;
                if (!to.value("present", true)) {
                    continue;  // removed
                }
                json& rate = rule["Statement"]["RateBasedStatement"];
                rate["Limit"] = to["limit"];
                if (to.contains("evaluation_window_sec")) {
                    rate["EvaluationWindowSec"] = to["evaluation_window_sec"];
                }
            }
            rules.push_back(rule);
        }
        if (!found && to.value("present", false)) {
            rules.push_back(
                {{"Name", rule_name},
                 {"Priority", last_priority + 1},
                 {"Statement",
                  {{"RateBasedStatement",
                    {{"Limit", to["limit"]},
                     {"AggregateKeyType", "IP"},
                     {"EvaluationWindowSec", to.value("evaluation_window_sec", 300)}}}}},
                 {"Action", {{"Block", json::object()}}},
                 {"VisibilityConfig",
                  {{"SampledRequestsEnabled", true},
                   {"CloudWatchMetricsEnabled", true},
                   {"MetricName", rule_name}}}});
        }
        return rules;
    }

    static WafTarget parse(const std::string& target) {
        std::vector<std::string> parts;
        std::size_t start = 0;
        while (true) {
            const auto slash = target.find('/', start);
            parts.push_back(target.substr(start, slash - start));
            if (slash == std::string::npos) {
                break;
            }
            start = slash + 1;
        }
        const bool shaped = parts.size() == 5 && parts[0] == "waf" &&
                            std::none_of(parts.begin(), parts.end(),
                                         [](const std::string& part) { return part.empty(); });
        if (!shaped || (parts[1] != "REGIONAL" && parts[1] != "CLOUDFRONT")) {
            fail_invalid("target \"" + target +
                         "\": expected waf/REGIONAL|CLOUDFRONT/ACL_NAME/ACL_ID/RULE_NAME");
        }
        return {parts[1], parts[2], parts[3], parts[4]};
    }

    const AwsApi& api_;
};

}  // namespace

json waf_rate_limit_parameters() {
    return json::parse(R"json({
      "type": "object",
      "properties": {
        "limit": {"type": "integer", "minimum": 10, "maximum": 2000000000,
                  "description": "requests per evaluation window per aggregation key"},
        "evaluation_window_sec": {"enum": [60, 120, 300, 600]}
      },
      "required": ["limit"],
      "additionalProperties": false
    })json");
}

std::unique_ptr<Action> make_waf_rate_limit(const AwsApi& api) {
    return std::make_unique<WafRateLimit>(api);
}

}  // namespace mitigate::plugin
