// ecs.scale. Target "ecs/SERVICE" (in settings.ecs_cluster) or "ecs/CLUSTER/SERVICE".
// State {"desired_count", "running_count", "pending_count", "status"} plus
// {"min_capacity", "max_capacity"} when Application Auto Scaling manages the service:
// Auto Scaling would otherwise undo the change at its next evaluation, so the plan moves
// the range too (scaling out raises the minimum to the new count, scaling in lowers the
// maximum), and the revert restores both.
#include <algorithm>
#include <cmath>

#include "plugins/aws/aws_actions.h"

namespace mitigate::plugin {
namespace {

const char* const ecs_prefix = "AmazonEC2ContainerServiceV20141113";
const char* const autoscaling_prefix = "AnyScaleFrontendService";

struct EcsTarget {
    std::string cluster;
    std::string service;
};

class EcsScale : public Action {
  public:
    explicit EcsScale(const AwsApi& api) : api_(api) {}

    json read(const std::string& target) override {
        const EcsTarget where = parse(target);
        const json answer =
            api_.call_json("ecs", ecs_prefix, "DescribeServices",
                           {{"cluster", where.cluster}, {"services", json::array({where.service})}},
                           CallKind::read);
        const json services = answer.value("services", json::array());
        if (services.empty()) {
            const json failures = answer.value("failures", json::array());
            fail_invalid(target + ": no ECS service " + where.service + " in cluster " +
                         where.cluster +
                         (failures.empty() ? "" : " (" + failures[0].value("reason", "") + ")"));
        }
        const json& service = services[0];
        json state{{"desired_count", service.value("desiredCount", 0)},
                   {"running_count", service.value("runningCount", 0)},
                   {"pending_count", service.value("pendingCount", 0)},
                   {"status", service.value("status", "")}};
        const json targets =
            api_.call_json("application-autoscaling", autoscaling_prefix, "DescribeScalableTargets",
                           {{"ServiceNamespace", "ecs"},
                            {"ResourceIds", json::array({resource_id(where)})},
                            {"ScalableDimension", "ecs:service:DesiredCount"}},
                           CallKind::read)
                .value("ScalableTargets", json::array());
        if (!targets.empty()) {
            state["min_capacity"] = targets[0].value("MinCapacity", 0);
            state["max_capacity"] = targets[0].value("MaxCapacity", 0);
        }
        return state;
    }

    PlannedChange plan(const std::string& target, const json& parameters,
                       const json& state) override {
        const int desired = parameters.at("desired_count").get<int>();
        const int current = state.at("desired_count").get<int>();
        if (state.value("status", "ACTIVE") != "ACTIVE") {
            fail_invalid(target + " is " + state.value("status", "") + ", not ACTIVE");
        }
        PlannedChange change;
        change.forward = {{"desired_count", desired}};
        change.inverse = {{"desired_count", current}};
        std::string range;
        if (state.contains("min_capacity")) {
            const int low = state["min_capacity"].get<int>();
            const int high = state["max_capacity"].get<int>();
            const int new_low = desired >= current ? desired : std::min(low, desired);
            const int new_high = desired >= current ? std::max(high, desired) : desired;
            change.forward["min_capacity"] = new_low;
            change.forward["max_capacity"] = new_high;
            change.inverse["min_capacity"] = low;
            change.inverse["max_capacity"] = high;
            range = "; Auto Scaling range " + std::to_string(low) + "-" + std::to_string(high) +
                    " -> " + std::to_string(new_low) + "-" + std::to_string(new_high);
            // Two writes: the range first (with it in place, Auto Scaling cannot pull the
            // count back), then the count; the runtime journals each and undoes the first
            // if the second is refused.
            change.steps = {{"autoscaling_range", {"min_capacity", "max_capacity"}},
                            {"desired_count", {"desired_count"}}};
            // The range is the envelope the count moves in, both ways: it goes back first
            // too, so that Auto Scaling never pulls a restored count to a stale edge.
            change.revert_in_apply_order = true;
        }
        const int larger = std::max(std::max(desired, current), 1);
        change.blast_ratio = std::abs(desired - current) / static_cast<double>(larger);
        if (current > 0) {
            change.resulting_fraction = desired / static_cast<double>(current);
        }
        change.blast_description = target + ": desired count " + std::to_string(current) + " -> " +
                                   std::to_string(desired) + " tasks" + range;
        return change;
    }

    void write(const std::string& target, const json& from, const json& to) override {
        const EcsTarget where = parse(target);
        // ECS has no compare-and-set: check right before writing. Already there (Auto
        // Scaling moved the count into a new range meanwhile): nothing to write.
        const json live = read(target);
        if (matches(live, to)) {
            return;
        }
        if (!matches(live, from)) {
            fail_conflict(target + " changed since it was read (" + live.dump() + ")");
        }
        // The range first: with it in place, Auto Scaling cannot pull the count back. A
        // plan of steps writes one of the two at a time: only what `to` holds.
        if (to.contains("min_capacity")) {
            api_.call_json("application-autoscaling", autoscaling_prefix, "RegisterScalableTarget",
                           {{"ServiceNamespace", "ecs"},
                            {"ResourceId", resource_id(where)},
                            {"ScalableDimension", "ecs:service:DesiredCount"},
                            {"MinCapacity", to["min_capacity"]},
                            {"MaxCapacity", to["max_capacity"]}},
                           CallKind::write);
        }
        if (to.contains("desired_count")) {
            api_.call_json("ecs", ecs_prefix, "UpdateService",
                           {{"cluster", where.cluster},
                            {"service", where.service},
                            {"desiredCount", to["desired_count"]}},
                           CallKind::write);
        }
    }

    // ecs/SERVICE and ecs/CLUSTER/SERVICE name one service.
    std::string resource(const std::string& target) override {
        const EcsTarget where = parse(target);
        return "ecs:" + api_.settings().region + ":" + where.cluster + "/" + where.service;
    }

    std::chrono::milliseconds settle_margin() const override { return aws_settle_margin; }

  private:
    EcsTarget parse(const std::string& target) const {
        const std::string prefix = "ecs/";
        if (target.rfind(prefix, 0) != 0 || target.size() == prefix.size()) {
            fail_invalid("target \"" + target + "\": expected ecs/SERVICE or ecs/CLUSTER/SERVICE");
        }
        const std::string rest = target.substr(prefix.size());
        const auto slash = rest.find('/');
        if (slash == std::string::npos) {
            return {api_.settings().ecs_cluster, rest};
        }
        if (slash == 0 || slash + 1 == rest.size() ||
            rest.find('/', slash + 1) != std::string::npos) {
            fail_invalid("target \"" + target + "\": expected ecs/SERVICE or ecs/CLUSTER/SERVICE");
        }
        return {rest.substr(0, slash), rest.substr(slash + 1)};
    }

    static std::string resource_id(const EcsTarget& where) {
        return "service/" + where.cluster + "/" + where.service;
    }

    const AwsApi& api_;
};

}  // namespace

json ecs_scale_parameters() {
    return json::parse(R"json({
      "type": "object",
      "properties": {
        "desired_count": {"type": "integer", "minimum": 0, "maximum": 5000,
                          "description": "the number of tasks to run"}
      },
      "required": ["desired_count"],
      "additionalProperties": false
    })json");
}

std::unique_ptr<Action> make_ecs_scale(const AwsApi& api) {
    return std::make_unique<EcsScale>(api);
}

}  // namespace mitigate::plugin
