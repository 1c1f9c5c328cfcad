// SPDX-License-Identifier: MIT
// StatsdSink sends the router's events as StatsD lines over UDP: counters
// (`|c`), timings in milliseconds (`|ms`) and the breaker state as a gauge
// (`|g`). With DogStatsD tags on (the default) labels travel as `|#key:value`
// tags; with them off they are folded into the metric name
// (`failover.requests.primary.success`). The lines of one event go out as one
// datagram. Sending never blocks and never throws: the socket is
// non-blocking, and a datagram that cannot be sent (no buffer space, nobody
// listening) is counted in dropped() and forgotten, as UDP metrics are.
// Label values are restricted to [A-Za-z0-9_-] (anything else becomes '_'),
// cut to a length, and bounded in number per label like PrometheusSink's
// ("__overflow__" past the limit). The host is resolved once, in the
// constructor. Thread-safe: one mutex around the formatting and the send.
#pragma once

#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "failover/breaker.hpp"
#include "failover/detail/labels.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Settings of a StatsdSink.
struct StatsdOptions {
    std::string host = "127.0.0.1";     ///< name or address of the StatsD / DogStatsD agent
    std::uint16_t port = 8125;          ///< its UDP port
    std::string prefix = "failover.";   ///< put before every metric name, as given
    bool tags = true;                   ///< DogStatsD `|#key:value` tags; false: labels become name components
    std::size_t max_tenants = 100;      ///< distinct tenant values; later ones are sent as "__overflow__"
    std::size_t max_routes = 64;        ///< distinct route values (route, from, to)
    std::size_t max_label_length = 64;  ///< longer values are cut to a prefix plus a hash (>= 16)
    std::size_t max_datagram = 1432;    ///< bytes per datagram; an event's lines are split to fit (>= 512)

    /// Throws std::invalid_argument naming the first bad field.
    void validate() const {
        auto bad = [](const char* field, const std::string& v) {
            throw std::invalid_argument(std::string("failover: StatsdOptions.") + field + " invalid: " + v);
        };
        if (host.empty()) bad("host", "empty");
        if (port == 0) bad("port", "0");
        for (const char c : prefix)
            if (c == ':' || c == '|' || c == '@' || c == '#' || c == '\n' || c == ' ' || c == ',')
                bad("prefix", "'" + prefix + "' (':', '|', '@', '#', ',', space and newline are not allowed)");
        if (max_tenants < 1) bad("max_tenants", "0");
        if (max_routes < 1) bad("max_routes", "0");
        if (max_label_length < 16) bad("max_label_length", std::to_string(max_label_length) + " (must be >= 16)");
        if (max_datagram < 512) bad("max_datagram", std::to_string(max_datagram) + " (must be >= 512)");
    }
};

/// Sends events to a StatsD or DogStatsD agent over UDP.
/// @code
/// router.add_sink(std::make_shared<failover::StatsdSink>(
///     failover::StatsdOptions{.host = "127.0.0.1", .port = 8125, .prefix = "myapp.llm."}));
/// @endcode
class StatsdSink final : public MetricsSink {
public:
    /// Resolves the host and opens a non-blocking UDP socket. Throws
    /// std::invalid_argument naming a bad option (including a host that does
    /// not resolve), std::system_error if the socket cannot be opened.
    explicit StatsdSink(StatsdOptions options = {})
        : opts_((options.validate(), std::move(options))),
          tenants_(opts_.max_tenants, opts_.max_label_length, &detail::labels::clean_statsd),
          routes_(opts_.max_routes, opts_.max_label_length, &detail::labels::clean_statsd) {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_DGRAM;
        hints.ai_flags = AI_NUMERICSERV;
        addrinfo* found = nullptr;
        const std::string port = std::to_string(opts_.port);
        if (const int rc = ::getaddrinfo(opts_.host.c_str(), port.c_str(), &hints, &found); rc != 0 || !found)
            throw std::invalid_argument("failover: StatsdOptions.host invalid: '" + opts_.host +
                                        "' does not resolve (" + ::gai_strerror(rc) + ")");
        int err = 0;
        for (addrinfo* a = found; a; a = a->ai_next) {
            const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
            if (fd < 0) {
                err = errno;
                continue;
            }
            if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
                fd_ = fd;
                break;
            }
            err = errno;
            ::close(fd);
        }
        ::freeaddrinfo(found);
        if (fd_ < 0) throw std::system_error(err, std::generic_category(), "failover: StatsdSink: UDP socket to " + opts_.host);
        buf_.reserve(opts_.max_datagram);
    }

    ~StatsdSink() override {
        if (fd_ >= 0) ::close(fd_);
    }
    StatsdSink(const StatsdSink&) = delete;
    StatsdSink& operator=(const StatsdSink&) = delete;

    /// Formats and sends one event. Never blocks, never throws.
    void record(const Event& ev) noexcept override {
        try {
            std::lock_guard lock(mu_);
            buf_.clear();
            std::visit([this](const auto& e) { on(e); }, ev);
            flush();
        } catch (...) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
        }
    }

    /// Datagrams handed to the kernel.
    std::uint64_t sent() const noexcept { return sent_.load(std::memory_order_relaxed); }
    /// Datagrams that could not be sent (and lines that could not be formatted).
    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

private:
    struct Tag {
        std::string_view key;
        std::string_view value;
    };

    std::string_view route(std::string_view r) { return routes_.admit(r); }
    std::string_view tenant(std::string_view t) { return tenants_.admit(t); }

    static void append_number(std::string& out, double v) {
        if (!std::isfinite(v) || v < 0.0) v = 0.0;
        char buf[32];
        // Three decimals at most: microseconds for timings, a tenth of a cent for costs.
        const double rounded = std::round(v * 1000.0) / 1000.0;
        const auto res = std::to_chars(buf, buf + sizeof buf, rounded);
        out.append(buf, res.ptr);
    }

    // One line: prefix + name [+ .value...] : amount | type [|#k:v,...]
    void line(std::string_view name, double amount, std::string_view type, std::initializer_list<Tag> tags) {
        std::string& l = line_;
        l.clear();
        l += opts_.prefix;
        l += name;
        if (!opts_.tags)
            for (const Tag& t : tags) {
                l += '.';
                l += t.value.empty() ? std::string_view("none") : t.value;
            }
        l += ':';
        append_number(l, amount);
        l += '|';
        l += type;
        if (opts_.tags) {
            bool first = true;
            for (const Tag& t : tags) {
                if (t.value.empty()) continue;  // a tag without a value says nothing
                l += first ? "|#" : ",";
                first = false;
                l += t.key;
                l += ':';
                l += t.value;
            }
        }
        if (!buf_.empty() && buf_.size() + 1 + l.size() > opts_.max_datagram) flush();
        if (!buf_.empty()) buf_ += '\n';
        buf_ += l;
    }

    void flush() {
        if (buf_.empty()) return;
        const ssize_t n = ::send(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == static_cast<ssize_t>(buf_.size())) sent_.fetch_add(1, std::memory_order_relaxed);
        else dropped_.fetch_add(1, std::memory_order_relaxed);
        buf_.clear();
    }

    static double ms(std::chrono::nanoseconds d) { return std::chrono::duration<double, std::milli>(d).count(); }

    void on(const AttemptEvent& e) {
        const auto r = route(e.route);
        line("attempts", 1, "c", {{"route", r}, {"reason", e.ok ? std::string_view("ok") : to_string(e.reason)}});
        line("attempt.duration", ms(e.latency), "ms", {{"route", r}});
        if (!e.ok) return;
        if (e.usage.input_tokens > 0)
            line("tokens", static_cast<double>(e.usage.input_tokens), "c", {{"route", r}, {"direction", "input"}});
        if (e.usage.output_tokens > 0)
            line("tokens", static_cast<double>(e.usage.output_tokens), "c", {{"route", r}, {"direction", "output"}});
        if (e.cost_usd > 0.0 && std::isfinite(e.cost_usd))
            line("cost_usd", e.cost_usd, "c", {{"tenant", tenant(e.tenant)}, {"route", r}});
    }
    void on(const RetryEvent& e) { line("retries", 1, "c", {{"route", route(e.route)}, {"reason", to_string(e.reason)}}); }
    void on(const FallbackEvent& e) {
        const auto from = route(e.from);
        const auto to = route(e.to);
        line("fallbacks", 1, "c", {{"from", from}, {"to", to}, {"reason", to_string(e.reason)}, {"tenant", tenant(e.tenant)}});
    }
    void on(const SkipEvent& e) { line("skips", 1, "c", {{"route", route(e.route)}, {"reason", to_string(e.reason)}}); }
    void on(const BreakerEvent& e) {
        const auto r = route(e.route);
        double code = 0;
        switch (e.transition.to) {
            case BreakerState::closed: code = 0; break;
            case BreakerState::open: code = 1; break;
            case BreakerState::half_open: code = 2; break;
            case BreakerState::forced_open: code = 3; break;
            case BreakerState::disabled: code = 4; break;
        }
        line("breaker.state", code, "g", {{"route", r}});
        line("breaker.transitions", 1, "c", {{"route", r}, {"to", to_string(e.transition.to)}});
    }
    void on(const CooldownEvent& e) { line("cooldowns", 1, "c", {{"route", route(e.route)}}); }
    void on(const SuccessEvent& e) {
        line("requests", 1, "c", {{"route", route(e.route)}, {"outcome", "success"}});
        line("request.duration", ms(e.latency), "ms", {{"outcome", "success"}});
    }
    void on(const ExhaustedEvent& e) {
        line("requests", 1, "c", {{"route", "none"}, {"outcome", "exhausted"}});
        line("request.duration", ms(e.latency), "ms", {{"outcome", "exhausted"}});
    }
    void on(const PolicyEvent& e) { line("requests", 1, "c", {{"route", route(e.route)}, {"outcome", "policy"}}); }
    void on(const DriftEvent& e) {
        const auto t = tenant(e.tenant);
        line("drift.active", e.alert ? 1 : 0, "g", {{"tenant", t}});
        if (e.alert) line("drift.alerts", 1, "c", {{"tenant", t}});
    }
    void on(const NoticeEvent& e) { line("notices", 1, "c", {{"route", route(e.route)}, {"topic", e.topic}}); }
    void on(const FirstTokenEvent& e) {
        line("first_token", std::chrono::duration<double, std::milli>(e.latency).count(), "ms", {{"route", route(e.route)}});
    }
    void on(const StreamOutcomeEvent& e) {
        line("streams", 1, "c",
             {{"route", route(e.route)}, {"outcome", e.outcome},
              {"reason", e.outcome == "complete" ? std::string_view("none") : to_string(e.reason)}});
    }
    void on(const StoreEvent& e) {
        line("store_events", 1, "c", {{"store", e.store}, {"kind", e.kind}});
        if (e.kind == "connected" || e.kind == "disconnected") line("store_up", e.kind == "connected" ? 1 : 0, "g", {{"store", e.store}});
    }
    void on(const HealthCheckEvent& e) {
        line("health_checks", 1, "c",
             {{"route", route(e.route)}, {"outcome", e.ok ? std::string_view("pass") : std::string_view("fail")},
              {"reason", e.ok ? std::string_view("none") : to_string(e.reason)}});
    }

    StatsdOptions opts_;
    std::mutex mu_{};
    detail::labels::LabelGuard tenants_;
    detail::labels::LabelGuard routes_;
    int fd_ = -1;
    std::string buf_{};   // the datagram being built, under mu_
    std::string line_{};  // the line being built, under mu_
    std::atomic<std::uint64_t> sent_{0};
    std::atomic<std::uint64_t> dropped_{0};
};

FAILOVER_END_NAMESPACE
