// SPDX-License-Identifier: MIT
// What routes cost and what tenants may spend. A Price turns token usage into
// dollars; a BudgetStore keeps each tenant's spend over a rolling window (the
// in-memory default here; RedisStore in stores/redis.hpp shares it between
// instances); Budgets holds the ceilings. The router asks before each route
// whether the tenant can still afford it (an estimate from the request's size)
// and downshifts to cheaper routes when it cannot. Each attempt on a priced
// route then reserves its estimate (the check and the hold are one step, so
// concurrent requests of a tenant never overshoot together), and settles when
// it ends: an answer's real cost is recorded and the hold let go, a failure only
// lets go. The estimate uses the request's size and its max_tokens or the
// route's expected_output_tokens, so the last request admitted may overshoot a
// ceiling by its estimate's error.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

#include "failover/response.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// A route's price in US dollars per million tokens.
struct Price {
    double input_per_million = 0.0;
    double output_per_million = 0.0;

    /// Cost of `u`, in dollars.
    double cost(const Usage& u) const noexcept {
        return (static_cast<double>(u.input_tokens) * input_per_million +
                static_cast<double>(u.output_tokens) * output_per_million) /
               1e6;
    }
    bool free() const noexcept { return input_per_million == 0.0 && output_per_million == 0.0; }
};

/// Where tenants' spend is kept. Implementations must be thread-safe.
class BudgetStore {
public:
    virtual ~BudgetStore() = default;
    /// Dollars `tenant` spent in (now - window, now].
    virtual double spent(std::string_view tenant, std::chrono::system_clock::time_point now,
                         std::chrono::seconds window) = 0;
    /// Records `usd` spent by `tenant` at `now`.
    virtual void add(std::string_view tenant, double usd, std::chrono::system_clock::time_point now) = 0;
    /// Holds `usd` for `tenant` when its spend in (now - window, now], plus what is held for
    /// its calls in flight, plus `usd` stays within `ceiling`; false (nothing held) otherwise.
    /// The default, for a store without holds, only checks spent().
    virtual bool reserve(std::string_view tenant, double usd, double ceiling,
                         std::chrono::system_clock::time_point now, std::chrono::seconds window) {
        return spent(tenant, now, window) + usd <= ceiling;
    }
    /// Ends a hold of `reserved` made by reserve(): records `actual` spent at `now` (0 for a
    /// call that failed) and lets the hold go.
    virtual void settle(std::string_view tenant, double reserved, double actual,
                        std::chrono::system_clock::time_point now) {
        (void)reserved;
        if (actual > 0.0) add(tenant, actual, now);
    }
};

/// In-process store: per tenant, spend in buckets of a fixed width (by default
/// 1/60 of a 24 h window), so memory stays bounded whatever the request rate.
/// spent() sums the buckets that fall inside the window it is asked about, at
/// that width's resolution.
class InMemoryBudgetStore final : public BudgetStore {
public:
    explicit InMemoryBudgetStore(std::chrono::seconds window = std::chrono::hours{24})
        : width_ms_(std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(window).count() / 60)) {}

    double spent(std::string_view tenant, std::chrono::system_clock::time_point now,
                 std::chrono::seconds window) override {
        std::lock_guard lock(mu_);
        auto it = tenants_.find(std::string(tenant));
        return it == tenants_.end() ? 0.0 : sum(it->second, now, window);
    }
    void add(std::string_view tenant, double usd, std::chrono::system_clock::time_point now) override {
        const std::int64_t k = bucket(now);
        std::lock_guard lock(mu_);
        tenants_[std::string(tenant)].buckets[k] += usd;
    }
    bool reserve(std::string_view tenant, double usd, double ceiling, std::chrono::system_clock::time_point now,
                 std::chrono::seconds window) override {
        std::lock_guard lock(mu_);
        Tenant& t = tenants_[std::string(tenant)];
        if (sum(t, now, window) + t.held + usd > ceiling) return false;
        t.held += usd;
        return true;
    }
    void settle(std::string_view tenant, double reserved, double actual, std::chrono::system_clock::time_point now) override {
        const std::int64_t k = bucket(now);
        std::lock_guard lock(mu_);
        Tenant& t = tenants_[std::string(tenant)];
        t.held = std::max(0.0, t.held - reserved);
        if (actual > 0.0) t.buckets[k] += actual;
    }
    /// Dollars held for `tenant`'s calls in flight.
    double held(std::string_view tenant) {
        std::lock_guard lock(mu_);
        auto it = tenants_.find(std::string(tenant));
        return it == tenants_.end() ? 0.0 : it->second.held;
    }

private:
    static constexpr std::int64_t kKeep = 60;  // buckets kept even when asked about a shorter window
    struct Tenant {
        std::map<std::int64_t, double> buckets{};
        double held = 0.0;
    };
    // Spend in (now - window, now]; drops buckets too old to be asked about. Under mu_.
    double sum(Tenant& t, std::chrono::system_clock::time_point now, std::chrono::seconds window) const {
        const std::int64_t cur = bucket(now);
        const std::int64_t span =
            std::max<std::int64_t>(1, (std::chrono::duration_cast<std::chrono::milliseconds>(window).count() + width_ms_ - 1) / width_ms_);
        auto& b = t.buckets;
        b.erase(b.begin(), b.lower_bound(cur - std::max<std::int64_t>(span, kKeep) + 1));
        double total = 0.0;
        for (auto k = b.lower_bound(cur - span + 1); k != b.end() && k->first <= cur; ++k) total += k->second;
        return total;
    }
    std::int64_t bucket(std::chrono::system_clock::time_point t) const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() / width_ms_;
    }
    const std::int64_t width_ms_;
    std::mutex mu_;
    std::unordered_map<std::string, Tenant> tenants_;
};

/// Per-tenant spending ceilings over a rolling window.
/// @code
/// auto budgets = std::make_shared<Budgets>(std::chrono::hours{24});
/// budgets->limit("acme", 50.0).limit("free-tier-user-17", 0.10);
/// RouterOptions o; o.budgets = budgets;
/// @endcode
class Budgets {
public:
    explicit Budgets(std::chrono::seconds window = std::chrono::hours{24},
                     std::shared_ptr<BudgetStore> store = nullptr)
        : window_(window), store_(store ? std::move(store) : make_default(window)) {
        if (window.count() <= 0)
            throw std::invalid_argument("failover: Budgets: window must be positive, got " +
                                        std::to_string(window.count()) + " s");
    }

    /// Caps `tenant` at `usd` per window. Throws on a negative ceiling.
    Budgets& limit(std::string tenant, double usd) {
        if (!(usd >= 0.0)) throw std::invalid_argument("failover: Budgets::limit: ceiling for '" + tenant + "' must be >= 0");
        std::lock_guard lock(mu_);
        limits_[std::move(tenant)] = usd;
        return *this;
    }
    /// Ceiling for tenants without their own (default: none).
    Budgets& default_limit(std::optional<double> usd) {
        if (usd && !(*usd >= 0.0)) throw std::invalid_argument("failover: Budgets::default_limit must be >= 0");
        std::lock_guard lock(mu_);
        default_ = usd;
        return *this;
    }
    /// The tenant's ceiling, if it has one.
    std::optional<double> ceiling(std::string_view tenant) const {
        std::lock_guard lock(mu_);
        auto it = limits_.find(std::string(tenant));
        if (it != limits_.end()) return it->second;
        return default_;
    }
    /// Dollars the tenant spent in the window ending now.
    double spent(std::string_view tenant, std::chrono::system_clock::time_point now) const {
        return store_->spent(tenant, now, window_);
    }
    /// Records spend.
    void charge(std::string_view tenant, double usd, std::chrono::system_clock::time_point now) const {
        if (usd > 0.0) store_->add(tenant, usd, now);
    }
    /// Whether spending `estimate` more keeps the tenant within its ceiling.
    bool affords(std::string_view tenant, double estimate, std::chrono::system_clock::time_point now) const {
        const auto c = ceiling(tenant);
        if (!c) return true;
        if (estimate <= 0.0) return true;  // free routes stay open at the ceiling
        return spent(tenant, now) + estimate <= *c;
    }
    /// Holds `estimate` for one call of `tenant` if its ceiling allows it with what is spent
    /// and held already: the amount held (0: nothing needed holding, no ceiling or a free
    /// call), or nullopt when the tenant cannot afford it. Every held amount must be passed
    /// to exactly one settle().
    std::optional<double> reserve(std::string_view tenant, double estimate, std::chrono::system_clock::time_point now) const {
        const auto c = ceiling(tenant);
        if (!c || estimate <= 0.0) return 0.0;
        if (!store_->reserve(tenant, estimate, *c, now, window_)) return std::nullopt;
        return estimate;
    }
    /// Ends a call: records `actual`, its real cost (0 when it failed), and lets go of the
    /// `held` amount reserve() returned.
    void settle(std::string_view tenant, double held, double actual, std::chrono::system_clock::time_point now) const {
        if (held > 0.0) store_->settle(tenant, held, std::max(0.0, actual), now);
        else charge(tenant, actual, now);
    }
    std::chrono::seconds window() const noexcept { return window_; }
    /// The store the spend is kept in.
    BudgetStore& store() const noexcept { return *store_; }

private:
    static std::shared_ptr<BudgetStore> make_default(std::chrono::seconds window) {
        return std::make_shared<InMemoryBudgetStore>(window);
    }
    std::chrono::seconds window_;
    std::shared_ptr<BudgetStore> store_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, double> limits_;
    std::optional<double> default_;
};

/// A rough token count of a request: about 4 bytes per token of text plus a few
/// tokens of framing per message and tool. Good enough to keep a request away
/// from a window it clearly overflows; plug in a real tokenizer through
/// RouterOptions::token_counter where it matters.
inline std::int64_t estimate_tokens(const ChatRequest& req) {
    std::size_t bytes = 0;
    std::int64_t framing = 3;
    for (const auto& m : req.messages) {
        bytes += m.content.size();
        for (const auto& c : m.tool_calls)
            bytes += c.name.size() + c.arguments.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).size();
        framing += 4;
    }
    for (const auto& t : req.tools) {
        bytes += t.name.size() + t.description.size() +
                 t.parameters.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).size();
        framing += 8;
    }
    return framing + static_cast<std::int64_t>((bytes + 3) / 4);
}

FAILOVER_END_NAMESPACE
