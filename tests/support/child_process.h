// Runs a program to completion and captures what it printed, for tests of the mitigate
// binary. No shell is involved: arguments are passed as they are.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace mitigate::testing {

struct ProcessResult {
    int exit_code = -1;  // 128 + signal number when killed by a signal
    std::string out;
    std::string err;
};

// `environment` entries are added to (or replace) the test's own environment; the program
// runs in `working_directory` when one is given.
ProcessResult run_process(const std::vector<std::string>& arguments,
                          const std::map<std::string, std::string>& environment = {},
                          const std::string& working_directory = {});

// Starts this test binary again, running only the current test, with `environment` added:
// the child tells itself apart by it. Exec'd, not just forked: a bare fork of a
// multi-threaded test can copy an allocator lock another thread held, and deadlock the
// child. Returns its pid; the caller reaps it.
int start_this_test_again(const std::map<std::string, std::string>& environment);

// A test parameter as a test name: every character but letters and digits becomes '_'.
std::string parameter_name(const std::string& parameter);

// A program left running (a daemon): stdout is a pipe the test reads lines from, stderr
// goes to a file. Destroying it kills (SIGKILL) and reaps it if it still runs.
class BackgroundProcess {
  public:
    BackgroundProcess(const std::vector<std::string>& arguments,
                      const std::map<std::string, std::string>& environment,
                      const std::string& stderr_file);
    ~BackgroundProcess();
    BackgroundProcess(const BackgroundProcess&) = delete;
    BackgroundProcess& operator=(const BackgroundProcess&) = delete;

    // The first stdout line starting with `prefix`, without it; empty if the process
    // ended or `seconds` passed first.
    std::string wait_for_line(const std::string& prefix, int seconds = 30);
    void send(int signal_number) const;
    // Waits for the exit; 128 + signal number when killed by a signal.
    int wait();
    int pid() const { return pid_; }

  private:
    int pid_ = -1;
    int stdout_ = -1;
    std::string buffered_;
    bool reaped_ = false;
    int exit_code_ = -1;
};

// For a Prometheus-family server started with --web.listen-address=127.0.0.1:0
// (Prometheus, Alertmanager): the URL of the port the kernel chose, read from the log line
// "Listening on ... address=127.0.0.1:PORT"; empty if it does not appear within `seconds`.
std::string wait_for_listening_url(const std::string& log_file, int seconds = 20);

// The mitigate binary under test.
std::string mitigate_binary();

// The root of the source tree.
std::string source_directory();

}  // namespace mitigate::testing
