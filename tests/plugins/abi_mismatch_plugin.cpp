// A plugin built for a future major version of the ABI: the host must refuse it.
#include "plugins/sdk/mitigate_plugin.h"

namespace {
const char* manifest() {
    return "{}";
}
}  // namespace

extern "C" __attribute__((visibility("default"))) const mitigate_plugin_api* mitigate_plugin_entry(
    void) {
    static const mitigate_plugin_api api{MITIGATE_PLUGIN_ABI_MAJOR + 98,
                                         0,
                                         sizeof(mitigate_plugin_api),
                                         manifest,
                                         nullptr,
                                         nullptr,
                                         nullptr};
    return &api;
}
