#include "runtime/metrics/metrics.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "runtime/core/utf8.h"

namespace mitigate {
namespace {

// Label values escape backslash, double quote and newline; help text the first and last.
// Both are made valid UTF-8 first: a label value from a file name or a drill's name must
// not make the whole exposition unreadable.
std::string escape(std::string_view raw, bool quotes) {
    const std::string text = replace_invalid_utf8(raw);
    std::string out;
    for (char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '"' && quotes) {
            out += "\\\"";
        } else {
            out += c;
        }
    }
    return out;
}

std::string number(double value) {
    if (std::isinf(value)) {
        return value > 0 ? "+Inf" : "-Inf";
    }
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.17g", value);
    return buffer;
}

std::string label_text(const MetricLabels& labels, const std::string& extra_name = "",
                       const std::string& extra_value = "") {
    std::string out;
    for (const auto& [name, value] : labels) {
        out += (out.empty() ? "" : ",") + name + "=\"" + escape(value, true) + "\"";
    }
    if (!extra_name.empty()) {
        out += (out.empty() ? "" : ",") + extra_name + "=\"" + extra_value + "\"";
    }
    return out.empty() ? "" : "{" + out + "}";
}

}  // namespace

void Metrics::declare_counter(std::string name, std::string help) {
    std::lock_guard lock(mutex_);
    families_[std::move(name)] = Family{Type::counter, std::move(help), {}, {}};
}

void Metrics::declare_gauge(std::string name, std::string help) {
    std::lock_guard lock(mutex_);
    families_[std::move(name)] = Family{Type::gauge, std::move(help), {}, {}};
}

void Metrics::declare_histogram(std::string name, std::string help, std::vector<double> bounds) {
    std::lock_guard lock(mutex_);
    families_[std::move(name)] = Family{Type::histogram, std::move(help), std::move(bounds), {}};
}

Metrics::Family& Metrics::family(std::string_view name, Type type) {
    const auto found = families_.find(name);
    if (found == families_.end() || found->second.type != type) {
        throw std::logic_error("metric " + std::string(name) + " is not declared as used");
    }
    return found->second;
}

void Metrics::increment(std::string_view name, const MetricLabels& labels, double by) {
    std::lock_guard lock(mutex_);
    family(name, Type::counter).series[labels].value += by;
}

void Metrics::set(std::string_view name, double value, const MetricLabels& labels) {
    std::lock_guard lock(mutex_);
    family(name, Type::gauge).series[labels].value = value;
}

void Metrics::observe(std::string_view name, double value, const MetricLabels& labels) {
    std::lock_guard lock(mutex_);
    Family& histogram = family(name, Type::histogram);
    Series& series = histogram.series[labels];
    series.counts.resize(histogram.bounds.size());
    for (std::size_t i = 0; i < histogram.bounds.size(); ++i) {
        if (value <= histogram.bounds[i]) {
            ++series.counts[i];
            break;
        }
    }
    ++series.count;
    series.sum += value;
}

double Metrics::value(std::string_view name, const MetricLabels& labels) const {
    std::lock_guard lock(mutex_);
    const auto found = families_.find(name);
    if (found == families_.end()) {
        return 0;
    }
    const auto series = found->second.series.find(labels);
    return series == found->second.series.end() ? 0 : series->second.value;
}

std::string Metrics::render() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [name, family] : families_) {
        const char* type = family.type == Type::counter ? "counter"
                           : family.type == Type::gauge ? "gauge"
                                                        : "histogram";
        out += "# HELP " + name + " " + escape(family.help, false) + "\n";
        out += "# TYPE " + name + " " + type + "\n";
        if (family.series.empty() && family.type != Type::histogram) {
            out += name + " 0\n";  // present from the start, so rate() sees the first increase
        }
        for (const auto& [labels, series] : family.series) {
            if (family.type != Type::histogram) {
                out += name + label_text(labels) + " " + number(series.value) + "\n";
                continue;
            }
            std::uint64_t cumulative = 0;
            for (std::size_t i = 0; i < family.bounds.size(); ++i) {
                cumulative += i < series.counts.size() ? series.counts[i] : 0;
                out += name + "_bucket" + label_text(labels, "le", number(family.bounds[i])) + " " +
                       std::to_string(cumulative) + "\n";
            }
            out += name + "_bucket" + label_text(labels, "le", "+Inf") + " " +
                   std::to_string(series.count) + "\n";
            out += name + "_sum" + label_text(labels) + " " + number(series.sum) + "\n";
            out += name + "_count" + label_text(labels) + " " + std::to_string(series.count) + "\n";
        }
    }
    return out;
}

}  // namespace mitigate
