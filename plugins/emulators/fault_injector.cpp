#include "plugins/emulators/fault_injector.h"

#include <set>
#include <stdexcept>
#include <thread>

namespace mitigate {

using nlohmann::json;

namespace {

const char* kind_name(Fault::Kind kind) {
    switch (kind) {
        case Fault::Kind::latency: return "latency";
        case Fault::Kind::error: return "error";
        case Fault::Kind::rate_limit: return "rate_limit";
        case Fault::Kind::timeout: return "timeout";
        case Fault::Kind::drop_after_apply: return "drop_after_apply";
    }
    return "error";
}

HttpReply json_reply(int status, const json& body) {
    return {status, {{"Content-Type", "application/json"}}, body.dump(), false};
}

}  // namespace

Fault parse_fault(const json& description) {
    if (!description.is_object()) {
        throw std::invalid_argument("a fault is a JSON object");
    }
    for (const auto& [key, value] : description.items()) {
        static const std::set<std::string> known{"operation", "kind",          "status",
                                                 "delay_ms",  "retry_after_s", "count"};
        if (!known.contains(key)) {
            throw std::invalid_argument("fault." + key + ": unknown field");
        }
    }
    Fault fault;
    fault.operation = description.value("operation", "");
    const std::string kind = description.value("kind", "");
    bool known_kind = false;
    for (Fault::Kind candidate : {Fault::Kind::latency, Fault::Kind::error, Fault::Kind::rate_limit,
                                  Fault::Kind::timeout, Fault::Kind::drop_after_apply}) {
        if (kind == kind_name(candidate)) {
            fault.kind = candidate;
            known_kind = true;
        }
    }
    if (!known_kind) {
        throw std::invalid_argument(
            "fault.kind: \"" + kind +
            "\" is not latency, error, rate_limit, timeout or drop_after_apply");
    }
    fault.status = description.value("status", 500);
    if (fault.status < 400 || fault.status > 599) {
        throw std::invalid_argument("fault.status: must be 400-599");
    }
    fault.delay = std::chrono::milliseconds(
        description.value("delay_ms", fault.kind == Fault::Kind::timeout ? 5000 : 0));
    if (fault.delay.count() < 0 || fault.delay.count() > 60000) {
        throw std::invalid_argument("fault.delay_ms: must be 0-60000");
    }
    fault.retry_after_seconds = description.value("retry_after_s", 1);
    fault.count = description.value("count", 1);
    if (fault.count < 1) {
        throw std::invalid_argument("fault.count: must be at least 1");
    }
    return fault;
}

json fault_json(const Fault& fault) {
    return {{"operation", fault.operation},
            {"kind", kind_name(fault.kind)},
            {"status", fault.status},
            {"delay_ms", fault.delay.count()},
            {"retry_after_s", fault.retry_after_seconds},
            {"count", fault.count}};
}

FaultInjector::FaultInjector(ErrorReply error_reply) : error_reply_(std::move(error_reply)) {}

void FaultInjector::add(Fault fault) {
    std::lock_guard lock(mutex_);
    faults_.push_back(std::move(fault));
}

void FaultInjector::clear() {
    std::lock_guard lock(mutex_);
    faults_.clear();
}

std::optional<Fault> FaultInjector::take(const std::string& operation, bool after_apply) {
    std::lock_guard lock(mutex_);
    for (auto fault = faults_.begin(); fault != faults_.end(); ++fault) {
        const bool is_after = fault->kind == Fault::Kind::drop_after_apply;
        if (is_after != after_apply ||
            (!fault->operation.empty() && fault->operation != operation)) {
            continue;
        }
        Fault hit = *fault;
        if (--fault->count == 0) {
            faults_.erase(fault);
        }
        ++injected_;
        return hit;
    }
    return std::nullopt;
}

std::optional<HttpReply> FaultInjector::before(const std::string& operation) {
    const std::optional<Fault> fault = take(operation, false);
    if (!fault) {
        return std::nullopt;
    }
    switch (fault->kind) {
        case Fault::Kind::latency: std::this_thread::sleep_for(fault->delay); return std::nullopt;
        case Fault::Kind::error:
            return error_reply_(fault->status, operation,
                                "injected fault: " + std::to_string(fault->status));
        case Fault::Kind::rate_limit: {
            HttpReply reply = error_reply_(429, operation, "injected fault: rate limited");
            reply.headers["Retry-After"] = std::to_string(fault->retry_after_seconds);
            return reply;
        }
        case Fault::Kind::timeout: {
            std::this_thread::sleep_for(fault->delay);
            HttpReply reply;
            reply.drop_connection = true;
            return reply;
        }
        case Fault::Kind::drop_after_apply: break;
    }
    return std::nullopt;
}

bool FaultInjector::drop_after(const std::string& operation) {
    return take(operation, true).has_value();
}

std::optional<HttpReply> FaultInjector::control(const HttpExchange& request) {
    const std::string path = request.target.substr(0, request.target.find('?'));
    if (path != "/_emulator/faults") {
        return std::nullopt;
    }
    if (request.method == "DELETE") {
        clear();
        return json_reply(200, {{"cleared", true}});
    }
    if (request.method == "GET") {
        std::lock_guard lock(mutex_);
        json pending = json::array();
        for (const Fault& fault : faults_) {
            pending.push_back(fault_json(fault));
        }
        return json_reply(200, {{"faults", pending}, {"injected", injected_}});
    }
    if (request.method != "POST") {
        return json_reply(405, {{"error", "use GET, POST or DELETE"}});
    }
    try {
        Fault fault = parse_fault(json::parse(request.body));
        json added = fault_json(fault);
        add(std::move(fault));
        return json_reply(201, added);
    } catch (const std::exception& error) {
        return json_reply(400, {{"error", error.what()}});
    }
}

std::unique_ptr<HttpServer> serve_emulator(const std::string& host, std::uint16_t port,
                                           FaultInjector& faults, HttpHandler handler) {
    HttpServerOptions options;
    options.host = host;
    options.port = port;
    options.threads = 4;
    return std::make_unique<HttpServer>(
        [&faults, handler = std::move(handler)](const HttpExchange& request) {
            if (auto control = faults.control(request)) {
                return *control;
            }
            return handler(request);
        },
        options);
}

int FaultInjector::injected() const {
    std::lock_guard lock(mutex_);
    return injected_;
}

}  // namespace mitigate
