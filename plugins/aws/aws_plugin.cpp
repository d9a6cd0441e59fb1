// The `aws` provider: ECS scaling, WAFv2 rate-based throttles and ALB weighted traffic
// shifts, each a reversible action (aws_actions.h). Every request is signed with SigV4 by
// the runtime for the service it goes to, with the credential profile named in
// settings.credential (kind aws_sigv4, whose region must be settings.region).
//
// mitigate.state("aws", TARGET) answers the read of whichever action the target's
// prefix names: ecs/..., waf/..., alb/...
#include "plugins/aws/aws_actions.h"

namespace mitigate::plugin {
namespace {

const json settings_schema = json::parse(R"json({
  "type": "object",
  "properties": {
    "region": {"type": "string", "minLength": 1, "description": "e.g. us-east-1"},
    "endpoint": {"type": "string", "minLength": 1,
                 "description": "one URL for every service instead of AWS's (an emulator)"},
    "credential": {"type": "string", "minLength": 1,
                   "description": "the aws_sigv4 credential profile"},
    "ecs_cluster": {"type": "string", "minLength": 1,
                    "description": "the cluster of ecs/SERVICE targets (default: default)"}
  },
  "required": ["region", "credential"],
  "additionalProperties": false
})json");

class AwsProvider : public Provider {
  public:
    json manifest() const override {
        return {
            {"name", "aws"},
            {"version", "1.0.0"},
            {"description",
             "AWS: scale an ECS service, change a WAFv2 rate-based limit, shift ALB "
             "weights between target groups"},
            {"actions",
             {{"ecs.scale",
               {{"description", "set an ECS service's desired count (and its Auto Scaling range)"},
                {"target", "ecs/SERVICE or ecs/CLUSTER/SERVICE"},
                {"parameters", ecs_scale_parameters()}}},
              {"waf.rate_limit",
               {{"description", "set (or add) a WAFv2 rate-based rule's limit"},
                {"target", "waf/REGIONAL|CLOUDFRONT/ACL_NAME/ACL_ID/RULE_NAME"},
                {"parameters", waf_rate_limit_parameters()}}},
              {"alb.shift",
               {{"description", "change the weights of an ALB forward action"},
                {"target", "alb/LISTENER_OR_RULE_ARN"},
                {"parameters", alb_shift_parameters()}}}}},
            {"settings", settings_schema},
            {"egress",
             {{"hosts",
               "ecs, application-autoscaling, wafv2 and elasticloadbalancing "
               ".REGION.amazonaws.com (or settings.endpoint)"},
              {"credentials", "aws_sigv4 (access key id, secret access key, region)"}}}};
    }

    void configure(const json& settings, const Host& host) override {
        host_ = std::make_unique<Host>(host);
        api_ = std::make_unique<AwsApi>(*host_, read_aws_settings(settings));
        ecs_scale_ = make_ecs_scale(*api_);
        waf_rate_limit_ = make_waf_rate_limit(*api_);
        alb_shift_ = make_alb_shift(*api_);
    }

    json state(const std::string& target) override {
        for (const char* name : {"ecs.scale", "waf.rate_limit", "alb.shift"}) {
            const std::string prefix = std::string(name).substr(0, std::string(name).find('.'));
            if (target.rfind(prefix + "/", 0) == 0) {
                return action(name)->read(target);
            }
        }
        fail_invalid("no aws state for \"" + target + "\": targets start with ecs/, waf/ or alb/");
    }

    Action* action(const std::string& name) override {
        if (!api_) {
            fail_invalid("the aws provider is not configured");
        }
        if (name == "ecs.scale") {
            return ecs_scale_.get();
        }
        if (name == "waf.rate_limit") {
            return waf_rate_limit_.get();
        }
        if (name == "alb.shift") {
            return alb_shift_.get();
        }
        return nullptr;
    }

  private:
    std::unique_ptr<Host> host_;
    std::unique_ptr<AwsApi> api_;
    std::unique_ptr<Action> ecs_scale_;
    std::unique_ptr<Action> waf_rate_limit_;
    std::unique_ptr<Action> alb_shift_;
};

}  // namespace
}  // namespace mitigate::plugin

MITIGATE_PLUGIN(mitigate::plugin::AwsProvider)
