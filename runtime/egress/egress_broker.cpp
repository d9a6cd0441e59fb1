#include "runtime/egress/egress_broker.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netdb.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "plugins/sdk/mitigate_plugin.h"
#include "runtime/core/sha256.h"

namespace mitigate {
namespace {

using nlohmann::json;

json refused(int& status, int code, const std::string& why) {
    status = code;
    return {{"error", why}};
}

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char character) {
        return static_cast<char>(std::tolower(character));
    });
    return text;
}

std::string sha256_hex(std::string_view text) {
    Sha256 hash;
    hash.update(text);
    return hash.hex_digest();
}

std::vector<std::string> resolve_with_getaddrinfo(const std::string& host) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* results = nullptr;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &results) != 0) {
        return {};
    }
    std::vector<std::string> addresses;
    for (addrinfo* entry = results; entry != nullptr; entry = entry->ai_next) {
        char text[INET6_ADDRSTRLEN] = {};
        const void* raw = entry->ai_family == AF_INET
                              ? static_cast<const void*>(
                                    &reinterpret_cast<sockaddr_in*>(entry->ai_addr)->sin_addr)
                              : static_cast<const void*>(
                                    &reinterpret_cast<sockaddr_in6*>(entry->ai_addr)->sin6_addr);
        if (inet_ntop(entry->ai_family, raw, text, sizeof text) != nullptr &&
            std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
            addresses.emplace_back(text);
        }
    }
    freeaddrinfo(results);
    return addresses;
}

struct CurlUrlDeleter {
    void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlDeleter {
    void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct SlistDeleter {
    void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

std::optional<std::string> url_part(CURLU* url, CURLUPart part, unsigned flags = 0) {
    char* text = nullptr;
    if (curl_url_get(url, part, &text, flags) != CURLUE_OK || text == nullptr) {
        return std::nullopt;
    }
    std::string value(text);
    curl_free(text);
    return value;
}

struct Transfer {
    std::string body;
    std::size_t cap = 0;
    bool over_cap = false;
    std::map<std::string, std::string> headers;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* transfer = static_cast<Transfer*>(user);
    const std::size_t bytes = size * count;
    if (transfer->body.size() + bytes > transfer->cap) {
        transfer->over_cap = true;
        return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
    transfer->body.append(data, bytes);
    return bytes;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
    auto* transfer = static_cast<Transfer*>(user);
    const std::size_t bytes = size * count;
    std::string line(data, bytes);
    if (line.rfind("HTTP/", 0) == 0) {
        transfer->headers.clear();  // a new response (after 100 Continue): keep the last
        return bytes;
    }
    const auto colon = line.find(':');
    if (colon != std::string::npos) {
        std::string value = line.substr(colon + 1);
        const auto first = value.find_first_not_of(" \t");
        const auto last = value.find_last_not_of(" \t\r\n");
        value = first == std::string::npos ? "" : value.substr(first, last - first + 1);
        transfer->headers[lower(line.substr(0, colon))] = value;
    }
    return bytes;
}

bool has_line_break(const std::string& text) {
    return text.find_first_of("\r\n") != std::string::npos || text.find('\0') != std::string::npos;
}

}  // namespace

std::string classify_address(const std::string& address) {
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, address.c_str(), &v4) == 1) {
        const std::uint32_t ip = ntohl(v4.s_addr);
        const auto in = [ip](std::uint32_t network, int bits) {
            const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
            return (ip & mask) == network;
        };
        if (in(0x7F000000, 8)) {
            return "loopback";
        }
        if (in(0xA9FE0000, 16)) {
            return "link-local";
        }
        if (in(0x0A000000, 8) || in(0xAC100000, 12) || in(0xC0A80000, 16)) {
            return "private";
        }
        if (in(0x64400000, 10)) {
            return "shared (CGNAT)";
        }
        if (in(0x00000000, 8)) {
            return "unspecified";
        }
        if (in(0xE0000000, 4) || in(0xF0000000, 4)) {
            return "multicast or reserved";
        }
        return "";
    }
    if (inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
        const unsigned char* bytes = v6.s6_addr;
        if (IN6_IS_ADDR_LOOPBACK(&v6)) {
            return "loopback";
        }
        if (IN6_IS_ADDR_UNSPECIFIED(&v6)) {
            return "unspecified";
        }
        if (IN6_IS_ADDR_LINKLOCAL(&v6)) {
            return "link-local";
        }
        if (IN6_IS_ADDR_MULTICAST(&v6)) {
            return "multicast or reserved";
        }
        if ((bytes[0] & 0xFE) == 0xFC) {
            return "private";
        }
        if (IN6_IS_ADDR_V4MAPPED(&v6)) {
            char text[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, bytes + 12, text, sizeof text);
            return classify_address(text);
        }
        return "";
    }
    return "invalid";
}

EgressBroker::EgressBroker(ProviderConfig provider, EgressLimits limits, Resolver resolver)
    : provider_(std::move(provider)), limits_(limits), resolver_(std::move(resolver)) {
    if (!resolver_) {
        resolver_ = resolve_with_getaddrinfo;
    }
    static const bool initialized = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == 0; }();
    (void)initialized;
}

json EgressBroker::handle(const json& request, int& status) const {
    if (!request.is_object() || !request.contains("kind") || !request["kind"].is_string()) {
        return refused(status, MITIGATE_INVALID, "egress request: \"kind\" is required");
    }
    try {
        const std::string kind = request["kind"].get<std::string>();
        if (kind == "http") {
            return http(request, status);
        }
        if (kind == "file_read") {
            return read_file(request, status);
        }
        if (kind == "file_write") {
            return write_file(request, status);
        }
        if (kind == "sql") {
            return sql(request, status);
        }
        return refused(
            status, MITIGATE_INVALID,
            "egress request: kind \"" + kind + "\" is not http, file_read, file_write or sql");
    } catch (const json::exception& error) {
        return refused(status, MITIGATE_INVALID,
                       std::string("egress request: malformed field: ") + error.what());
    }
}

std::optional<json> EgressBroker::check_destination(const std::string& host,
                                                    const std::string& port,
                                                    const std::string& default_port,
                                                    std::vector<std::string>& addresses,
                                                    int& status) const {
    // An entry without a port allows the scheme's own port only: naming a host is not
    // leave to reach every service on it.
    const bool allowed = std::any_of(
        provider_.egress.allow_hosts.begin(), provider_.egress.allow_hosts.end(),
        [&](const std::string& entry) {
            const std::string wanted = lower(entry);
            return (wanted == host && port == default_port) || wanted == host + ":" + port;
        });
    if (!allowed) {
        return refused(status, MITIGATE_INVALID,
                       "egress: host " + host + ":" + port + " is not on providers." +
                           provider_.name + ".egress.allow_hosts (an entry without a port " +
                           "allows port " + default_port + " only)");
    }
    const std::string bare_host =
        host.size() > 2 && host.front() == '[' ? host.substr(1, host.size() - 2) : host;
    addresses = resolver_(bare_host);
    if (addresses.empty()) {
        return refused(status, MITIGATE_UNAVAILABLE, "egress: cannot resolve " + bare_host);
    }
    for (const auto& address : addresses) {
        const std::string kind = classify_address(address);
        const bool permitted =
            kind.empty() || (kind == "loopback" && provider_.egress.allow_loopback) ||
            ((kind == "private" || kind == "link-local") && provider_.egress.allow_private);
        if (!permitted) {
            return refused(status, MITIGATE_INVALID,
                           "egress: " + bare_host + " resolves to " + address + ", a " + kind +
                               " address; refused (providers." + provider_.name +
                               ".egress.allow_loopback / allow_private allow it explicitly)");
        }
    }
    return std::nullopt;
}

json EgressBroker::http(const json& request, int& status) const {
    const std::string method = request.value("method", "GET");
    static const std::set<std::string> methods{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
    if (!methods.contains(method)) {
        return refused(status, MITIGATE_INVALID,
                       "egress: method \"" + method + "\" is not allowed");
    }
    const std::string url_text = request.value("url", "");
    const std::string body = request.value("body", "");
    if (body.size() > limits_.max_request_bytes) {
        return refused(status, MITIGATE_INVALID, "egress: request body over the size cap");
    }
    std::unique_ptr<CURLU, CurlUrlDeleter> url(curl_url());
    if (curl_url_set(url.get(), CURLUPART_URL, url_text.c_str(), 0) != CURLUE_OK) {
        return refused(status, MITIGATE_INVALID, "egress: \"" + url_text + "\" is not a URL");
    }
    const std::string scheme = lower(url_part(url.get(), CURLUPART_SCHEME).value_or(""));
    if (scheme != "http" && scheme != "https") {
        return refused(status, MITIGATE_INVALID,
                       "egress: only http and https URLs are allowed, not " + scheme);
    }
    if (url_part(url.get(), CURLUPART_USER) || url_part(url.get(), CURLUPART_PASSWORD)) {
        return refused(status, MITIGATE_INVALID,
                       "egress: URLs with a user or password part are refused (" + url_text + ")");
    }
    std::string host = lower(url_part(url.get(), CURLUPART_HOST).value_or(""));
    const std::string port = url_part(url.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT).value_or("");
    const std::string bare_host =
        host.size() > 2 && host.front() == '[' ? host.substr(1, host.size() - 2) : host;
    std::vector<std::string> addresses;
    if (auto refusal =
            check_destination(host, port, scheme == "https" ? "443" : "80", addresses, status)) {
        return *refusal;
    }

    // Headers the plugin sets; the ones that carry identity are the runtime's alone.
    std::set<std::string> reserved{"authorization",  "proxy-authorization", "host",      "cookie",
                                   "content-length", "transfer-encoding",   "connection"};
    const CredentialProfile* profile = nullptr;
    const std::string credential = request.value("credential", "");
    if (!credential.empty()) {
        for (const auto& candidate : provider_.credentials) {
            if (candidate.name == credential) {
                profile = &candidate;
            }
        }
        if (profile == nullptr) {
            return refused(status, MITIGATE_INVALID,
                           "egress: credential profile \"" + credential +
                               "\" is not configured under providers." + provider_.name +
                               ".credentials");
        }
        if (profile->kind == CredentialKind::api_key) {
            reserved.insert(lower(profile->settings.at("header")));
        }
        if (profile->kind == CredentialKind::supabase) {
            reserved.insert("apikey");
        }
        if (profile->kind == CredentialKind::postgres) {
            return refused(status, MITIGATE_INVALID,
                           "egress: credential \"" + credential +
                               "\" is a postgres profile: it serves sql requests, not http");
        }
        // A zone id ("[fe80::1%25eth0]") picks the interface, which the host part does not
        // show: the same origin could be another machine on another link.
        if (url_part(url.get(), CURLUPART_ZONEID)) {
            return refused(status, MITIGATE_INVALID,
                           "egress: credential \"" + credential +
                               "\" is not sent to an address with a zone id");
        }
        // Only to an origin the profile names, exactly: being on allow_hosts is leave to
        // reach a host, not to hand it this credential.
        // The host in the same form as the profile's origins, whatever curl made of it.
        const Origin destination{scheme, canonical_host(host).value_or(host), port};
        if (std::find(profile->origins.begin(), profile->origins.end(), destination) ==
            profile->origins.end()) {
            std::string named;
            for (const auto& origin : profile->origins) {
                named += (named.empty() ? "" : ", ") + origin.text();
            }
            return refused(status, MITIGATE_INVALID,
                           "egress: credential \"" + credential + "\" is not sent to " +
                               destination.text() + "; providers." + provider_.name +
                               ".credentials." + credential + ".origins names " +
                               (named.empty() ? "none" : named));
        }
        // A credential travels encrypted, or to this machine when the provider allows
        // loopback (an emulator): never in clear text across a network.
        const bool all_loopback = std::all_of(
            addresses.begin(), addresses.end(),
            [](const std::string& address) { return classify_address(address) == "loopback"; });
        if (scheme != "https" && !(provider_.egress.allow_loopback && all_loopback)) {
            return refused(status, MITIGATE_INVALID,
                           "egress: credential \"" + credential +
                               "\" is sent over https only, "
                               "not " +
                               scheme + " to " + host + ":" + port);
        }
    }
    std::unique_ptr<curl_slist, SlistDeleter> header_list;
    auto add_header = [&](const std::string& line) {
        header_list.reset(curl_slist_append(header_list.release(), line.c_str()));
    };
    const json headers = request.contains("headers") ? request["headers"] : json::object();
    if (!headers.is_object()) {
        return refused(status, MITIGATE_INVALID, "egress: headers must be an object");
    }
    for (const auto& [name, value] : headers.items()) {
        const std::string text = value.get<std::string>();
        const std::string lowered = lower(name);
        // X-Amz-Target names the operation of AWS's JSON protocol; every other X-Amz-*
        // header is part of the signature, which only the broker makes.
        if (reserved.contains(lowered) ||
            (lowered.rfind("x-amz-", 0) == 0 && lowered != "x-amz-target")) {
            return refused(status, MITIGATE_INVALID,
                           "egress: the plugin may not set the " + name + " header");
        }
        if (has_line_break(name) || has_line_break(text) || name.find(':') != std::string::npos) {
            return refused(status, MITIGATE_INVALID, "egress: malformed header " + name);
        }
        add_header(name + ": " + text);
    }
    add_header("Expect:");  // no 100-continue round trip

    std::unique_ptr<CURL, CurlDeleter> handle(curl_easy_init());
    CURL* curl = handle.get();
    char error_buffer[CURL_ERROR_SIZE] = {};
    Transfer transfer;
    transfer.cap = limits_.max_response_bytes;
    // Pin the connection to the address that was checked.
    const std::string pinned_address = addresses.front().find(':') != std::string::npos
                                           ? "[" + addresses.front() + "]"
                                           : addresses.front();
    std::unique_ptr<curl_slist, SlistDeleter> resolve(
        curl_slist_append(nullptr, (bare_host + ":" + port + ":" + pinned_address).c_str()));
    std::string userpwd;
    std::string sigv4;
    std::string missing_secret;
    if (profile != nullptr) {
        auto secret = [&](const char* key) -> std::string {
            auto found = profile->secrets.find(key);
            if (found == profile->secrets.end()) {
                return "";
            }
            SecretResolution resolution = resolve_secret(found->second);
            if (!resolution.value) {
                missing_secret = resolution.error;  // names the reference, not a value
                return "";
            }
            return std::string(resolution.value->reveal());
        };
        switch (profile->kind) {
            case CredentialKind::bearer:
                add_header("Authorization: Bearer " + secret("token"));
                break;
            case CredentialKind::api_key:
                add_header(profile->settings.at("header") + ": " + secret("key"));
                break;
            case CredentialKind::supabase: {
                const std::string key = secret("key");
                add_header("apikey: " + key);
                add_header("Authorization: Bearer " + key);
                break;
            }
            case CredentialKind::postgres: break;  // refused above
            case CredentialKind::basic:
                userpwd = profile->settings.at("username") + ":" + secret("password");
                curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
                curl_easy_setopt(curl, CURLOPT_USERPWD, userpwd.c_str());
                break;
            case CredentialKind::aws_sigv4: {
                const auto service = profile->settings.find("service");
                // The plugin names the service of each call (one AWS profile serves ECS,
                // WAFv2 and ELBv2); the profile's `service` is the default.
                const std::string signing_service = request.value("signing_service", "");
                if (!signing_service.empty() &&
                    signing_service.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") !=
                        std::string::npos) {
                    return refused(status, MITIGATE_INVALID,
                                   "egress: signing_service \"" + signing_service +
                                       "\" is not an AWS service name");
                }
                sigv4 = "aws:amz:" + profile->settings.at("region") + ":" +
                        (!signing_service.empty()             ? signing_service
                         : service != profile->settings.end() ? service->second
                                                              : "execute-api");
                userpwd = secret("access_key_id") + ":" + secret("secret_access_key");
                curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4.c_str());
                curl_easy_setopt(curl, CURLOPT_USERPWD, userpwd.c_str());
                const std::string token = secret("session_token");
                if (!token.empty()) {
                    add_header("X-Amz-Security-Token: " + token);
                }
                break;
            }
        }
    }
    if (!missing_secret.empty()) {
        return refused(status, MITIGATE_UNAVAILABLE,
                       "egress: credential \"" + profile->name + "\": " + missing_secret);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url_text.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "HEAD") {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    }
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, header_list.get());
    curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve.get());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");  // never a proxy from the environment
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    // The plugin may ask for less time than the limit (what is left of its deadline).
    auto timeout = limits_.timeout;
    if (request.contains("timeout_ms") && request["timeout_ms"].is_number_integer()) {
        timeout = std::clamp(std::chrono::milliseconds(request["timeout_ms"].get<std::int64_t>()),
                             std::chrono::milliseconds(1), limits_.timeout);
    }
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(limits_.max_response_bytes));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
    const CURLcode result = curl_easy_perform(curl);
    // The credential strings are no longer needed; overwrite before they are freed.
    std::fill(userpwd.begin(), userpwd.end(), '\0');
    if (transfer.over_cap || result == CURLE_FILESIZE_EXCEEDED) {
        return refused(status, MITIGATE_PROVIDER,
                       "egress: the response from " + host + " is larger than the " +
                           std::to_string(limits_.max_response_bytes) + "-byte cap");
    }
    if (result != CURLE_OK) {
        const bool timed_out = result == CURLE_OPERATION_TIMEDOUT;
        json failure = refused(
            status, MITIGATE_UNAVAILABLE,
            "egress: " + method + " " + host + ":" + port + " failed: " +
                (timed_out ? "timed out after " + std::to_string(timeout.count()) + " ms"
                           : std::string(error_buffer[0] != '\0' ? error_buffer
                                                                 : curl_easy_strerror(result))));
        // Nothing reached the provider: the plugin may send it again whatever it was.
        if (result == CURLE_COULDNT_CONNECT || result == CURLE_COULDNT_RESOLVE_HOST) {
            failure["not_sent"] = true;
        }
        return failure;
    }
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    status = MITIGATE_OK;
    return {{"status", code}, {"headers", transfer.headers}, {"body", transfer.body}};
}

namespace {

// Sixteen hex digits from the kernel's generator: a temporary name nobody can guess.
std::string random_suffix() {
    std::array<unsigned char, 8> bytes{};
    if (getrandom(bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) {
        bytes.fill(0);  // O_EXCL still refuses a name that exists
    }
    std::string text;
    for (unsigned char byte : bytes) {
        text += "0123456789abcdef"[byte >> 4];
        text += "0123456789abcdef"[byte & 15];
    }
    return text;
}

bool file_allowed(const ProviderConfig& provider, const std::string& path) {
    // The path as written must already be in normal form: "a/link/../f" would be
    // normalised on the text while the kernel resolves it through the link.
    const std::filesystem::path wanted(path);
    return wanted.is_absolute() && wanted.lexically_normal() == wanted &&
           std::find(provider.egress.allow_files.begin(), provider.egress.allow_files.end(),
                     wanted) != provider.egress.allow_files.end();
}

// open() that refuses to follow a symlink in any component of `path` (and magic links
// such as /proc/self/fd/N): what the operator allowed is the path as written.
int open_without_symlinks(int directory, const char* path, std::uint64_t flags,
                          std::uint64_t mode = 0) {
    open_how how{};
    how.flags = flags | O_CLOEXEC;
    how.mode = mode;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    return static_cast<int>(syscall(SYS_openat2, directory, path, &how, sizeof how));
}

// Reads the file behind `descriptor`, refusing more than `cap` bytes before holding them.
std::optional<std::string> read_capped(int descriptor, const std::string& path, std::size_t cap,
                                       std::string& error) {
    std::string text;
    std::array<char, 1 << 16> buffer{};
    while (true) {
        const ssize_t got = read(descriptor, buffer.data(), buffer.size());
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            error = path + ": " + std::strerror(errno);
            return std::nullopt;
        }
        if (got == 0) {
            return text;
        }
        if (text.size() + static_cast<std::size_t>(got) > cap) {
            error = path + " is larger than the " + std::to_string(cap) + "-byte cap";
            return std::nullopt;
        }
        text.append(buffer.data(), static_cast<std::size_t>(got));
    }
}

std::optional<std::string> read_whole(const std::string& path, std::size_t cap,
                                      std::string& error) {
    const int descriptor = open_without_symlinks(AT_FDCWD, path.c_str(), O_RDONLY);
    if (descriptor < 0) {
        error = path + ": " +
                (errno == ELOOP ? std::string("a component is a symlink, which is not followed")
                                : std::strerror(errno));
        return std::nullopt;
    }
    auto text = read_capped(descriptor, path, cap, error);
    close(descriptor);
    return text;
}

// Holds an flock on a directory for the life of the object: writers of the same file,
// in this process or another mitigate, take turns.
class DirectoryLock {
  public:
    explicit DirectoryLock(const std::filesystem::path& directory)
        : descriptor_(open_without_symlinks(AT_FDCWD, directory.c_str(), O_RDONLY | O_DIRECTORY)) {
        if (descriptor_ >= 0) {
            flock(descriptor_, LOCK_EX);
        }
    }
    ~DirectoryLock() {
        if (descriptor_ >= 0) {
            close(descriptor_);
        }
    }
    DirectoryLock(const DirectoryLock&) = delete;
    DirectoryLock& operator=(const DirectoryLock&) = delete;
    int descriptor() const { return descriptor_; }

  private:
    int descriptor_;
};

}  // namespace

json EgressBroker::read_file(const json& request, int& status) const {
    const std::string path = request.value("path", "");
    if (!file_allowed(provider_, path)) {
        return refused(
            status, MITIGATE_INVALID,
            "egress: " + path + " is not on providers." + provider_.name + ".egress.allow_files");
    }
    std::string error;
    const auto content = read_whole(path, limits_.max_file_bytes, error);
    if (!content) {
        return refused(status, MITIGATE_PROVIDER, "egress: cannot read " + error);
    }
    status = MITIGATE_OK;
    return {{"content", *content}, {"etag", sha256_hex(*content)}};
}

json EgressBroker::write_file(const json& request, int& status) const {
    const std::string path = request.value("path", "");
    if (!file_allowed(provider_, path)) {
        return refused(
            status, MITIGATE_INVALID,
            "egress: " + path + " is not on providers." + provider_.name + ".egress.allow_files");
    }
    const std::string content = request.value("content", "");
    if (content.size() > limits_.max_file_bytes) {
        return refused(status, MITIGATE_INVALID, "egress: file content over the size cap");
    }
    const std::string if_match = request.value("if_match", "");
    const std::filesystem::path target(path);
    const DirectoryLock lock(target.parent_path());
    if (lock.descriptor() < 0) {
        return refused(status, MITIGATE_PROVIDER,
                       "egress: cannot open " + target.parent_path().string());
    }
    // Everything from here is relative to the directory opened without symlinks: the
    // file, the temporary file and the rename cannot be redirected elsewhere.
    const std::string name = target.filename().string();
    std::string error;
    const int existing = open_without_symlinks(lock.descriptor(), name.c_str(), O_RDONLY);
    if (existing < 0) {
        return refused(status, MITIGATE_PROVIDER,
                       "egress: cannot read " + path + ": " + std::strerror(errno));
    }
    struct stat original {};
    fstat(existing, &original);
    const auto current = read_capped(existing, path, limits_.max_file_bytes, error);
    close(existing);
    if (!current) {
        return refused(status, MITIGATE_PROVIDER, "egress: cannot read " + error);
    }
    if (sha256_hex(*current) != if_match) {
        return refused(status, MITIGATE_CONFLICT,
                       "egress: " + path + " changed since it was read; nothing written");
    }
    std::string temporary;
    int descriptor = -1;
    for (int attempt = 0; attempt < 16 && descriptor < 0; ++attempt) {
        temporary = "." + name + ".mitigate-" + random_suffix();
        descriptor = open_without_symlinks(lock.descriptor(), temporary.c_str(),
                                           O_WRONLY | O_CREAT | O_EXCL, 0600);
    }
    if (descriptor < 0) {
        return refused(
            status, MITIGATE_PROVIDER,
            "egress: cannot create a temporary file beside " + path + ": " + std::strerror(errno));
    }
    bool written = fchmod(descriptor, original.st_mode & 07777) == 0;
    std::size_t offset = 0;
    while (written && offset < content.size()) {
        const ssize_t count = ::write(descriptor, content.data() + offset, content.size() - offset);
        written = count > 0;
        offset += written ? static_cast<std::size_t>(count) : 0;
    }
    written = written && fsync(descriptor) == 0;
    close(descriptor);
    if (!written ||
        renameat(lock.descriptor(), temporary.c_str(), lock.descriptor(), name.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        unlinkat(lock.descriptor(), temporary.c_str(), 0);
        return refused(status, MITIGATE_PROVIDER, "egress: cannot replace " + path + ": " + why);
    }
    fsync(lock.descriptor());  // the rename itself is durable once the directory is synced
    status = MITIGATE_OK;
    return {{"etag", sha256_hex(content)}};
}

}  // namespace mitigate
