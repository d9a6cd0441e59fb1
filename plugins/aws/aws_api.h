// The two AWS protocols the aws provider speaks, through the runtime's egress (which
// signs each request with SigV4 for the service named here; the plugin never sees a key):
//   JSON 1.1  POST / with X-Amz-Target: Prefix.Operation (ECS, Application Auto Scaling,
//             WAFv2)
//   Query     POST / with a form body Action=...&Version=... and an XML answer (ELBv2)
// AWS errors become Failure with AWS's code first in the message ("ServiceNotFoundException:
// Service not found."): throttling and 5xx are MITIGATE_UNAVAILABLE, a missing resource
// MITIGATE_INVALID, WAFOptimisticLockException MITIGATE_CONFLICT, anything else
// MITIGATE_PROVIDER.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "plugins/sdk/provider.h"

namespace mitigate::plugin {

struct AwsSettings {
    std::string region;
    std::string endpoint;  // one URL for every service (an emulator); "" for AWS's own
    std::string credential;
    std::string ecs_cluster = "default";
};

AwsSettings read_aws_settings(const json& settings);

// An AWS error answer, with its code kept for callers that handle one (the WAF lock).
class AwsFailure : public Failure {
  public:
    AwsFailure(mitigate_status status, std::string code, const std::string& message)
        : Failure(status, code + ": " + message), code_(std::move(code)) {}
    const std::string& code() const { return code_; }

  private:
    std::string code_;
};

using QueryParameters = std::vector<std::pair<std::string, std::string>>;

// A read is sent again after any transient failure; a write only when it surely did not
// reach AWS (429, 503, no connection): after a lost answer the SDK reads before writing
// again (plugins/sdk/provider.h).
enum class CallKind { read, write };

// `value` flattened the Query way under `prefix`: objects as prefix.Key, lists as
// prefix.member.N, booleans as true/false.
void append_query(QueryParameters& parameters, const std::string& prefix, const json& value);

class AwsApi {
  public:
    AwsApi(const Host& host, AwsSettings settings) : host_(host), settings_(std::move(settings)) {}

    // service: the signing name and endpoint prefix ("ecs", "wafv2",
    // "application-autoscaling"). Returns the JSON answer.
    json call_json(const std::string& service, const std::string& target_prefix,
                   const std::string& operation, const json& input, CallKind kind) const;
    // ELBv2: returns <OperationResult> as JSON (lists of <member> as arrays, text as
    // strings).
    json call_elbv2(const std::string& operation, const QueryParameters& parameters,
                    CallKind kind) const;

    const AwsSettings& settings() const { return settings_; }

  private:
    std::string endpoint(const std::string& service) const;
    const Host& host_;
    AwsSettings settings_;
};

}  // namespace mitigate::plugin
