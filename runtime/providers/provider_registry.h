// The providers of a configuration, each a plugin in its own plugin-host process with its
// own egress broker. The engine calls providers through the typed Providers interface
// (providers.h) that this implements; the CLI's `plugins call` sends raw requests.
//
// Thread-safe: calls to one provider are serialized (its plugin process answers one call
// at a time); calls to different providers run in parallel.
//
// Plugins are found by name (providers.NAME.plugin, default NAME) as NAME.so in
// directories.plugins when the configuration names one, then in the plugins shipped
// beside the binary (<bin>/../lib/mitigate/plugins). A file in directories.plugins with
// the name of a shipped plugin shadows it only when the provider pins its digest
// (providers.NAME.sha256): a file dropped earlier on the path cannot silently replace a
// shipped plugin. Every worker start is reported with the file's path and digest.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/config/config.h"
#include "runtime/egress/egress_broker.h"
#include "runtime/providers/providers.h"
#include "sandbox/plugin_host/plugin_process.h"

namespace mitigate {

struct PluginFile {
    std::string name;  // file name without .so
    std::filesystem::path path;
    bool shipped = false;          // found beside the binary
    bool shadows_shipped = false;  // found in directories.plugins, hiding a shipped one
};

// The directories searched, in order; the last is the shipped one.
std::vector<std::filesystem::path> plugin_directories(const Config& config,
                                                      const std::filesystem::path& executable);

// Every NAME.so in the directories; an earlier directory's file hides a later one's.
std::vector<PluginFile> discover_plugins(const std::vector<std::filesystem::path>& directories);

struct RegistryOptions {
    std::filesystem::path executable;
    // Overrides sandbox.plugin_call_timeout_ms (tests).
    std::optional<std::chrono::milliseconds> call_deadline;
    const Clock* clock = nullptr;
    EgressLimits egress_limits;
    Resolver resolver;  // tests only; getaddrinfo otherwise
    // Told once per worker start that ran below the configured Landlock ABI by the
    // sandbox.allow_weaker_landlock override, so that the caller can audit it.
    std::function<void(const std::string& provider, const nlohmann::json& confinement)>
        on_weaker_confinement;
    // Told once per worker start which file it loaded: {"path","sha256","pinned"}.
    std::function<void(const std::string& provider, const nlohmann::json& plugin)>
        on_plugin_started;
};

class ProviderRegistry final : public Providers {
  public:
    ProviderRegistry(const Config& config, RegistryOptions options);
    ~ProviderRegistry() override;
    ProviderRegistry(const ProviderRegistry&) = delete;
    ProviderRegistry& operator=(const ProviderRegistry&) = delete;

    // Configured and enabled provider names, in config order.
    std::vector<std::string> providers() const;

    // One operation on a provider; `refused` with a clear error when the provider is not
    // configured, disabled, or its plugin file is missing.
    PluginCallResult call(const std::string& provider, const nlohmann::json& request);

    // The provider's plugin process (started on demand); nullptr when not configured.
    // Only for a caller that makes no call at the same time (the CLI describing plugins).
    PluginProcess* process(const std::string& provider);

    // Providers: the same calls, typed (the protocol is plugin_protocol.h).
    ProviderAnswer<Plan> plan(const Action& action) override;
    ProviderAnswer<Applied> apply(const Action& action, const Plan& plan) override;
    ProviderAnswer<Checked> check(const Action& action, const Plan& plan) override;
    ProviderAnswer<Reverted> revert(const Action& action, const Plan& plan) override;
    ProviderAnswer<nlohmann::json> state(const std::string& provider,
                                         const std::string& target) override;

  private:
    struct Entry;
    Entry* entry(const std::string& provider);
    PluginCallResult unavailable(const std::string& provider) const;

    Config config_;
    RegistryOptions options_;
    std::mutex entries_mutex_;  // the map only; each entry has its own call mutex
    std::map<std::string, std::unique_ptr<Entry>> entries_;
};

// A PluginProcess configured from the sandbox section alone, for a plugin that is not
// (yet) a configured provider: `plugins list` describes plugins this way.
PluginProcessOptions plugin_process_options(const Config& config, const RegistryOptions& options,
                                            const std::filesystem::path& plugin);

}  // namespace mitigate
