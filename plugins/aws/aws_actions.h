// The aws provider's actions, one file each. Every one reads, plans an exact inverse
// from what it read, and writes only while the live state is still what it planned from
// (WAF: enforced by AWS with its LockToken; ECS and ALB: AWS has no precondition, so it is
// a read right before the write).
#pragma once

#include <chrono>
#include <memory>

#include "plugins/aws/aws_api.h"

namespace mitigate::plugin {

// AWS documents no bound on how long an accepted API request may take to be carried out
// once the client gave up; 60 s is the read timeout of AWS's own SDKs (mitigate gives up
// after at most 10 s). The settle margin of every aws action.
inline constexpr std::chrono::milliseconds aws_settle_margin{60000};

// ecs.scale: an ECS service's desiredCount, and its Application Auto Scaling range when
// Auto Scaling manages it (ecs_scale.cpp).
std::unique_ptr<Action> make_ecs_scale(const AwsApi& api);
// waf.rate_limit: the limit of a WAFv2 rate-based rule (waf_rate_limit.cpp).
std::unique_ptr<Action> make_waf_rate_limit(const AwsApi& api);
// alb.shift: the weights of an ELBv2 forward action (alb_shift.cpp).
std::unique_ptr<Action> make_alb_shift(const AwsApi& api);

// The parameter schemas, for the manifest.
json ecs_scale_parameters();
json waf_rate_limit_parameters();
json alb_shift_parameters();

}  // namespace mitigate::plugin
