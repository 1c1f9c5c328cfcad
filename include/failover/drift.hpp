// SPDX-License-Identifier: MIT
// DriftMonitor watches how often requests are NOT answered by the first route
// of their chain: a SuccessEvent with `fallback` set, or an ExhaustedEvent
// (nothing answered). Over a rolling window (default 5 minutes, kept in
// `buckets` slices, so it trails by at most one slice) it computes that share
// overall and per tenant. When a share rises above `threshold` with at least
// `min_requests` requests in the window it sends an alert DriftEvent to the
// downstream sink; the matching recovery DriftEvent follows once the share
// falls to threshold * (1 - hysteresis) or below (default 5 % up, 4 % down),
// so a share hovering at the threshold does not flap. A policy block is not
// counted: it says nothing about the providers' health. Shares are evaluated
// when events arrive; call check() on a timer if a quiet period should
// recover an alert without new traffic. Time comes from the injected Clock.
// Tenants past `max_tenants` count only in the overall share, and a tenant
// longer than 64 bytes is reported cut to a prefix plus a hash.
// Thread-safe: one mutex; DriftEvents are sent while it is held, so the
// downstream sink sees alerts and recoveries in order and must not call back
// into the monitor.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "failover/clock.hpp"
#include "failover/detail/labels.hpp"
#include "failover/metrics.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Settings of a DriftMonitor.
struct DriftOptions {
    double threshold = 0.05;                  ///< alert when the non-primary share goes above this (0, 1)
    double hysteresis = 0.2;                  ///< recover at share <= threshold * (1 - hysteresis); 0: same threshold
    std::chrono::seconds window{300};         ///< rolling window
    int buckets = 30;                         ///< slices of the window (its time resolution)
    std::uint64_t min_requests = 20;          ///< no alert on fewer requests in the window (1 of 3 is not a drift)
    bool per_tenant = true;                   ///< also watch each tenant's share
    std::size_t max_tenants = 100;            ///< tenants watched; later ones count only in the overall share
    std::shared_ptr<Clock> clock = default_clock();

    /// Throws std::invalid_argument naming the first bad field.
    void validate() const {
        auto bad = [](const char* field, const std::string& v) {
            throw std::invalid_argument(std::string("failover: DriftOptions.") + field + " invalid: " + v);
        };
        if (!(threshold > 0.0 && threshold < 1.0)) bad("threshold", std::to_string(threshold) + " (must be in (0, 1))");
        if (!(hysteresis >= 0.0 && hysteresis < 1.0)) bad("hysteresis", std::to_string(hysteresis) + " (must be in [0, 1))");
        if (window.count() < 1) bad("window", std::to_string(window.count()) + " s");
        if (buckets < 1 || buckets > 3600) bad("buckets", std::to_string(buckets) + " (1..3600)");
        if (min_requests < 1) bad("min_requests", "0");
        if (!clock) bad("clock", "null");
    }
};

/// What a DriftMonitor currently sees for one scope.
struct DriftStatus {
    std::uint64_t requests = 0;     ///< in the window
    std::uint64_t not_primary = 0;  ///< answered by a later route, or not answered at all
    double share = 0.0;             ///< not_primary / requests (0 when no requests)
    bool alerting = false;          ///< an alert was sent and no recovery since
};

/// Turns SuccessEvents and ExhaustedEvents into DriftEvents for a downstream sink.
/// @code
/// auto prom = std::make_shared<failover::PrometheusSink>();
/// router.add_sink(prom);
/// router.add_sink(std::make_shared<failover::DriftMonitor>(prom));  // failover_drift_* in prom
/// @endcode
class DriftMonitor final : public MetricsSink {
public:
    /// Throws std::invalid_argument on a null downstream sink or a bad option.
    explicit DriftMonitor(std::shared_ptr<MetricsSink> downstream, DriftOptions options = {})
        : opts_((options.validate(), std::move(options))), downstream_(std::move(downstream)),
          tenants_(opts_.max_tenants, 64, &detail::labels::clean_utf8),
          width_(std::max(Clock::duration{1}, std::chrono::duration_cast<Clock::duration>(opts_.window) / opts_.buckets)),
          overall_(static_cast<std::size_t>(opts_.buckets)) {
        if (!downstream_) throw std::invalid_argument("failover: DriftMonitor: downstream sink is null");
    }

    /// Counts SuccessEvent and ExhaustedEvent; ignores the rest.
    void record(const Event& ev) override {
        bool not_primary = false;
        std::string_view tenant{};
        if (const auto* s = std::get_if<SuccessEvent>(&ev)) {
            not_primary = s->fallback;
            tenant = s->tenant;
        } else if (const auto* x = std::get_if<ExhaustedEvent>(&ev)) {
            not_primary = true;
            tenant = x->tenant;
        } else {
            return;
        }
        std::lock_guard lock(mu_);
        const std::int64_t slot = slot_at(opts_.clock->now());
        overall_.add(slot, not_primary, static_cast<std::size_t>(opts_.buckets));
        evaluate(overall_, {}, slot);
        if (Scope* t = tenant_scope(tenant)) {
            t->add(slot, not_primary, static_cast<std::size_t>(opts_.buckets));
            evaluate(*t, t->name, slot);
        }
    }

    /// Re-evaluates every share at the clock's now, so an alert can recover in a quiet period.
    void check() {
        std::lock_guard lock(mu_);
        const std::int64_t slot = slot_at(opts_.clock->now());
        evaluate(overall_, {}, slot);
        for (auto& [key, scope] : by_tenant_) evaluate(scope, scope.name, slot);
    }

    /// The overall share (tenant empty) or one tenant's; nullopt for a tenant not watched.
    std::optional<DriftStatus> status(std::string_view tenant = {}) const {
        std::lock_guard lock(mu_);
        const std::int64_t slot = slot_at(opts_.clock->now());
        const Scope* s = &overall_;
        if (!tenant.empty()) {
            auto it = by_tenant_.find(tenant);
            if (it == by_tenant_.end()) return std::nullopt;
            s = &it->second;
        }
        return s->status(slot, opts_.buckets);
    }

    const DriftOptions& options() const noexcept { return opts_; }

private:
    struct Bucket {
        std::int64_t slot = -1;
        std::uint64_t requests = 0;
        std::uint64_t not_primary = 0;
    };
    struct Scope {
        explicit Scope(std::size_t n) : ring(n) {}
        std::vector<Bucket> ring;
        bool alerting = false;
        std::string_view name{};  // tenant label, owned by the guard

        void add(std::int64_t slot, bool not_primary, std::size_t n) {
            Bucket& b = ring[static_cast<std::size_t>(slot) % n];
            if (b.slot != slot) b = Bucket{slot, 0, 0};
            ++b.requests;
            if (not_primary) ++b.not_primary;
        }
        DriftStatus status(std::int64_t slot, int n) const {
            DriftStatus st{};
            for (const Bucket& b : ring)
                if (b.slot > slot - n && b.slot <= slot) {
                    st.requests += b.requests;
                    st.not_primary += b.not_primary;
                }
            st.share = st.requests ? static_cast<double>(st.not_primary) / static_cast<double>(st.requests) : 0.0;
            st.alerting = alerting;
            return st;
        }
    };

    std::int64_t slot_at(Clock::time_point t) const {
        const auto ticks = t.time_since_epoch().count();
        return ticks < 0 ? 0 : static_cast<std::int64_t>(ticks / width_.count());
    }

    Scope* tenant_scope(std::string_view tenant) {
        if (!opts_.per_tenant || tenant.empty()) return nullptr;
        bool over = false;
        const std::string_view key = tenants_.admit(tenant, &over);
        if (over) return nullptr;  // past max_tenants: only the overall share sees it
        auto it = by_tenant_.find(key);
        if (it == by_tenant_.end()) {
            it = by_tenant_.emplace(std::string(key), Scope(static_cast<std::size_t>(opts_.buckets))).first;
            it->second.name = key;
        }
        return &it->second;
    }

    void evaluate(Scope& s, std::string_view tenant, std::int64_t slot) {
        const DriftStatus st = s.status(slot, opts_.buckets);
        if (!s.alerting && st.requests >= opts_.min_requests && st.share > opts_.threshold) {
            s.alerting = true;
            emit(tenant, true, st);
        } else if (s.alerting && st.share <= opts_.threshold * (1.0 - opts_.hysteresis)) {
            s.alerting = false;
            emit(tenant, false, st);
        }
    }

    void emit(std::string_view tenant, bool alert, const DriftStatus& st) {
        DriftEvent e{};
        e.tenant = tenant;
        e.alert = alert;
        e.share = st.share;
        e.threshold = opts_.threshold;
        e.window = opts_.window;
        e.requests = st.requests;
        downstream_->record(e);
    }

    DriftOptions opts_;
    std::shared_ptr<MetricsSink> downstream_;
    mutable std::mutex mu_{};
    detail::labels::LabelGuard tenants_;
    Clock::duration width_;
    Scope overall_;
    std::unordered_map<std::string, Scope, detail::labels::StringHash, std::equal_to<>> by_tenant_{};
};

FAILOVER_END_NAMESPACE
