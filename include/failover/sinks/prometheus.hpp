// SPDX-License-Identifier: MIT
// PrometheusSink keeps counters, gauges and histograms of the router's events
// in memory and renders them in the Prometheus text exposition format 0.0.4
// (scrape()). It serves no HTTP itself: hand scrape() to whatever answers
// /metrics in your process (examples/03-prometheus.cpp shows a loopback one).
// Thread-safe: one mutex around hash maps; after a label set has been seen
// once, recording an event allocates nothing. Free-form label values (tenants,
// and route names too, though those come from configuration) are bounded per
// label: past the limit they are counted under "__overflow__", and long values
// are cut, so a flood of made-up tenants cannot grow the exposition without
// bound. Output is deterministic: families in name order, series sorted by
// label values.
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "failover/breaker.hpp"
#include "failover/detail/labels.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Settings of a PrometheusSink.
struct PrometheusOptions {
    /// Upper bounds (seconds) of the duration histograms' buckets, strictly increasing; +Inf is implied.
    std::vector<double> duration_buckets{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120};
    std::size_t max_tenants = 100;      ///< distinct tenant label values; later ones count as "__overflow__"
    std::size_t max_routes = 64;        ///< distinct route label values (route, from, to)
    std::size_t max_label_length = 64;  ///< longer values are cut to a prefix plus a hash (>= 16)
    /// Routes whose breaker gauge reads 0 (closed) before their first transition, so dashboards show every route.
    std::vector<std::string> routes{};

    /// Throws std::invalid_argument naming the first bad field.
    void validate() const {
        auto bad = [](const char* field, const std::string& v) {
            throw std::invalid_argument(std::string("failover: PrometheusOptions.") + field + " invalid: " + v);
        };
        if (duration_buckets.empty()) bad("duration_buckets", "empty");
        for (std::size_t i = 0; i < duration_buckets.size(); ++i) {
            const double b = duration_buckets[i];
            if (!std::isfinite(b) || b <= 0.0) bad("duration_buckets", std::to_string(b) + " (must be finite and > 0)");
            if (i > 0 && b <= duration_buckets[i - 1])
                bad("duration_buckets", std::to_string(b) + " (not strictly increasing)");
        }
        if (max_tenants < 1) bad("max_tenants", "0");
        if (max_routes < 1) bad("max_routes", "0");
        if (max_label_length < 16) bad("max_label_length", std::to_string(max_label_length) + " (must be >= 16)");
    }
};

namespace detail::prom {

enum class Type { counter, gauge, histogram };

struct Series {
    std::vector<std::string_view> labels{};  // views into the guards, or static strings
    double value = 0.0;                      // counter / gauge
    std::vector<std::uint64_t> buckets{};    // histogram, per bucket (not cumulative); last is +Inf
    double sum = 0.0;
    std::uint64_t count = 0;
};

struct Family {
    std::string_view name;
    std::string_view help;
    Type type = Type::counter;
    std::vector<std::string_view> label_names{};
    std::unordered_map<std::string, Series, labels::StringHash, std::equal_to<>> series{};
};

// A number as the text format wants it: shortest round-trip form, +Inf/-Inf/NaN.
inline void append_number(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
        return;
    }
    if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
        return;
    }
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, res.ptr);
}

inline void append_escaped_label(std::string& out, std::string_view v) {
    for (const char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
}

inline void append_escaped_help(std::string& out, std::string_view v) {
    for (const char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
}

// `{a="x",b="y"` without the closing brace, so a histogram can add `le`.
inline void append_labels_open(std::string& out, const Family& f, const Series& s) {
    out += '{';
    for (std::size_t i = 0; i < f.label_names.size(); ++i) {
        if (i) out += ',';
        out += f.label_names[i];
        out += "=\"";
        append_escaped_label(out, s.labels[i]);
        out += '"';
    }
}

inline double seconds(std::chrono::nanoseconds d) noexcept {
    const double s = std::chrono::duration<double>(d).count();
    return s > 0.0 ? s : 0.0;
}

constexpr double breaker_code(BreakerState s) noexcept {
    switch (s) {
        case BreakerState::closed: return 0;
        case BreakerState::open: return 1;
        case BreakerState::half_open: return 2;
        case BreakerState::forced_open: return 3;
        case BreakerState::disabled: return 4;
    }
    return 0;
}

}  // namespace detail::prom

/// Aggregates events into Prometheus metrics; scrape() renders them.
/// @code
/// auto prom = std::make_shared<failover::PrometheusSink>();
/// router.add_sink(prom);
/// serve_metrics([&] { return prom->scrape(); });  // your HTTP server's /metrics handler
/// @endcode
class PrometheusSink final : public MetricsSink {
public:
    /// Content-Type to send with scrape()'s text.
    static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

    /// Throws std::invalid_argument naming a bad option.
    explicit PrometheusSink(PrometheusOptions options = {})
        : opts_((options.validate(), std::move(options))),
          tenants_(opts_.max_tenants, opts_.max_label_length, &detail::labels::clean_utf8),
          routes_(opts_.max_routes, opts_.max_label_length, &detail::labels::clean_utf8) {
        using T = detail::prom::Type;
        auto add = [&](detail::prom::Family& f, std::string_view name, T type, std::string_view help,
                       std::initializer_list<std::string_view> label_names) {
            f.name = name;
            f.type = type;
            f.help = help;
            f.label_names.assign(label_names.begin(), label_names.end());
        };
        add(attempt_duration_, "failover_attempt_duration_seconds", T::histogram,
            "Duration of one attempt on one route, successful or not.", {"route"});
        add(attempts_, "failover_attempts_total", T::counter,
            "Attempts by route and outcome; reason is \"ok\" for an attempt that answered.", {"route", "reason"});
        add(breaker_state_, "failover_breaker_state", T::gauge,
            "Circuit breaker state per route: 0 closed, 1 open, 2 half_open, 3 forced_open, 4 disabled.", {"route"});
        add(breaker_transitions_, "failover_breaker_transitions_total", T::counter,
            "Circuit breaker transitions by route and the state entered.", {"route", "to"});
        add(cooldowns_, "failover_cooldowns_total", T::counter,
            "Times a route was cooled down after a Retry-After too long to wait.", {"route"});
        add(cost_, "failover_cost_usd_total", T::counter,
            "Estimated spend in US dollars on answered attempts, by tenant and route.", {"tenant", "route"});
        add(drift_active_, "failover_drift_active", T::gauge,
            "1 while the fallback share is above its threshold (from a DriftMonitor); tenant \"\" is the overall share.",
            {"tenant"});
        add(drift_alerts_, "failover_drift_alerts_total", T::counter,
            "Fallback drift alerts raised by a DriftMonitor; tenant \"\" is the overall share.", {"tenant"});
        add(first_token_, "failover_first_token_seconds", T::histogram,
            "Time from a streamed attempt's start to its first text or tool-call delta, by route.", {"route"});
        add(fallbacks_, "failover_fallbacks_total", T::counter,
            "Requests moving from one route to the next, by why the first did not answer.",
            {"from", "to", "reason", "tenant"});
        add(health_checks_, "failover_health_checks_total", T::counter,
            "Active health-check probes of routes whose breaker was open, by outcome (pass or fail) and why a "
            "probe failed (none when it passed). Never user requests.",
            {"route", "outcome", "reason"});
        add(store_events_, "failover_store_events_total", T::counter,
            "Events of a shared state store: connected, disconnected, adopted_breaker and adopted_cooldown (a "
            "change another instance made, applied here).",
            {"store", "kind"});
        add(store_up_, "failover_store_up", T::gauge,
            "1 while a shared state store reaches its server, 0 while requests run on local state alone.", {"store"});
        add(notices_, "failover_notices_total", T::counter,
            "Things an operator should hear of once (e.g. topic structured_output: a schema sent with strict off).",
            {"route", "topic"});
        add(overflow_, "failover_label_overflow_total", T::counter,
            "Events whose label value was past the distinct-value limit and counted as \"__overflow__\".", {"label"});
        add(request_duration_, "failover_request_duration_seconds", T::histogram,
            "End-to-end duration of a request over the whole chain (answered or exhausted).", {"outcome"});
        add(requests_, "failover_requests_total", T::counter,
            "Requests by the route that answered (\"none\" when exhausted) and outcome: success, exhausted or policy.",
            {"route", "outcome"});
        add(retries_, "failover_retries_total", T::counter, "Retries on the same route, by why the previous attempt failed.",
            {"route", "reason"});
        add(skips_, "failover_skips_total", T::counter, "Routes passed over without a call, by reason.",
            {"route", "reason"});
        add(streams_, "failover_streams_total", T::counter,
            "Streamed requests and attempts by how they ended for the caller: complete, failed_mid_stream "
            "(after the first delta) or restarted (on the next route, opted in); reason is none when complete.",
            {"route", "outcome", "reason"});
        add(tokens_, "failover_tokens_total", T::counter, "Tokens of answered attempts, by route and direction.",
            {"route", "direction"});
        for (const auto& r : opts_.routes) set(breaker_state_, {route(r)}, 0.0);
    }

    PrometheusSink(const PrometheusSink&) = delete;
    PrometheusSink& operator=(const PrometheusSink&) = delete;

    /// Counts one event. Thread-safe; never throws once the label set has been seen.
    void record(const Event& ev) override {
        std::lock_guard lock(mu_);
        std::visit([this](const auto& e) { on(e); }, ev);
    }

    /// The text exposition (format 0.0.4): # HELP and # TYPE for each family that has samples.
    std::string scrape() const {
        std::lock_guard lock(mu_);
        std::string out;
        out.reserve(4096);
        for (const detail::prom::Family* f : families()) render(out, *f);
        return out;
    }

private:
    using Family = detail::prom::Family;
    using Series = detail::prom::Series;

    std::string_view route(std::string_view r) { return guarded(routes_, r, "route"); }
    std::string_view tenant(std::string_view t) { return guarded(tenants_, t, "tenant"); }
    std::string_view guarded(detail::labels::LabelGuard& g, std::string_view v, std::string_view label) {
        bool over = false;
        const std::string_view out = g.admit(v, &over);
        if (over) inc(overflow_, {label});
        return out;
    }

    Series& at(Family& f, std::initializer_list<std::string_view> values) {
        key_.clear();
        for (const auto v : values) {
            key_.append(v);
            key_ += '\xff';  // never part of valid UTF-8, so keys cannot collide
        }
        auto it = f.series.find(std::string_view(key_));
        if (it == f.series.end()) {
            Series s;
            s.labels.assign(values.begin(), values.end());
            if (f.type == detail::prom::Type::histogram) s.buckets.assign(opts_.duration_buckets.size() + 1, 0);
            it = f.series.emplace(key_, std::move(s)).first;
        }
        return it->second;
    }
    void inc(Family& f, std::initializer_list<std::string_view> values, double by = 1.0) { at(f, values).value += by; }
    void set(Family& f, std::initializer_list<std::string_view> values, double v) { at(f, values).value = v; }
    void observe(Family& f, std::initializer_list<std::string_view> values, double s) {
        Series& series = at(f, values);
        const auto& b = opts_.duration_buckets;
        const auto i = static_cast<std::size_t>(std::lower_bound(b.begin(), b.end(), s) - b.begin());
        ++series.buckets[i];  // le is inclusive: s == bound lands in that bucket
        series.sum += s;
        ++series.count;
    }

    void on(const AttemptEvent& e) {
        const auto r = route(e.route);
        inc(attempts_, {r, e.ok ? std::string_view("ok") : to_string(e.reason)});
        observe(attempt_duration_, {r}, detail::prom::seconds(e.latency));
        if (!e.ok) return;
        if (e.usage.input_tokens > 0) inc(tokens_, {r, "input"}, static_cast<double>(e.usage.input_tokens));
        if (e.usage.output_tokens > 0) inc(tokens_, {r, "output"}, static_cast<double>(e.usage.output_tokens));
        if (e.cost_usd > 0.0 && std::isfinite(e.cost_usd)) inc(cost_, {tenant(e.tenant), r}, e.cost_usd);
    }
    void on(const RetryEvent& e) { inc(retries_, {route(e.route), to_string(e.reason)}); }
    void on(const FallbackEvent& e) {
        const auto from = route(e.from);
        const auto to = route(e.to);
        inc(fallbacks_, {from, to, to_string(e.reason), tenant(e.tenant)});
    }
    void on(const SkipEvent& e) { inc(skips_, {route(e.route), to_string(e.reason)}); }
    void on(const BreakerEvent& e) {
        const auto r = route(e.route);
        set(breaker_state_, {r}, detail::prom::breaker_code(e.transition.to));
        inc(breaker_transitions_, {r, to_string(e.transition.to)});
    }
    void on(const CooldownEvent& e) { inc(cooldowns_, {route(e.route)}); }
    void on(const SuccessEvent& e) {
        inc(requests_, {route(e.route), "success"});
        observe(request_duration_, {"success"}, detail::prom::seconds(e.latency));
    }
    void on(const ExhaustedEvent& e) {
        inc(requests_, {"none", "exhausted"});
        observe(request_duration_, {"exhausted"}, detail::prom::seconds(e.latency));
    }
    void on(const PolicyEvent& e) { inc(requests_, {route(e.route), "policy"}); }
    void on(const DriftEvent& e) {
        const auto t = tenant(e.tenant);
        set(drift_active_, {t}, e.alert ? 1.0 : 0.0);
        if (e.alert) inc(drift_alerts_, {t});
    }
    void on(const NoticeEvent& e) { inc(notices_, {route(e.route), e.topic}); }
    void on(const FirstTokenEvent& e) { observe(first_token_, {route(e.route)}, detail::prom::seconds(e.latency)); }
    void on(const StreamOutcomeEvent& e) {
        inc(streams_, {route(e.route), e.outcome, e.outcome == "complete" ? std::string_view("none") : to_string(e.reason)});
    }
    void on(const StoreEvent& e) {
        inc(store_events_, {e.store, e.kind});
        if (e.kind == "connected") set(store_up_, {e.store}, 1.0);
        if (e.kind == "disconnected") set(store_up_, {e.store}, 0.0);
    }
    void on(const HealthCheckEvent& e) {
        inc(health_checks_, {route(e.route), e.ok ? std::string_view("pass") : std::string_view("fail"),
                             e.ok ? std::string_view("none") : to_string(e.reason)});
    }

    // In name order, which is the exposition's order.
    std::vector<const Family*> families() const {
        return {&attempt_duration_, &attempts_, &breaker_state_, &breaker_transitions_, &cooldowns_,
                &cost_,             &drift_active_, &drift_alerts_, &fallbacks_,        &first_token_,
                &health_checks_,    &overflow_,         &notices_,      &request_duration_, &requests_,     &retries_,
                &skips_,            &store_events_, &store_up_,     &streams_,      &tokens_};
    }

    void render(std::string& out, const Family& f) const {
        if (f.series.empty()) return;
        out += "# HELP ";
        out += f.name;
        out += ' ';
        detail::prom::append_escaped_help(out, f.help);
        out += "\n# TYPE ";
        out += f.name;
        switch (f.type) {
            case detail::prom::Type::counter: out += " counter\n"; break;
            case detail::prom::Type::gauge: out += " gauge\n"; break;
            case detail::prom::Type::histogram: out += " histogram\n"; break;
        }
        std::vector<const Series*> sorted;
        sorted.reserve(f.series.size());
        for (const auto& [key, s] : f.series) sorted.push_back(&s);
        std::sort(sorted.begin(), sorted.end(), [](const Series* a, const Series* b) { return a->labels < b->labels; });
        for (const Series* s : sorted) {
            if (f.type != detail::prom::Type::histogram) {
                out += f.name;
                if (!f.label_names.empty()) {
                    detail::prom::append_labels_open(out, f, *s);
                    out += '}';
                }
                out += ' ';
                detail::prom::append_number(out, s->value);
                out += '\n';
                continue;
            }
            std::uint64_t cumulative = 0;
            for (std::size_t i = 0; i < s->buckets.size(); ++i) {
                cumulative += s->buckets[i];
                out += f.name;
                out += "_bucket";
                detail::prom::append_labels_open(out, f, *s);
                out += f.label_names.empty() ? "le=\"" : ",le=\"";
                if (i < opts_.duration_buckets.size()) detail::prom::append_number(out, opts_.duration_buckets[i]);
                else out += "+Inf";
                out += "\"} ";
                detail::prom::append_number(out, static_cast<double>(cumulative));
                out += '\n';
            }
            for (const std::string_view suffix : {std::string_view("_sum"), std::string_view("_count")}) {
                out += f.name;
                out += suffix;
                detail::prom::append_labels_open(out, f, *s);
                out += "} ";
                detail::prom::append_number(out, suffix == "_sum" ? s->sum : static_cast<double>(s->count));
                out += '\n';
            }
        }
    }

    PrometheusOptions opts_;
    mutable std::mutex mu_{};
    detail::labels::LabelGuard tenants_;
    detail::labels::LabelGuard routes_;
    std::string key_{};  // scratch for series lookups, under mu_
    Family attempt_duration_{}, attempts_{}, breaker_state_{}, breaker_transitions_{}, cooldowns_{}, cost_{},
        drift_active_{}, drift_alerts_{}, fallbacks_{}, first_token_{}, health_checks_{}, store_events_{}, store_up_{}, overflow_{}, notices_{}, request_duration_{},
        requests_{}, retries_{}, skips_{}, streams_{}, tokens_{};
};

FAILOVER_END_NAMESPACE
