// alb.shift. Target "alb/ARN": a listener rule's ARN (its actions) or a listener's ARN
// (its default actions). State {"weights": {"<target group ARN>": weight, ...}} of the
// one forward action there. Parameters name target groups already in that action, by
// ARN or by name, with their new weights (0-999); the others keep theirs. Rolling back a
// canary is shifting the weight back to the previous target group, which is what the
// revert does: it restores every weight it read.
//
// ModifyRule and ModifyListener replace the whole action list, so the write sends every
// action back as it was read with only the forward weights changed.
#include <cmath>

#include "plugins/aws/aws_actions.h"

namespace mitigate::plugin {
namespace {

struct Place {
    bool listener = false;  // the default actions of a listener, not a rule's
    std::string arn;
};

json as_list(const json& value) {
    return value.is_array() ? value : json::array();  // an empty XML list reads as ""
}

std::string target_group_name(const std::string& arn) {
    const auto start = arn.find("targetgroup/");
    if (start == std::string::npos) {
        return arn;
    }
    const std::string rest = arn.substr(start + 12);
    return rest.substr(0, rest.find('/'));
}

int as_int(const json& value) {
    return value.is_string() ? std::stoi(value.get<std::string>()) : value.get<int>();
}

class AlbShift : public Action {
  public:
    explicit AlbShift(const AwsApi& api) : api_(api) {}

    json read(const std::string& target) override {
        return {{"weights", weights_of(forward_action(actions(parse(target)), target))}};
    }

    PlannedChange plan(const std::string& target, const json& parameters,
                       const json& state) override {
        if (parameters.at("weights").empty()) {
            fail_invalid("parameters.weights: name at least one target group");
        }
        const json& old_weights = state.at("weights");
        json new_weights = old_weights;
        for (const auto& [name, weight] : parameters.at("weights").items()) {
            std::string matched;
            for (const auto& [arn, unused] : old_weights.items()) {
                if (arn == name || target_group_name(arn) == name) {
                    matched = arn;
                }
            }
            if (matched.empty()) {
                fail_invalid("parameters.weights." + name + ": not a target group of " + target +
                             "'s forward action (it has " + describe(old_weights) + ")");
            }
            new_weights[matched] = weight;
        }
        int total = 0;
        for (const auto& [arn, weight] : new_weights.items()) {
            total += weight.get<int>();
        }
        if (total == 0) {
            fail_invalid("parameters.weights: at least one target group needs a weight above 0");
        }
        PlannedChange change;
        change.forward = {{"weights", new_weights}};
        change.inverse = {{"weights", old_weights}};
        change.blast_ratio = moved_share(old_weights, new_weights);
        change.blast_description =
            target + ": " + describe(old_weights) + " -> " + describe(new_weights) + " (" +
            std::to_string(std::lround(change.blast_ratio * 100)) + "% of the traffic moves)";
        return change;
    }

    void write(const std::string& target, const json& from, const json& to) override {
        const Place place = parse(target);
        json all = actions(place);
        json& forward = forward_action(all, target);
        const json live{{"weights", weights_of(forward)}};
        if (matches(live, to)) {
            return;
        }
        if (!matches(live, from)) {
            fail_conflict(target + " changed since it was read (" + live.dump() + ")");
        }
        json groups = json::array();
        for (const auto& [arn, weight] : to.at("weights").items()) {
            groups.push_back({{"TargetGroupArn", arn}, {"Weight", weight}});
        }
        json rebuilt{{"Type", "forward"}};
        if (forward.contains("Order")) {
            rebuilt["Order"] = forward["Order"];
        }
        json config{{"TargetGroups", groups}};
        if (forward.contains("ForwardConfig") &&
            forward["ForwardConfig"].contains("TargetGroupStickinessConfig")) {
            config["TargetGroupStickinessConfig"] =
                forward["ForwardConfig"]["TargetGroupStickinessConfig"];
        }
        rebuilt["ForwardConfig"] = config;
        forward = rebuilt;
        QueryParameters parameters;
        if (place.listener) {
            parameters.emplace_back("ListenerArn", place.arn);
            append_query(parameters, "DefaultActions", all);
            api_.call_elbv2("ModifyListener", parameters, CallKind::write);
        } else {
            parameters.emplace_back("RuleArn", place.arn);
            append_query(parameters, "Actions", all);
            api_.call_elbv2("ModifyRule", parameters, CallKind::write);
        }
    }

    // The ARN names the listener or rule, region and account included.
    std::string resource(const std::string& target) override { return parse(target).arn; }

    std::chrono::milliseconds settle_margin() const override { return aws_settle_margin; }

  private:
    static Place parse(const std::string& target) {
        const std::string prefix = "alb/";
        const std::string arn = target.rfind(prefix, 0) == 0 ? target.substr(prefix.size()) : "";
        if (arn.rfind("arn:", 0) != 0 || arn.find(":elasticloadbalancing:") == std::string::npos) {
            fail_invalid("target \"" + target +
                         "\": expected alb/ followed by a listener or listener-rule ARN");
        }
        if (arn.find(":listener-rule/") != std::string::npos) {
            return {false, arn};
        }
        if (arn.find(":listener/") != std::string::npos) {
            return {true, arn};
        }
        fail_invalid("target \"" + target +
                     "\": the ARN is neither a listener nor a listener rule");
    }

    json actions(const Place& place) const {
        QueryParameters parameters;
        if (place.listener) {
            parameters.emplace_back("ListenerArns.member.1", place.arn);
            const json listeners =
                as_list(api_.call_elbv2("DescribeListeners", parameters, CallKind::read)
                            .value("Listeners", json()));
            if (listeners.empty()) {
                fail_invalid("no listener " + place.arn);
            }
            return as_list(listeners[0].value("DefaultActions", json()));
        }
        parameters.emplace_back("RuleArns.member.1", place.arn);
        const json rules = as_list(
            api_.call_elbv2("DescribeRules", parameters, CallKind::read).value("Rules", json()));
        if (rules.empty()) {
            fail_invalid("no listener rule " + place.arn);
        }
        return as_list(rules[0].value("Actions", json()));
    }

    static json& forward_action(json& all, const std::string& target) {
        json* found = nullptr;
        for (json& action : all) {
            if (action.value("Type", "") == "forward") {
                if (found != nullptr) {
                    fail_invalid(target + " has more than one forward action");
                }
                found = &action;
            }
        }
        if (found == nullptr) {
            fail_invalid(target + " has no forward action to shift");
        }
        return *found;
    }
    static json forward_action(const json& all, const std::string& target) {
        json copy = all;
        return forward_action(copy, target);
    }

    static json weights_of(const json& forward) {
        json weights = json::object();
        if (forward.contains("ForwardConfig") && forward["ForwardConfig"].is_object()) {
            for (const json& group :
                 as_list(forward["ForwardConfig"].value("TargetGroups", json()))) {
                weights[group.value("TargetGroupArn", "")] =
                    group.contains("Weight") ? as_int(group["Weight"]) : 1;
            }
        }
        if (weights.empty() && forward.contains("TargetGroupArn")) {
            weights[forward["TargetGroupArn"].get<std::string>()] = 1;
        }
        return weights;
    }

    static double moved_share(const json& before, const json& after) {
        auto total = [](const json& weights) {
            double sum = 0;
            for (const auto& [arn, weight] : weights.items()) {
                sum += weight.get<int>();
            }
            return sum;
        };
        const double before_total = total(before);
        const double after_total = total(after);
        double moved = 0;
        for (const auto& [arn, weight] : after.items()) {
            const double old_share = before_total > 0 ? before.value(arn, 0) / before_total : 0;
            const double new_share = weight.get<int>() / after_total;
            moved += std::max(0.0, new_share - old_share);
        }
        return moved;
    }

    static std::string describe(const json& weights) {
        std::string text;
        for (const auto& [arn, weight] : weights.items()) {
            text += (text.empty() ? "" : ", ") + target_group_name(arn) + " " + weight.dump();
        }
        return text;
    }

    const AwsApi& api_;
};

}  // namespace

json alb_shift_parameters() {
    return json::parse(R"json({
      "type": "object",
      "properties": {
        "weights": {
          "type": "object",
          "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 999},
          "description": "target group (ARN or name) -> new weight"
        }
      },
      "required": ["weights"],
      "additionalProperties": false
    })json");
}

std::unique_ptr<Action> make_alb_shift(const AwsApi& api) {
    return std::make_unique<AlbShift>(api);
}

}  // namespace mitigate::plugin
