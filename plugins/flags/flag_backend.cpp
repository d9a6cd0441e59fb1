#include "plugins/flags/flag_backend.h"

namespace mitigate::plugin {
namespace {

// A flag key goes into URL paths: allow what flag systems allow, nothing that changes
// the path.
void check_flag_key(const std::string& flag) {
    for (const char character : flag) {
        const bool ok = std::isalnum(static_cast<unsigned char>(character)) != 0 ||
                        character == '-' || character == '_' || character == '.';
        if (!ok) {
            fail_invalid("target: \"" + flag + "\" is not a flag key (letters, digits, - _ .)");
        }
    }
}

// Classifies an HTTP answer the way every API backend needs it.
void check_response(const HttpResponse& response, const std::string& what) {
    if (response.status >= 200 && response.status < 300) {
        return;
    }
    std::string detail = response.body.substr(0, 300);
    const std::string message = what + ": HTTP " + std::to_string(response.status) + " " + detail;
    if (response.status == 404) {
        fail_invalid(message);
    }
    if (response.status == 429 || response.status >= 500) {
        fail_unavailable(message);
    }
    fail_provider(message);
}

// ---- flagd ---------------------------------------------------------------------------

class FlagdBackend : public FlagBackend {
  public:
    FlagdBackend(std::string path, const Host& host) : path_(std::move(path)), host_(host) {}

    std::string resource(const std::string& flag) const override {
        return "flagd:" + path_ + "#" + flag;
    }
    // The runtime replaces the file (rename) before the call that asked for it returns:
    // nothing is in flight once a call has ended, whatever its answer.
    std::chrono::milliseconds settle_margin() const override {
        return std::chrono::milliseconds(0);
    }

    json read(const std::string& flag) override {
        const nlohmann::ordered_json document = load(host_.read_file(path_).content);
        const auto& definition = find(document, flag);
        return {{"state", definition.value("state", "ENABLED")},
                {"defaultVariant", definition.value("defaultVariant", "")},
                {"variants", json(definition.value("variants", nlohmann::ordered_json::object()))}};
    }

    json desired_state(const std::string& flag, const json& parameters,
                       const json& state) override {
        const json variants = state.value("variants", json::object());
        if (parameters.contains("variant")) {
            const std::string variant = parameters["variant"].get<std::string>();
            if (!variants.contains(variant)) {
                fail_invalid("parameters.variant: " + flag + " has no variant \"" + variant +
                             "\" (it has " + variants.dump() + ")");
            }
            return {{"defaultVariant", variant}};
        }
        for (const auto& [name, value] : variants.items()) {
            if (value == parameters["value"]) {
                return {{"defaultVariant", name}};
            }
        }
        fail_invalid("parameters.value: no variant of " + flag + " has the value " +
                     parameters["value"].dump() + " (variants " + variants.dump() + ")");
    }

    json kill_switch_state(const json& /*state*/) override { return {{"state", "DISABLED"}}; }

    void write(const std::string& flag, const json& from, const json& to) override {
        const FileContent file = host_.read_file(path_);
        nlohmann::ordered_json document = load(file.content);
        auto& definition = find(document, flag);
        for (const auto& [key, value] : from.items()) {
            if (json(definition.value(key, nlohmann::ordered_json())) != value) {
                fail_conflict(flag + "." + key + " is " +
                              definition.value(key, nlohmann::ordered_json()).dump() + " in " +
                              path_ + ", not " + value.dump());
            }
        }
        for (const auto& [key, value] : to.items()) {
            definition[key] = value;
        }
        // Replaced only if nobody wrote the file since it was read (if_match).
        host_.write_file(path_, document.dump(2) + "\n", file.etag);
    }

  private:
    nlohmann::ordered_json load(const std::string& text) const {
        nlohmann::ordered_json document = nlohmann::ordered_json::parse(text, nullptr, false);
        if (document.is_discarded() || !document.is_object() || !document.contains("flags") ||
            !document["flags"].is_object()) {
            fail_provider(path_ + " is not a flagd flag file (no \"flags\" object)");
        }
        return document;
    }

    nlohmann::ordered_json& find(nlohmann::ordered_json& document, const std::string& flag) const {
        if (!document["flags"].contains(flag) || !document["flags"][flag].is_object()) {
            fail_invalid("target: no flag \"" + flag + "\" in " + path_);
        }
        return document["flags"][flag];
    }
    const nlohmann::ordered_json& find(const nlohmann::ordered_json& document,
                                       const std::string& flag) const {
        if (!document["flags"].contains(flag) || !document["flags"][flag].is_object()) {
            fail_invalid("target: no flag \"" + flag + "\" in " + path_);
        }
        return document["flags"][flag];
    }

    std::string path_;
    Host host_;
};

// ---- The HTTP backends ---------------------------------------------------------------

// Where an API backend's flags live, from the provider's settings.
struct ApiLocation {
    std::string url;          // base URL, no trailing slash
    std::string project;      // default "default"
    std::string environment;  // default "production"
    std::string credential;   // the credential profile the broker adds
};

ApiLocation api_location(const json& settings) {
    return {settings.at("url").get<std::string>(), settings.value("project", "default"),
            settings.value("environment", "production"), settings.value("credential", "")};
}

// ---- Unleash -------------------------------------------------------------------------

class UnleashBackend : public FlagBackend {
  public:
    UnleashBackend(ApiLocation location, const Host& host)
        : location_(std::move(location)), host_(host) {}

    std::string resource(const std::string& flag) const override {
        return "unleash:" + location_.url + "/" + location_.project + "/" + location_.environment +
               "/" + flag;
    }
    // Unleash documents no bound on how long an accepted request may take to be carried
    // out; 60 s is the read timeout the usual HTTP clients give up after.
    std::chrono::milliseconds settle_margin() const override { return std::chrono::seconds(60); }

    json read(const std::string& flag) override {
        check_flag_key(flag);
        const HttpResponse response =
            send("GET", "/api/admin/projects/" + location_.project + "/features/" + flag);
        check_response(response, "unleash: read " + flag);
        for (const auto& environment : response.json_body().value("environments", json::array())) {
            if (environment.value("name", "") == location_.environment) {
                return {{"enabled", environment.value("enabled", false)}};
            }
        }
        fail_invalid("target: feature " + flag + " has no environment \"" + location_.environment +
                     "\"");
    }

    json desired_state(const std::string& flag, const json& parameters,
                       const json& /*state*/) override {
        if (!parameters.contains("value") || !parameters["value"].is_boolean()) {
            fail_invalid("parameters: the unleash backend toggles " + flag +
                         " per environment: give {\"value\": true|false}");
        }
        return {{"enabled", parameters["value"].get<bool>()}};
    }

    json kill_switch_state(const json& /*state*/) override { return {{"enabled", false}}; }

    void write(const std::string& flag, const json& /*from*/, const json& to) override {
        // Unleash's toggle endpoint has no precondition; provider.h compared the live
        // state with `from` just before this call.
        const bool enabled = to.at("enabled").get<bool>();
        const HttpResponse response =
            send("POST", "/api/admin/projects/" + location_.project + "/features/" + flag +
                             "/environments/" + location_.environment + (enabled ? "/on" : "/off"));
        check_response(response, "unleash: turn " + flag + (enabled ? " on" : " off"));
    }

  private:
    HttpResponse send(const std::string& method, const std::string& path) const {
        HttpRequest request;
        request.method = method;
        request.url = location_.url + path;
        request.credential = location_.credential;
        request.headers["Accept"] = "application/json";
        if (method == "POST") {
            request.headers["Content-Type"] = "application/json";
            request.body = "{}";
        }
        return host_.http(request);
    }

    ApiLocation location_;
    Host host_;
};

// ---- LaunchDarkly --------------------------------------------------------------------

class LaunchDarklyBackend : public FlagBackend {
  public:
    LaunchDarklyBackend(ApiLocation location, const Host& host)
        : location_(std::move(location)), host_(host) {}

    std::string resource(const std::string& flag) const override {
        return "launchdarkly:" + location_.url + "/" + location_.project + "/" +
               location_.environment + "/" + flag;
    }
    // As for Unleash: no documented bound; 60 s.
    std::chrono::milliseconds settle_margin() const override { return std::chrono::seconds(60); }

    json read(const std::string& flag) override {
        const json document = fetch(flag);
        const json variations = document.value("variations", json::array());
        const json environment = document["environments"][location_.environment];
        const auto fallthrough = environment.value("fallthrough", json::object());
        std::string served;
        if (fallthrough.contains("variation") && fallthrough["variation"].is_number_integer()) {
            const auto index = fallthrough["variation"].get<std::size_t>();
            if (index < variations.size()) {
                served = variation_name(variations[index]);
            }
        }
        return {{"on", environment.value("on", false)}, {"fallthrough", served}};
    }

    json desired_state(const std::string& flag, const json& parameters,
                       const json& /*state*/) override {
        if (parameters.contains("value") && parameters["value"].is_boolean()) {
            return {{"on", parameters["value"].get<bool>()}};
        }
        const json variations = fetch(flag).value("variations", json::array());
        for (const auto& variation : variations) {
            if ((parameters.contains("variant") &&
                 variation_name(variation) == parameters["variant"].get<std::string>()) ||
                (parameters.contains("value") &&
                 variation.value("value", json()) == parameters["value"])) {
                return {{"fallthrough", variation_name(variation)}};
            }
        }
        fail_invalid("parameters: " + flag + " has no such variation (it has " + variations.dump() +
                     ")");
    }

    json kill_switch_state(const json& /*state*/) override { return {{"on", false}}; }

    void write(const std::string& flag, const json& /*from*/, const json& to) override {
        json instructions = json::array();
        if (to.contains("on")) {
            instructions.push_back({{"kind", to["on"].get<bool>() ? "turnFlagOn" : "turnFlagOff"}});
        }
        if (to.contains("fallthrough")) {
            const std::string wanted = to["fallthrough"].get<std::string>();
            for (const auto& variation : fetch(flag).value("variations", json::array())) {
                if (variation_name(variation) == wanted) {
                    instructions.push_back({{"kind", "updateFallthroughVariationOrRollout"},
                                            {"variationId", variation.value("_id", "")}});
                }
            }
        }
        HttpRequest request;
        request.method = "PATCH";
        request.url = location_.url + "/api/v2/flags/" + location_.project + "/" + flag;
        request.credential = location_.credential;
        request.headers["Content-Type"] =
            "application/json; domain-model=launchdarkly.semanticpatch";
        request.body = json{
            {"environmentKey", location_.environment},
            {"comment", "mitigate: " + json(to).dump()},
            {"instructions",
             instructions}}.dump();
        check_response(host_.http(request), "launchdarkly: update " + flag);
    }

  private:
    static std::string variation_name(const json& variation) {
        if (variation.contains("name") && variation["name"].is_string()) {
            return variation["name"].get<std::string>();
        }
        return variation.value("value", json()).dump();
    }

    json fetch(const std::string& flag) const {
        check_flag_key(flag);
        HttpRequest request;
        request.url = location_.url + "/api/v2/flags/" + location_.project + "/" + flag +
                      "?env=" + location_.environment;
        request.credential = location_.credential;
        const HttpResponse response = host_.http(request);
        check_response(response, "launchdarkly: read " + flag);
        json document = response.json_body();
        if (!document.contains("environments") ||
            !document["environments"].contains(location_.environment)) {
            fail_invalid("target: flag " + flag + " has no environment \"" + location_.environment +
                         "\"");
        }
        return document;
    }

    ApiLocation location_;
    Host host_;
};

}  // namespace

std::unique_ptr<FlagBackend> make_flag_backend(const json& settings, const Host& host) {
    const std::string backend = settings.at("backend").get<std::string>();
    if (backend == "flagd") {
        if (!settings.contains("path")) {
            fail_invalid("settings.path: the flagd backend needs the flag file's path");
        }
        return std::make_unique<FlagdBackend>(settings["path"].get<std::string>(), host);
    }
    if (!settings.contains("url")) {
        fail_invalid("settings.url: the " + backend + " backend needs the API's base URL");
    }
    if (backend == "unleash") {
        return std::make_unique<UnleashBackend>(api_location(settings), host);
    }
    return std::make_unique<LaunchDarklyBackend>(api_location(settings), host);
}

}  // namespace mitigate::plugin
