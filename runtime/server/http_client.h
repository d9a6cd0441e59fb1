// A blocking HTTP client (libcurl) for the command line talking to the daemon, and for
// tests. Not for provider egress: that is runtime/egress's broker, with its allowlist.
#pragma once

#include <chrono>
#include <map>
#include <string>

namespace mitigate {

struct HttpClientRequest {
    std::string method = "GET";
    std::string url;
    std::map<std::string, std::string> headers;
    std::string body;
    std::chrono::milliseconds timeout{30000};
};

struct HttpClientResponse {
    int status = 0;                              // 0 when no response arrived; `error` says why
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
    std::string error;
};

HttpClientResponse http_request(const HttpClientRequest& request);

}  // namespace mitigate
