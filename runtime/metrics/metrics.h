// The runtime's counters, gauges and histograms, rendered in the Prometheus text
// exposition format (version 0.0.4) for GET /metrics. Families are declared once with
// their help text; samples are keyed by their label set. Thread-safe: API threads and
// the engine thread record into one instance.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace mitigate {

using MetricLabels = std::map<std::string, std::string>;

class Metrics {
  public:
    void declare_counter(std::string name, std::string help);
    void declare_gauge(std::string name, std::string help);
    // `bounds` are the upper bounds of the buckets, ascending; +Inf is implied.
    void declare_histogram(std::string name, std::string help, std::vector<double> bounds);

    // Recording into an undeclared family is a bug: std::logic_error.
    void increment(std::string_view name, const MetricLabels& labels = {}, double by = 1);
    void set(std::string_view name, double value, const MetricLabels& labels = {});
    void observe(std::string_view name, double value, const MetricLabels& labels = {});

    double value(std::string_view name, const MetricLabels& labels = {}) const;  // counter/gauge
    std::string render() const;

  private:
    enum class Type { counter, gauge, histogram };
    struct Series {
        double value = 0;                   // counter, gauge
        std::vector<std::uint64_t> counts;  // histogram, one per bound (not cumulative)
        std::uint64_t count = 0;
        double sum = 0;
    };
    struct Family {
        Type type = Type::counter;
        std::string help;
        std::vector<double> bounds;
        std::map<MetricLabels, Series> series;
    };
    Family& family(std::string_view name, Type type);

    mutable std::mutex mutex_;
    std::map<std::string, Family, std::less<>> families_;
};

}  // namespace mitigate
