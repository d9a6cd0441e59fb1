#include "runtime/providers/provider_registry.h"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

#include "runtime/providers/plugin_protocol.h"

namespace mitigate {

using nlohmann::json;

std::vector<std::filesystem::path> plugin_directories(const Config& config,
                                                      const std::filesystem::path& executable) {
    std::vector<std::filesystem::path> directories;
    const auto shipped =
        (executable.parent_path() / ".." / "lib" / "mitigate" / "plugins").lexically_normal();
    if (!config.directories.plugins.empty() && config.directories.plugins != shipped) {
        directories.push_back(config.directories.plugins);
    }
    directories.push_back(shipped);
    return directories;
}

std::vector<PluginFile> discover_plugins(const std::vector<std::filesystem::path>& directories) {
    std::vector<PluginFile> plugins;
    std::set<std::string> seen;
    const auto shipped_directory =
        directories.empty() ? std::filesystem::path() : directories.back();
    for (const auto& directory : directories) {
        std::error_code error;
        std::vector<PluginFile> here;
        const bool shipped = directory == shipped_directory;
        for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
            const std::string name = entry.path().stem().string();
            if (entry.path().extension() != ".so") {
                continue;
            }
            if (!seen.contains(name)) {
                here.push_back({name, entry.path(), shipped, false});
            } else if (shipped) {
                for (auto& earlier : plugins) {
                    earlier.shadows_shipped = earlier.shadows_shipped || earlier.name == name;
                }
            }
        }
        std::sort(here.begin(), here.end(), [](const PluginFile& left, const PluginFile& right) {
            return left.name < right.name;
        });
        for (auto& plugin : here) {
            seen.insert(plugin.name);
            plugins.push_back(std::move(plugin));
        }
    }
    return plugins;
}

PluginProcessOptions plugin_process_options(const Config& config, const RegistryOptions& options,
                                            const std::filesystem::path& plugin) {
    PluginProcessOptions process;
    process.executable = options.executable;
    process.plugin = plugin;
    process.call_deadline = std::chrono::milliseconds(config.sandbox.plugin_call_timeout_ms);
    if (options.call_deadline) {
        process.call_deadline = *options.call_deadline;
    }
    process.confinement.allow_weaker_landlock = config.sandbox.allow_weaker_landlock;
    process.confinement.minimum_landlock_abi = config.sandbox.minimum_landlock_abi;
    process.clock = options.clock;
    return process;
}

struct ProviderRegistry::Entry {
    ProviderConfig provider;
    std::unique_ptr<EgressBroker> broker;
    std::unique_ptr<PluginProcess> process;
    std::mutex calls;  // one call at a time: the plugin process serves one
    int audited_starts = 0;
};

ProviderRegistry::ProviderRegistry(const Config& config, RegistryOptions options)
    : config_(config), options_(std::move(options)) {}

ProviderRegistry::~ProviderRegistry() = default;

std::vector<std::string> ProviderRegistry::providers() const {
    std::vector<std::string> names;
    for (const auto& provider : config_.providers) {
        if (provider.enabled) {
            names.push_back(provider.name);
        }
    }
    return names;
}

ProviderRegistry::Entry* ProviderRegistry::entry(const std::string& name) {
    std::lock_guard lock(entries_mutex_);
    if (auto found = entries_.find(name); found != entries_.end()) {
        return found->second.get();
    }
    const auto provider =
        std::find_if(config_.providers.begin(), config_.providers.end(),
                     [&](const ProviderConfig& entry) { return entry.name == name; });
    if (provider == config_.providers.end() || !provider->enabled) {
        return nullptr;
    }
    std::filesystem::path plugin;
    for (const auto& file : discover_plugins(plugin_directories(config_, options_.executable))) {
        if (file.name == provider->plugin && (!file.shadows_shipped || !provider->sha256.empty())) {
            plugin = file.path;
        }
    }
    if (plugin.empty()) {
        return nullptr;
    }
    auto entry = std::make_unique<Entry>();
    entry->provider = *provider;
    entry->broker =
        std::make_unique<EgressBroker>(*provider, options_.egress_limits, options_.resolver);
    PluginProcessOptions process = plugin_process_options(config_, options_, plugin);
    process.settings = provider->settings;
    process.pinned_sha256 = provider->sha256;
    EgressBroker* broker = entry->broker.get();
    const std::string provider_name = name;
    entry->process = std::make_unique<PluginProcess>(
        process,
        [broker](const json& request, int& status) { return broker->handle(request, status); },
        [provider_name](int level, const std::string& message) {
            const auto spd_level = level >= 3   ? spdlog::level::err
                                   : level == 2 ? spdlog::level::warn
                                   : level == 1 ? spdlog::level::info
                                                : spdlog::level::debug;
            spdlog::log(spd_level, "provider {}: {}", provider_name, message);
        });
    Entry* result = entry.get();
    entries_.emplace(name, std::move(entry));
    return result;
}

PluginProcess* ProviderRegistry::process(const std::string& provider) {
    Entry* found = entry(provider);
    return found != nullptr ? found->process.get() : nullptr;
}

PluginCallResult ProviderRegistry::unavailable(const std::string& provider) const {
    PluginCallResult result;
    result.status = PluginCallStatus::refused;
    const auto configured =
        std::find_if(config_.providers.begin(), config_.providers.end(),
                     [&](const ProviderConfig& entry) { return entry.name == provider; });
    if (configured != config_.providers.end() && configured->enabled) {
        for (const auto& file :
             discover_plugins(plugin_directories(config_, options_.executable))) {
            if (file.name == configured->plugin && file.shadows_shipped) {
                result.error = file.path.string() +
                               " has the name of a plugin shipped with "
                               "mitigate; refusing to let it replace the shipped one unless "
                               "providers." +
                               provider + ".sha256 pins its digest";
                return result;
            }
        }
    }
    result.error = configured == config_.providers.end()
                       ? "no provider \"" + provider + "\" is configured (providers: in " +
                             config_.source + ")"
                   : !configured->enabled
                       ? "provider \"" + provider + "\" is disabled in " + config_.source
                       : "no plugin file " + configured->plugin + ".so in " +
                             config_.directories.plugins.string() + " or beside the binary";
    return result;
}

PluginCallResult ProviderRegistry::call(const std::string& provider, const json& request) {
    Entry* found = entry(provider);
    if (found == nullptr) {
        return unavailable(provider);
    }
    std::lock_guard calls(found->calls);
    PluginProcess& plugin = *found->process;
    PluginCallResult result = plugin.call(request);
    if (plugin.starts() > found->audited_starts && plugin.identity()) {
        found->audited_starts = plugin.starts();
        if (options_.on_plugin_started) {
            options_.on_plugin_started(provider, {{"path", plugin.identity()->resolved.string()},
                                                  {"sha256", plugin.identity()->sha256},
                                                  {"pinned", !found->provider.sha256.empty()}});
        }
        const json& confinement = plugin.confinement();
        if (confinement.is_object() && confinement.value("weaker_landlock_allowed", false)) {
            spdlog::warn(
                "provider {}: plugin host runs with Landlock ABI {} below the minimum {} "
                "(sandbox.allow_weaker_landlock)",
                provider, confinement.value("landlock_abi", 0),
                config_.sandbox.minimum_landlock_abi);
            if (options_.on_weaker_confinement) {
                options_.on_weaker_confinement(provider, confinement);
            }
        }
    }
    return result;
}

ProviderAnswer<Plan> ProviderRegistry::plan(const Action& action) {
    return read_plan_answer(call(action.provider, plugin_plan_request(action)), action);
}

ProviderAnswer<Applied> ProviderRegistry::apply(const Action& action, const Plan& plan) {
    return read_apply_answer(
        call(action.provider, plugin_plan_operation_request("apply", action, plan)));
}

ProviderAnswer<Checked> ProviderRegistry::check(const Action& action, const Plan& plan) {
    return read_check_answer(
        call(action.provider, plugin_plan_operation_request("check", action, plan)));
}

ProviderAnswer<Reverted> ProviderRegistry::revert(const Action& action, const Plan& plan) {
    return read_revert_answer(
        call(action.provider, plugin_plan_operation_request("revert", action, plan)));
}

ProviderAnswer<json> ProviderRegistry::state(const std::string& provider,
                                             const std::string& target) {
    return read_state_answer(call(provider, plugin_state_request(target)));
}

}  // namespace mitigate
