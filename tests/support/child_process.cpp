#include "tests/support/child_process.h"

#include "tests/support/temporary_directory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <regex>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace mitigate::testing {

namespace {

// argv and envp for execve, owning their strings: the test's environment with
// `environment`'s entries added or replaced.
struct ExecImage {
    std::vector<std::string> environment_text;
    std::vector<char*> argv;
    std::vector<char*> envp;

    ExecImage(const std::vector<std::string>& arguments,
              const std::map<std::string, std::string>& environment) {
        std::map<std::string, std::string> merged;
        for (char** entry = environ; *entry != nullptr; ++entry) {
            const std::string text(*entry);
            const auto equals = text.find('=');
            merged[text.substr(0, equals)] =
                equals == std::string::npos ? "" : text.substr(equals + 1);
        }
        for (const auto& [name, value] : environment) {
            merged[name] = value;
        }
        for (const auto& [name, value] : merged) {
            environment_text.push_back(name + "=" + value);
        }
        for (const auto& argument : arguments) {
            argv.push_back(const_cast<char*>(argument.c_str()));
        }
        argv.push_back(nullptr);
        for (auto& entry : environment_text) {
            envp.push_back(entry.data());
        }
        envp.push_back(nullptr);
    }
};

}  // namespace

ProcessResult run_process(const std::vector<std::string>& arguments,
                          const std::map<std::string, std::string>& environment,
                          const std::string& working_directory) {
    std::array<int, 2> out_pipe{};
    std::array<int, 2> err_pipe{};
    if (pipe(out_pipe.data()) != 0 || pipe(err_pipe.data()) != 0) {
        throw std::runtime_error("pipe failed");
    }
    ExecImage image(arguments, environment);

    const pid_t child = fork();
    if (child < 0) {
        throw std::runtime_error("fork failed");
    }
    if (child == 0) {
        dup2(out_pipe[1], STDOUT_FILENO);
        dup2(err_pipe[1], STDERR_FILENO);
        close(out_pipe[0]);
        close(out_pipe[1]);
        close(err_pipe[0]);
        close(err_pipe[1]);
        close_range(3, ~0U, 0);  // the program sees only stdin, stdout and stderr
        if (!working_directory.empty() && chdir(working_directory.c_str()) != 0) {
            _exit(126);
        }
        execve(image.argv[0], image.argv.data(), image.envp.data());
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    ProcessResult result;
    std::array<pollfd, 2> descriptors{{{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}}};
    int open_descriptors = 2;
    std::array<char, 4096> buffer{};
    while (open_descriptors > 0) {
        if (poll(descriptors.data(), descriptors.size(), -1) < 0) {
            break;
        }
        for (std::size_t i = 0; i < descriptors.size(); ++i) {
            if (descriptors[i].fd < 0 || descriptors[i].revents == 0) {
                continue;
            }
            const ssize_t got = read(descriptors[i].fd, buffer.data(), buffer.size());
            if (got <= 0) {
                close(descriptors[i].fd);
                descriptors[i].fd = -1;
                --open_descriptors;
                continue;
            }
            (i == 0 ? result.out : result.err).append(buffer.data(), static_cast<std::size_t>(got));
        }
    }
    int status = 0;
    waitpid(child, &status, 0);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& arguments,
                                     const std::map<std::string, std::string>& environment,
                                     const std::string& stderr_file) {
    std::array<int, 2> out_pipe{};
    if (pipe(out_pipe.data()) != 0) {
        throw std::runtime_error("pipe failed");
    }
    ExecImage image(arguments, environment);
    const int error_file = open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    pid_ = fork();
    if (pid_ < 0) {
        throw std::runtime_error("fork failed");
    }
    if (pid_ == 0) {
        dup2(out_pipe[1], STDOUT_FILENO);
        dup2(error_file, STDERR_FILENO);
        close_range(3, ~0U, 0);
        execve(image.argv[0], image.argv.data(), image.envp.data());
        _exit(127);
    }
    close(error_file);
    close(out_pipe[1]);
    stdout_ = out_pipe[0];
}

BackgroundProcess::~BackgroundProcess() {
    if (!reaped_) {
        kill(pid_, SIGKILL);
        wait();
    }
    close(stdout_);
}

std::string BackgroundProcess::wait_for_line(const std::string& prefix, int seconds) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    for (;;) {
        for (auto newline = buffered_.find('\n'); newline != std::string::npos;
             newline = buffered_.find('\n')) {
            const std::string line = buffered_.substr(0, newline);
            buffered_.erase(0, newline + 1);
            if (line.starts_with(prefix)) {
                return line.substr(prefix.size());
            }
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            give_up - std::chrono::steady_clock::now());
        pollfd descriptor{stdout_, POLLIN, 0};
        if (left.count() <= 0 || poll(&descriptor, 1, static_cast<int>(left.count())) <= 0) {
            return "";
        }
        std::array<char, 4096> buffer{};
        const ssize_t got = read(stdout_, buffer.data(), buffer.size());
        if (got <= 0) {
            return "";
        }
        buffered_.append(buffer.data(), static_cast<std::size_t>(got));
    }
}

void BackgroundProcess::send(int signal_number) const {
    kill(pid_, signal_number);
}

int BackgroundProcess::wait() {
    if (!reaped_) {
        int status = 0;
        waitpid(pid_, &status, 0);
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        reaped_ = true;
    }
    return exit_code_;
}

// Both paths are compiled in by tests/support/CMakeLists.txt, so a test binary run by
// hand behaves exactly as under ctest.
std::string mitigate_binary() {
    return MITIGATE_BINARY_PATH;
}

std::string source_directory() {
    return MITIGATE_SOURCE_PATH;
}

std::string wait_for_listening_url(const std::string& log_file, int seconds) {
    const std::regex listening(R"(Listening on.*address=127\.0\.0\.1:([0-9]+))");
    for (int attempt = 0; attempt < seconds * 50; ++attempt) {
        std::smatch match;
        const std::string text = read_file(log_file);
        if (std::regex_search(text, match, listening)) {
            return "http://127.0.0.1:" + match[1].str();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return "";
}

int start_this_test_again(const std::map<std::string, std::string>& environment) {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    const std::vector<std::string> arguments{
        self, std::string("--gtest_filter=") + test->test_suite_name() + "." + test->name()};
    const ExecImage image(arguments, environment);  // points into `arguments`
    const pid_t child = fork();
    if (child == 0) {
        execve(self.c_str(), image.argv.data(), image.envp.data());  // nothing else here
        _exit(127);
    }
    if (child < 0) {
        throw std::runtime_error("fork failed");
    }
    return child;
}

std::string parameter_name(const std::string& parameter) {
    std::string name = parameter;
    for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) {
            c = '_';
        }
    }
    return name;
}

}  // namespace mitigate::testing
