// `mitigate serve`: the runtime as one process. It opens the store, loads policies and
// playbooks, starts a confined worker per provider plugin and one for playbooks, starts
// the engine (runtime/engine/engine.h), which finishes whatever a previous process left
// half-done, then serves the API. The threads it makes are listed in daemon.cpp.
//
// stop() is graceful: the HTTP server stops accepting and answers the requests it is
// handling (signals are answered once committed), the engine finishes the steps it is in
// (so no transition is cut between its journal entry and its effect), then everything
// closes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "runtime/config/config.h"

namespace mitigate {

class Clock;
class Store;
class Engine;
class Metrics;
class DrillRunStore;
class ChatStateStore;

struct DaemonOptions {
    Config config;
    std::filesystem::path executable;  // the mitigate binary, for worker processes
    const Clock* clock = nullptr;      // the system clock when null (tests inject one)
    // Passed to the store (SqliteStoreOptions::fault_point): crash tests kill the process
    // at a named point of a transition. Empty in production.
    std::function<void(std::string_view point)> store_fault_point;
    // Policies and playbooks from the configured directories; when a directory does not
    // exist, the defaults compiled into the binary (logged, so nobody is surprised).
};

class Daemon {
  public:
    // Opens and loads everything; throws std::runtime_error with what is wrong (a policy
    // error names file:line, a busy port names the address).
    explicit Daemon(DaemonOptions options);
    ~Daemon();  // stop()s
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Listens, starts the engine, then the drills and chat. Returns once ready.
    void start();
    void stop();
    // Looks at every deadline now (after a test advanced its clock).
    void wake();

    std::uint16_t port() const;
    std::string url() const;
    Store& store();
    Engine& engine();
    DrillRunStore& drill_runs();
    ChatStateStore& chat_state();  // which message shows each mitigation
    Metrics& metrics();

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace mitigate
