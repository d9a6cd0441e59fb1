// An AWS emulator on loopback for the aws provider: the handful of API operations it
// uses, on one endpoint, spoken strictly as AWS speaks them.
//
//   Every request: POST /, signed with Signature Version 4 (sigv4_verifier.h) for the
//   service the operation belongs to, with the emulator's region and access keys.
//   JSON 1.1 (Content-Type application/x-amz-json-1.1, X-Amz-Target Prefix.Operation):
//     ECS                      AmazonEC2ContainerServiceV20141113.DescribeServices,
//                              .UpdateService                          (service ecs)
//     Application Auto Scaling AnyScaleFrontendService.DescribeScalableTargets,
//                              .RegisterScalableTarget    (application-autoscaling)
//     WAFv2                    AWSWAF_20190729.GetWebACL, .UpdateWebACL  (wafv2)
//   Query (form body Action=...&Version=2015-12-01, XML answers):
//     ELBv2                    DescribeRules, DescribeListeners, ModifyRule,
//                              ModifyListener          (elasticloadbalancing)
// Errors have AWS's shapes: {"__type": "...", "message": "..."} for JSON services,
// <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse> for
// Query. What is checked: the signature (and its 15-minute window), required fields,
// unknown fields in UpdateWebACL, WAF's LockToken (a stale one is
// WAFOptimisticLockException), ELBv2 weights (0-999) and target groups, and that Auto
// Scaling clamps desiredCount into [MinCapacity, MaxCapacity] when they change.
// Only forward actions are modelled for ELBv2 rules.
//
// Faults: faults() (fault_injector.h) by operation name, and /_emulator/faults.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "plugins/emulators/fault_injector.h"

namespace mitigate {

struct AwsEmulatorOptions {
    std::string region = "us-east-1";
    std::string account = "123456789012";
    std::string access_key_id;
    std::string secret_access_key;
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
};

class AwsEmulator {
  public:
    explicit AwsEmulator(AwsEmulatorOptions options);
    ~AwsEmulator();
    AwsEmulator(const AwsEmulator&) = delete;
    AwsEmulator& operator=(const AwsEmulator&) = delete;

    std::string url() const;
    FaultInjector& faults();

    // ECS and Application Auto Scaling.
    void add_ecs_service(const std::string& cluster, const std::string& service, int desired);
    void add_scalable_target(const std::string& cluster, const std::string& service,
                             int min_capacity, int max_capacity);
    nlohmann::json ecs_service(const std::string& cluster, const std::string& service) const;
    nlohmann::json scalable_target(const std::string& cluster, const std::string& service) const;
    void set_desired_count(const std::string& cluster, const std::string& service, int desired);

    // WAFv2: a web ACL with `rules` (WAF's Rule objects). Returns its id.
    std::string add_web_acl(const std::string& scope, const std::string& name,
                            const nlohmann::json& rules);
    nlohmann::json web_acl(const std::string& scope, const std::string& name,
                           const std::string& id) const;
    // As a person in the console would: changes the rule's limit and the LockToken.
    void set_rate_limit(const std::string& scope, const std::string& name, const std::string& id,
                        const std::string& rule, long long limit);

    // ELBv2: target groups by name (returns the ARN), a listener whose default action
    // forwards to `weights` (target group ARN -> weight), and rules on it.
    std::string add_target_group(const std::string& name);
    std::string add_listener(const std::string& load_balancer,
                             const std::map<std::string, int>& weights);
    std::string add_rule(const std::string& listener_arn, int priority,
                         const std::map<std::string, int>& weights);
    // The forward weights of a rule or listener's default action, by ARN.
    std::map<std::string, int> weights(const std::string& rule_or_listener_arn) const;

    // Runs `change` just before the next `operation` request is handled, as if someone
    // else saved in between: how a test makes a LockToken go stale.
    void before_next(const std::string& operation, std::function<void()> change);

    // Successful calls of a mutating operation ("UpdateService", "UpdateWebACL",
    // "ModifyRule", ...): a retried apply must not add one.
    int writes(const std::string& operation) const;

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace mitigate
