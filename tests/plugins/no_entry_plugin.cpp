// A shared object that is not a plugin: it exports no mitigate_plugin_entry.
extern "C" __attribute__((visibility("default"))) int some_other_function(void) {
    return 42;
}
