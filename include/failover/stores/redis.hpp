// SPDX-License-Identifier: MIT
// RedisStore: route state and tenant budgets shared by every instance that
// points at one Redis, over hiredis (link hiredis: the CMake target
// failover::redis does it). An optional component: nothing else includes it.
//
// The hot path never waits for Redis. Each instance keeps its own objects (the
// breaker, the cooldown, the retry budget, a view of each tenant's spend) and
// one background thread per store carries changes both ways:
//  - a transition this instance makes (a breaker opening or closing, a
//    cooldown) wakes the thread, which writes it with an atomic script and
//    publishes it on the channel `<prefix>:events`; every sibling's thread is
//    subscribed and applies it at once (loopback: well under a millisecond);
//  - every sync_interval (default 50 ms) the thread sends each route's new
//    window counts and retry-budget tokens and reads the shared state back (one
//    script per route, pipelined), and settles each tenant's holds and spend.
// The shared breaker window is judged by the script: instances' failures add up
// to one failure rate. A sibling that adopts an opening adds up to open_jitter
// of the remaining time, so its recovery probe comes after the opener's and the
// opener's verdict (reopen or close) usually reaches it first.
//
// Tenant budgets are reserve-then-settle against the local view of the tenant's
// shared spend and the holds of other instances. A tenant first seen costs one
// round trip (bounded by command_timeout); after that, holds and spend travel
// in the background, so the instances together overshoot a ceiling by at most
// the estimates of the calls admitted within about two sync intervals
// elsewhere, plus the estimates' errors. Holds of an instance that dies expire
// after hold_ttl.
//
// Redis down, slow or restarted: commands time out after command_timeout, the
// store emits StoreEvent{"disconnected"} and works on local state alone (no
// request fails or waits because of Redis), reconnects with backoff, and on
// reconnecting re-publishes what its own breakers and cooldowns say and re-seeds
// tenants' spend that Redis lost (StoreEvent{"connected"}).
//
// TLS (RedisOptions::tls) is OpenSSL's, through detail/redis_tls.hpp, so it works
// with any hiredis (Debian 12's 0.14 has none of its own).
#pragma once

#include <hiredis/hiredis.h>
#include <poll.h>
#include <unistd.h>
#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <charconv>
#include <cmath>
#include <deque>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "failover/breaker.hpp"
#include "failover/budget.hpp"
#include "failover/detail/redis_tls.hpp"
#include "failover/env.hpp"
#include "failover/metrics.hpp"
#include "failover/retry.hpp"
#include "failover/state.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Where the Redis is and how to share through it.
struct RedisOptions {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::string unix_socket{};                     ///< a socket path instead of host:port
    std::string username{};                        ///< ACL user for AUTH (empty: the default user)
    Secret password{};                             ///< AUTH password, e.g. env("REDIS_PASSWORD") (empty: no AUTH); never reported
    bool tls = false;                              ///< TLS to Redis (OpenSSL; any hiredis), verified against tls_ca_file
    std::string tls_ca_file{};                     ///< PEM CA bundle to verify the server with (empty: the system's)
    std::string tls_server_name{};                 ///< name (or IP) the certificate must carry (empty: host)
    int db = 0;                                    ///< SELECT
    std::string prefix = "failover";               ///< first part of every key and of the channel
    std::string instance{};                        ///< this instance's id in holds and messages; random when empty
    std::chrono::milliseconds sync_interval{50};   ///< background refresh period
    std::chrono::milliseconds command_timeout{100};
    std::chrono::milliseconds connect_timeout{200};
    std::chrono::milliseconds reconnect_min{100};  ///< first wait after a failure, doubling up to reconnect_max
    std::chrono::milliseconds reconnect_max{5000};
    std::chrono::milliseconds hold_ttl{30000};     ///< a dead instance's budget holds are forgotten after this
    std::shared_ptr<MetricsSink> sink{};           ///< StoreEvents, and BreakerEvents adopted from siblings

    /// Throws std::invalid_argument naming the first bad field.
    void validate() const {
        auto bad = [](const char* field, const std::string& v) {
            throw std::invalid_argument(std::string("failover: RedisOptions.") + field + " invalid: " + v);
        };
        if (unix_socket.empty() && host.empty()) bad("host", "empty (and no unix_socket)");
        if (unix_socket.empty() && (port < 1 || port > 65535)) bad("port", std::to_string(port));
        if (db < 0) bad("db", std::to_string(db));
        if (prefix.empty()) bad("prefix", "empty");
        if (prefix.find('|') != std::string::npos) bad("prefix", prefix + " (no '|': it separates the fields of a message)");
        if (instance.find('|') != std::string::npos) bad("instance", instance + " (no '|': it separates the fields of a message)");
        if (sync_interval.count() < 1) bad("sync_interval", std::to_string(sync_interval.count()) + " ms");
        if (command_timeout.count() < 1) bad("command_timeout", std::to_string(command_timeout.count()) + " ms");
        if (connect_timeout.count() < 1) bad("connect_timeout", std::to_string(connect_timeout.count()) + " ms");
        if (reconnect_min.count() < 1 || reconnect_max < reconnect_min)
            bad("reconnect_min/reconnect_max", std::to_string(reconnect_min.count()) + " / " +
                                                   std::to_string(reconnect_max.count()) + " ms");
        if (hold_ttl < 4 * sync_interval) bad("hold_ttl", std::to_string(hold_ttl.count()) + " ms (at least 4 sync intervals)");
        if (tls && !unix_socket.empty()) bad("tls", "TLS over a unix_socket (use host and port)");
    }
};

namespace detail::redis {

using wall = std::chrono::system_clock;

inline std::int64_t wall_ms(wall::time_point t = wall::now()) noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// The route's window and state in one round trip. KEYS: breaker hash, window hash, retry
// tokens, cooldown. ARGV: now_ms, window_s, minimum_calls, failure_rate, open_base_ms,
// open_multiplier, open_max_ms, jitter draw in [-1, 1], open_jitter, token delta, token
// capacity (-1: no budget), instance, channel, route, round, then (second, calls, failures)...
// KEYS[5] holds the last round of this instance applied here: a round sent again (its reply
// was lost: Redis may or may not have run it) adds its counts and tokens once. A key of the
// wrong type (not ours) is replaced, a value that is not a number counts as none.
// Returns {state, until_ms, opens, version, cooldown_until_ms, tokens, origin of the state}.
inline constexpr const char* kSyncScript = R"lua(
local function own(k, ty) local t = redis.call('TYPE', k)['ok'] if t ~= 'none' and t ~= ty then redis.call('DEL', k) end end
local function n(v) return tonumber(v) or 0 end
local b, w, t, c, q = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
own(b, 'hash') own(w, 'hash') own(t, 'string') own(c, 'string') own(q, 'string')
local fresh = tonumber(ARGV[15]) > n(redis.call('GET', q))
if fresh then redis.call('SET', q, ARGV[15], 'PX', 3600000) end
local now = tonumber(ARGV[1])
local wsec = tonumber(ARGV[2])
local st = redis.call('HGET', b, 'state') or 'closed'
if st == 'closed' and fresh and #ARGV > 15 then
  for i = 16, #ARGV, 3 do
    redis.call('HINCRBY', w, 'c' .. ARGV[i], tonumber(ARGV[i + 1]))
    redis.call('HINCRBY', w, 'f' .. ARGV[i], tonumber(ARGV[i + 2]))
  end
  redis.call('PEXPIRE', w, (wsec + 1) * 1000)
  local calls, fails = 0, 0
  local cur = math.floor(now / 1000)
  local all = redis.call('HGETALL', w)
  for i = 1, #all, 2 do
    local f = all[i]
    local sec = tonumber(string.sub(f, 2))
    if sec == nil or sec <= cur - wsec then
      redis.call('HDEL', w, f)
    elseif string.sub(f, 1, 1) == 'c' then
      calls = calls + n(all[i + 1])
    else
      fails = fails + n(all[i + 1])
    end
  end
  if calls >= tonumber(ARGV[3]) and fails >= tonumber(ARGV[4]) * calls then
    local opens = math.min(64, math.max(0, n(redis.call('HGET', b, 'opens'))))
    local ms = math.min(tonumber(ARGV[5]) * tonumber(ARGV[6]) ^ opens, tonumber(ARGV[7]))
    ms = math.floor(ms * (1 + tonumber(ARGV[9]) * tonumber(ARGV[8])))
    local v = redis.call('HINCRBY', b, 'version', 1)
    local origin = 'window:' .. ARGV[12]
    redis.call('HSET', b, 'state', 'open', 'until', now + ms, 'opens', opens + 1, 'origin', origin)
    redis.call('DEL', w)
    redis.call('PUBLISH', ARGV[13], 'b|' .. v .. '|open|' .. (now + ms) .. '|' .. (opens + 1) .. '|' .. origin .. '|' .. ARGV[14])
  end
end
local tokens = -1
local cap = tonumber(ARGV[11])
if cap >= 0 then
  tokens = (tonumber(redis.call('GET', t)) or cap) + (fresh and tonumber(ARGV[10]) or 0)
  tokens = math.max(0, math.min(cap, tokens))
  redis.call('SET', t, tokens, 'PX', 86400000)
end
local h = redis.call('HMGET', b, 'state', 'until', 'opens', 'version', 'origin')
return {h[1] or 'closed', n(h[2]), n(h[3]), n(h[4]), n(redis.call('GET', c)), tokens, h[5] or ''}
)lua";

// A transition this instance's breaker made. KEYS: breaker hash, window hash. ARGV: state
// (open or closed), until_ms, opens, instance, channel, route, the newest shared version the
// instance had seen. An opening never shortens a later one; a close (after a probe) closes
// only an opening the instance had seen, never a newer one a sibling made meanwhile.
// Returns {state, until_ms, opens, version}.
inline constexpr const char* kTransitionScript = R"lua(
local function n(v) return tonumber(v) or 0 end
local b, w = KEYS[1], KEYS[2]
local t = redis.call('TYPE', b)['ok'] if t ~= 'none' and t ~= 'hash' then redis.call('DEL', b) end
t = redis.call('TYPE', w)['ok'] if t ~= 'none' and t ~= 'hash' then redis.call('DEL', w) end
local st = redis.call('HGET', b, 'state') or 'closed'
local untl = n(redis.call('HGET', b, 'until'))
local opens = n(redis.call('HGET', b, 'opens'))
local v = n(redis.call('HGET', b, 'version'))
local changed = false
if ARGV[1] == 'open' then
  if not (st == 'open' and untl >= tonumber(ARGV[2])) then
    st, untl, opens, changed = 'open', tonumber(ARGV[2]), math.max(opens, tonumber(ARGV[3])), true
  end
elseif ARGV[1] == 'closed' and st ~= 'closed' and n(ARGV[7]) >= v then
  st, untl, opens, changed = 'closed', 0, 0, true
end
if changed then
  v = redis.call('HINCRBY', b, 'version', 1)
  redis.call('HSET', b, 'state', st, 'until', untl, 'opens', opens, 'origin', ARGV[4])
  redis.call('DEL', w)
  redis.call('PUBLISH', ARGV[5], 'b|' .. v .. '|' .. st .. '|' .. untl .. '|' .. opens .. '|' .. ARGV[4] .. '|' .. ARGV[6])
end
return {st, untl, opens, v}
)lua";

// A cooldown. KEYS: cooldown key. ARGV: until_ms, now_ms, instance, channel, route.
inline constexpr const char* kCooldownScript = R"lua(
local t = redis.call('TYPE', KEYS[1])['ok'] if t ~= 'none' and t ~= 'string' then redis.call('DEL', KEYS[1]) end
local cur = tonumber(redis.call('GET', KEYS[1])) or 0
local u = tonumber(ARGV[1])
if u > cur and u > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], u, 'PX', u - tonumber(ARGV[2]))
  redis.call('PUBLISH', ARGV[4], 'c|0|cooldown|' .. u .. '|0|' .. ARGV[3] .. '|' .. ARGV[5])
  return u
end
return cur
)lua";

// A tenant's spend and holds. KEYS: spend hash (bucket -> dollars), holds hash (instance ->
// "dollars:expires_ms"), this instance's last round applied (as in the sync script: spend
// sent again is added once). ARGV: now_ms, window_ms, bucket_ms, instance, my_held, spend
// to add, seed (spend to restore when the hash is gone, e.g. after a restart; -1: none),
// hold_ttl_ms, round. Foreign types are replaced and malformed entries dropped, before
// anything is written. Returns {spent in the window, held by others} as strings.
inline constexpr const char* kBudgetScript = R"lua(
local function own(k, ty) local t = redis.call('TYPE', k)['ok'] if t ~= 'none' and t ~= ty then redis.call('DEL', k) end end
local s, h, q = KEYS[1], KEYS[2], KEYS[3]
own(s, 'hash') own(h, 'hash') own(q, 'string')
local fresh = tonumber(ARGV[9]) > (tonumber(redis.call('GET', q)) or 0)
if fresh then redis.call('SET', q, ARGV[9], 'PX', 3600000) end
local now, win, width = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cur = math.floor(now / width)
local seed = tonumber(ARGV[7])
if seed > 0 and redis.call('EXISTS', s) == 0 then
  redis.call('HSET', s, tostring(cur), tostring(seed))
end
local add = tonumber(ARGV[6])
if add > 0 and fresh then redis.call('HINCRBYFLOAT', s, tostring(cur), ARGV[6]) end
redis.call('PEXPIRE', s, win + width)
local span = math.max(1, math.ceil(win / width))
local spent = 0
local all = redis.call('HGETALL', s)
for i = 1, #all, 2 do
  local k, v = tonumber(all[i]), tonumber(all[i + 1])
  if k == nil or v == nil or k <= cur - span then
    redis.call('HDEL', s, all[i])
  elseif k <= cur then
    spent = spent + v
  end
end
local mine = tonumber(ARGV[5])
if mine > 0 then
  redis.call('HSET', h, ARGV[4], ARGV[5] .. ':' .. (now + tonumber(ARGV[8])))
else
  redis.call('HDEL', h, ARGV[4])
end
local others = 0
local holds = redis.call('HGETALL', h)
for i = 1, #holds, 2 do
  if holds[i] ~= ARGV[4] then
    local sep = string.find(holds[i + 1], ':', 1, true)
    local amount = sep and tonumber(string.sub(holds[i + 1], 1, sep - 1))
    local expires = sep and tonumber(string.sub(holds[i + 1], sep + 1))
    if not amount or not expires or expires < now then redis.call('HDEL', h, holds[i]) else others = others + amount end
  end
end
redis.call('PEXPIRE', h, tonumber(ARGV[8]))
return {tostring(spent), tostring(others)}
)lua";

struct ReplyFree {
    void operator()(redisReply* r) const noexcept {
        if (r) freeReplyObject(r);
    }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;
struct ContextFree {
    void operator()(redisContext* c) const noexcept {
        if (c) redisFree(c);
    }
};
using Context = std::unique_ptr<redisContext, ContextFree>;

inline timeval to_timeval(std::chrono::milliseconds d) noexcept {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(d.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((d.count() % 1000) * 1000);
    return tv;
}

inline std::int64_t as_int(const redisReply* r) noexcept {
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING) return std::strtoll(r->str, nullptr, 10);
    return 0;
}
inline double as_double(const redisReply* r) noexcept {
    if (r && r->type == REDIS_REPLY_STRING) return std::strtod(r->str, nullptr);
    return static_cast<double>(as_int(r));
}
inline std::string as_string(const redisReply* r) {
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)) return std::string(r->str, r->len);
    return {};
}

// One command as an argv, for pipelining.
struct Command {
    std::vector<std::string> args;
};

// A shared breaker state as read from Redis or a message.
struct Shared {
    BreakerState state = BreakerState::closed;
    std::int64_t until_ms = 0;
    int opens = 0;
    std::int64_t version = 0;
};

inline BreakerState parse_state(std::string_view s) noexcept {
    return s == "open" ? BreakerState::open : BreakerState::closed;
}

// Wakes the store's thread; outlives the store (a route may), and does nothing after it.
class Waker {
public:
    explicit Waker(int fd) noexcept : fd_(fd) {}
    void wake() noexcept {
        std::lock_guard lock(mu_);
        if (fd_ < 0) return;
        const char c = 1;
        [[maybe_unused]] auto n = ::write(fd_, &c, 1);
    }
    void close() noexcept {
        std::lock_guard lock(mu_);
        fd_ = -1;
    }

private:
    std::mutex mu_{};
    int fd_;
};

// The store's side of one route: what its hooks collected since the last sync.
class RouteLink final : public RouteStateSync {
public:
    RouteLink(const RouteBinding& b, std::shared_ptr<Waker> waker)
        : id(b.id), breaker(b.breaker), budget(b.retry_budget), adopt_cooldown(b.adopt_cooldown), waker_(std::move(waker)) {}

    void breaker_changed(BreakerState to, std::chrono::milliseconds open_for, int opens) noexcept override {
        if (to != BreakerState::open && to != BreakerState::closed) return;  // half-open and operator states stay local
        {
            std::lock_guard lock(mu_);
            pending_transition_ = Shared{to, to == BreakerState::open ? wall_ms() + open_for.count() : 0, opens, 0};
        }
        waker_->wake();
    }
    void breaker_counted(bool failure) noexcept override {
        const std::int64_t sec = wall_ms() / 1000;
        std::lock_guard lock(mu_);
        if (counts_.empty() || counts_.back().second != sec) {
            if (counts_.size() >= 64) return;  // the sync thread is away (Redis down): the window is local anyway
            counts_.push_back({sec, 0, 0});
        }
        ++counts_.back().calls;
        if (failure) ++counts_.back().failures;
    }
    void retry_tokens_changed(int delta) noexcept override { tokens_.fetch_add(delta, std::memory_order_relaxed); }
    void cooled_down(std::chrono::milliseconds duration) noexcept override {
        const std::int64_t until = wall_ms() + duration.count();
        std::int64_t cur = cooldown_.load(std::memory_order_relaxed);
        while (cur < until && !cooldown_.compare_exchange_weak(cur, until, std::memory_order_relaxed)) {
        }
        waker_->wake();
    }
    void unbind() noexcept override {
        std::lock_guard lock(bind_mu);
        breaker = nullptr;
        budget = nullptr;
        adopt_cooldown = nullptr;
    }

    struct Count {
        std::int64_t second = 0;
        std::int64_t calls = 0;
        std::int64_t failures = 0;
    };
    struct Pending {
        std::vector<Count> counts;
        std::optional<Shared> transition;
        int tokens = 0;
        std::int64_t cooldown_ms = 0;
    };
    Pending take() {
        Pending p;
        {
            std::lock_guard lock(mu_);
            p.counts.swap(counts_);
            p.transition = std::exchange(pending_transition_, std::nullopt);
        }
        p.tokens = tokens_.exchange(0, std::memory_order_relaxed);
        p.cooldown_ms = cooldown_.exchange(0, std::memory_order_relaxed);
        return p;
    }
    int pending_tokens() const noexcept { return tokens_.load(std::memory_order_relaxed); }

    const std::string id;
    std::mutex bind_mu{};  // taken before the breaker's own lock; the hooks never take it
    CircuitBreaker* breaker;
    RetryBudget* budget;
    std::function<void(std::chrono::steady_clock::time_point)> adopt_cooldown;
    std::int64_t seen_version = 0;    // the newest shared version applied (sync thread only)
    std::int64_t seen_cooldown = 0;   // the latest cooldown applied (sync thread only)

private:
    std::shared_ptr<Waker> waker_;
    std::mutex mu_{};  // the hooks' lock: taken under the breaker's lock, never around it
    std::vector<Count> counts_{};
    std::optional<Shared> pending_transition_{};
    std::atomic<int> tokens_{0};
    std::atomic<std::int64_t> cooldown_{0};
};

// This instance's view of one tenant.
struct TenantView {
    double shared_spent = 0.0;   // the whole fleet's spend in the window, at the last sync
    double others_held = 0.0;    // other instances' holds, at the last sync
    double my_held = 0.0;        // this instance's holds now
    double unsent = 0.0;         // spend recorded here and not yet sent
    double sending = 0.0;        // spend in the sync under way
    bool known = false;          // synced at least once
    std::chrono::steady_clock::time_point synced{};  // when shared_spent and others_held were read
    std::chrono::seconds window{};
    std::chrono::steady_clock::time_point used{};
};

}  // namespace detail::redis

/// Route state and tenant budgets shared through Redis. Put one in RouterOptions::state_store
/// and, for budgets, in Budgets' store, on every instance:
/// @code
/// auto redis = std::make_shared<RedisStore>(RedisOptions{.host = "10.0.0.5", .password = env("REDIS_PASSWORD")});
/// RouterOptions o;
/// o.state_store = redis;
/// o.budgets = std::make_shared<Budgets>(std::chrono::hours{24}, redis);
/// @endcode
class RedisStore final : public StateStore, public BudgetStore {
public:
    /// Starts the background thread, which connects (now, and again whenever the connection is
    /// lost). Throws std::invalid_argument on bad options; never because Redis is unreachable.
    explicit RedisStore(RedisOptions o) : opts_(std::move(o)) {
        opts_.validate();
        if (opts_.instance.empty()) {
            std::random_device rd;
            char buf[17];
            std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
            opts_.instance = buf;
        }
        channel_ = opts_.prefix + ":events";
        int fds[2];
        if (::pipe(fds) != 0) throw std::runtime_error("failover: RedisStore: pipe() failed");
        wake_rd_ = fds[0];
        wake_wr_ = fds[1];
        ::fcntl(wake_rd_, F_SETFL, O_NONBLOCK);
        ::fcntl(wake_wr_, F_SETFL, O_NONBLOCK);
        waker_ = std::make_shared<detail::redis::Waker>(wake_wr_);
        thread_ = std::thread([this] { run(); });
    }
    ~RedisStore() override {
        stop_.store(true, std::memory_order_release);
        wake();
        if (thread_.joinable()) thread_.join();
        waker_->close();  // routes that outlive the store stop waking it
        ::close(wake_rd_);
        ::close(wake_wr_);
    }
    RedisStore(const RedisStore&) = delete;
    RedisStore& operator=(const RedisStore&) = delete;

    // -- StateStore

    std::shared_ptr<RouteStateSync> bind(const RouteBinding& b) override {
        if (!b.breaker || !b.retry_budget) throw std::invalid_argument("failover: RedisStore::bind: route '" + b.id + "' has no state");
        auto link = std::make_shared<detail::redis::RouteLink>(b, waker_);
        {
            std::lock_guard lock(routes_mu_);
            routes_.push_back(link);
        }
        wake();
        return link;
    }

    // -- BudgetStore

    double spent(std::string_view tenant, std::chrono::system_clock::time_point, std::chrono::seconds window) override {
        std::lock_guard lock(tenants_mu_);
        auto& v = view(tenant, window);
        return (current(v) ? v.shared_spent : 0.0) + v.unsent + v.sending;
    }
    void add(std::string_view tenant, double usd, std::chrono::system_clock::time_point) override {
        if (!(usd > 0.0)) return;
        std::lock_guard lock(tenants_mu_);
        auto& v = tenants_[std::string(tenant)];
        v.unsent += usd;
        v.used = std::chrono::steady_clock::now();
        if (v.window.count() == 0) v.window = default_window_;
    }
    bool reserve(std::string_view tenant, double usd, double ceiling, std::chrono::system_clock::time_point,
                 std::chrono::seconds window) override {
        std::lock_guard lock(tenants_mu_);
        auto& v = view(tenant, window);
        const double fleet = current(v) ? v.shared_spent + v.others_held : 0.0;
        if (fleet + v.unsent + v.sending + v.my_held + usd > ceiling) return false;
        v.my_held += usd;
        return true;
    }
    void settle(std::string_view tenant, double reserved, double actual, std::chrono::system_clock::time_point) override {
        std::lock_guard lock(tenants_mu_);
        auto& v = tenants_[std::string(tenant)];
        v.my_held = std::max(0.0, v.my_held - reserved);
        if (actual > 0.0) v.unsent += actual;
        v.used = std::chrono::steady_clock::now();
        if (v.window.count() == 0) v.window = default_window_;
    }

    // -- inspection

    /// True while the store reaches Redis.
    bool connected() const noexcept { return connected_.load(std::memory_order_acquire); }
    /// Waits up to `d` for a connection (for start-up and tests); true when connected.
    bool wait_connected(std::chrono::milliseconds d) const {
        std::unique_lock lock(state_mu_);
        return state_cv_.wait_for(lock, d, [&] { return connected(); });
    }
    /// Waits up to `d` for one full sync round that starts after this call (every route and
    /// tenant written and read back); true when one completed.
    bool wait_synced(std::chrono::milliseconds d) {
        std::unique_lock lock(state_mu_);
        const std::uint64_t target = rounds_ + 2;
        lock.unlock();
        wake();
        lock.lock();
        return state_cv_.wait_for(lock, d, [&] { return rounds_ >= target; });
    }
    /// This instance's id in Redis.
    const std::string& instance() const noexcept { return opts_.instance; }
    const RedisOptions& options() const noexcept { return opts_; }
    /// Counters since construction.
    struct Stats {
        std::uint64_t rounds = 0;          ///< sync rounds completed
        std::uint64_t messages = 0;        ///< messages heard from siblings
        std::uint64_t adopted = 0;         ///< breaker or cooldown changes applied from siblings
        std::uint64_t disconnects = 0;     ///< connections lost or refused
        std::uint64_t resent = 0;          ///< rounds sent again after their reply was lost
        std::uint64_t script_errors = 0;   ///< script calls Redis refused (reported as StoreEvent "error")
    };
    Stats stats() const {
        std::lock_guard lock(state_mu_);
        Stats s = stats_;
        s.rounds = rounds_;
        return s;
    }

private:
    using Link = detail::redis::RouteLink;
    // One round's commands, kept to be sent again when their replies were lost.
    struct Batch {
        std::vector<detail::redis::Command> cmds;
        std::vector<std::pair<std::string, double>> tenants;  // spend each tenant's command carries
    };

    void wake() noexcept { waker_->wake(); }

    std::string key(std::string_view kind, std::string_view route) const {
        // The route in a hash tag, so one route's keys share a cluster slot.
        return opts_.prefix + ":route:{" + std::string(route) + "}:" + std::string(kind);
    }
    std::string tenant_key(std::string_view kind, std::string_view tenant) const {
        return opts_.prefix + ":tenant:{" + std::string(tenant) + "}:" + std::string(kind);
    }

    void emit(const Event& e) noexcept {
        if (!opts_.sink) return;
        try {
            opts_.sink->record(e);
        } catch (...) {  // a broken sink never breaks the store
        }
    }

    // The local view of a tenant. A tenant seen for the first time is read by the background
    // thread at once (woken here); no request ever waits for Redis. Under tenants_mu_.
    detail::redis::TenantView& view(std::string_view tenant, std::chrono::seconds window) {
        auto& v = tenants_[std::string(tenant)];
        v.used = std::chrono::steady_clock::now();
        v.window = window;
        default_window_ = window;
        if (!v.known) wake();
        return v;
    }
    // Whether the fleet's spend and holds as last read still count: not once they are older
    // than the window (Redis away that long), so a tenant is never refused for good on a view
    // that cannot age.
    static bool current(const detail::redis::TenantView& v) {
        return v.known && std::chrono::steady_clock::now() - v.synced <= v.window;
    }

    detail::redis::Command budget_command(std::string_view tenant, std::chrono::seconds window, double my_held,
                                          double add, double seed, std::int64_t round) const {
        const std::int64_t win = std::chrono::duration_cast<std::chrono::milliseconds>(window).count();
        const std::int64_t width = std::max<std::int64_t>(1000, win / 60);
        auto num = [](double d) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "%.17g", d);
            return std::string(buf);
        };
        return {{"EVALSHA", sha_budget_, "3", tenant_key("spend", tenant), tenant_key("held", tenant),
                 tenant_key("round:" + opts_.instance, tenant), std::to_string(detail::redis::wall_ms()),
                 std::to_string(win), std::to_string(width), opts_.instance, num(my_held), num(add), num(seed),
                 std::to_string(opts_.hold_ttl.count()), std::to_string(round)}};
    }

    // Sends the commands in one pipeline and reads every reply; an empty result means the
    // connection failed (and is dropped). Under cmd_mu_.
    std::vector<detail::redis::Reply> pipeline(const std::vector<detail::redis::Command>& cmds) {
        std::vector<detail::redis::Reply> out;
        if (!cmd_) {
            fail("not connected");
            return out;
        }
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& c : cmds) {
            argv.clear();
            lens.clear();
            for (const auto& a : c.args) {
                argv.push_back(a.data());
                lens.push_back(a.size());
            }
            if (redisAppendCommandArgv(cmd_.get(), static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK) {
                fail("write failed");
                return {};
            }
        }
        for (std::size_t i = 0; i < cmds.size(); ++i) {
            void* r = nullptr;
            if (redisGetReply(cmd_.get(), &r) != REDIS_OK || !r) {
                fail(cmd_ && cmd_->errstr[0] ? cmd_->errstr : "no reply");
                return {};
            }
            out.emplace_back(static_cast<redisReply*>(r));
        }
        return out;
    }

    // The command connection failed (under cmd_mu_, on any thread): requests go on with local
    // state; the background thread reports it and reconnects.
    void fail(std::string why) {
        cmd_.reset();
        cmd_tls_.reset();
        set_error(std::move(why));
        connected_.store(false, std::memory_order_release);
        wake();
    }
    void set_error(std::string why) {
        std::lock_guard lock(state_mu_);
        last_error_ = std::move(why);
    }
    std::string last_error() const {
        std::lock_guard lock(state_mu_);
        return last_error_;
    }

    // A connection, AUTHed and on its db; with TLS, `tunnel` carries it (destroy it after the context).
    detail::redis::Context open_context(std::string& err, std::unique_ptr<detail::redis::TlsPipe>& tunnel) {
        using namespace detail::redis;
        const timeval tv = to_timeval(opts_.connect_timeout);
        Context c;
        if (opts_.tls) {
            tunnel = std::make_unique<TlsPipe>(opts_.host, opts_.port, opts_.tls_ca_file, opts_.tls_server_name,
                                               opts_.connect_timeout, err);
            const int fd = tunnel->release_fd();
            if (fd < 0) return nullptr;
            c.reset(redisConnectFd(fd));
        } else {
            c.reset(opts_.unix_socket.empty() ? redisConnectWithTimeout(opts_.host.c_str(), opts_.port, tv)
                                              : redisConnectUnixWithTimeout(opts_.unix_socket.c_str(), tv));
        }
        if (!c || c->err) {
            err = c ? std::string("connect: ") + c->errstr : "connect: out of memory";
            return nullptr;
        }
        // Setting up (AUTH, SELECT, loading the scripts, SUBSCRIBE) is part of connecting; a
        // command afterwards has command_timeout (set in connect()).
        redisSetTimeout(c.get(), to_timeval(opts_.connect_timeout));
        if (opts_.unix_socket.empty() && !opts_.tls) redisEnableKeepAlive(c.get());
        auto simple = [&](std::vector<std::string> args, const char* what) {
            std::vector<const char*> argv;
            std::vector<std::size_t> lens;
            for (const auto& a : args) {
                argv.push_back(a.data());
                lens.push_back(a.size());
            }
            Reply r(static_cast<redisReply*>(redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
            if (!r) {
                err = std::string(what) + ": " + c->errstr;
                return false;
            }
            if (r->type == REDIS_REPLY_ERROR) {
                // Redis's own words (e.g. WRONGPASS ...); they never repeat the password.
                err = std::string(what) + ": " + std::string(r->str, r->len);
                return false;
            }
            return true;
        };
        if (!opts_.password.empty()) {
            std::vector<std::string> a{"AUTH"};
            if (!opts_.username.empty()) a.push_back(opts_.username);
            a.push_back(opts_.password.value());
            if (!simple(std::move(a), "AUTH")) return nullptr;
        }
        if (opts_.db != 0 && !simple({"SELECT", std::to_string(opts_.db)}, "SELECT")) return nullptr;
        return c;
    }

    bool connect() {
        using namespace detail::redis;
        std::string err;
        std::unique_ptr<TlsPipe> cmd_tls, sub_tls;
        Context cmd = open_context(err, cmd_tls);
        Context sub = cmd ? open_context(err, sub_tls) : nullptr;
        if (!cmd || !sub) {
            set_error(err);
            return false;
        }
        auto load = [&](const char* script, std::string& sha) {
            Reply r(static_cast<redisReply*>(redisCommand(cmd.get(), "SCRIPT LOAD %s", script)));
            if (!r || r->type != REDIS_REPLY_STRING) {
                err = r && r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "SCRIPT LOAD failed";
                return false;
            }
            sha.assign(r->str, r->len);
            return true;
        };
        if (!load(kSyncScript, sha_sync_) || !load(kTransitionScript, sha_transition_) ||
            !load(kCooldownScript, sha_cooldown_) || !load(kBudgetScript, sha_budget_)) {
            set_error(err);
            return false;
        }
        Reply r(static_cast<redisReply*>(redisCommand(sub.get(), "SUBSCRIBE %b", channel_.data(), channel_.size())));
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 || as_string(r->element[0]) != "subscribe") {
            set_error(!r ? std::string("SUBSCRIBE: ") + sub->errstr
                         : "SUBSCRIBE refused: " + (r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "unexpected reply"));
            return false;
        }
        redisSetTimeout(cmd.get(), to_timeval(opts_.command_timeout));
        sub_ = std::move(sub);
        sub_tls_ = std::move(sub_tls);
        // Redis may have restarted empty, or missed what happened while it was away: every
        // link starts over from the next shared version, and tells what it knows.
        for (auto& l : links()) {
            l->seen_version = 0;
            std::lock_guard lock(l->bind_mu);
            if (l->breaker && l->breaker->state() == BreakerState::open) {
                const auto left = l->breaker->open_until() - std::chrono::steady_clock::now();
                if (left > std::chrono::milliseconds{0})
                    l->breaker_changed(BreakerState::open, std::chrono::ceil<std::chrono::milliseconds>(left), l->breaker->opens());
            }
        }
        reseed_ = true;
        emit(StoreEvent{"redis", "connected", {}, {}});  // before the flag: whoever waits for it sees the event too
        {
            // The connection and the flag together: a fail() on another thread cannot fall
            // between them and leave the store "connected" to nothing.
            std::lock_guard lock(cmd_mu_);
            cmd_ = std::move(cmd);
            cmd_tls_ = std::move(cmd_tls);
            std::lock_guard st(state_mu_);
            connected_.store(true, std::memory_order_release);
        }
        state_cv_.notify_all();
        return true;
    }

    std::vector<std::shared_ptr<Link>> links() {
        std::lock_guard lock(routes_mu_);
        // Routes that went away are dropped here.
        std::erase_if(routes_, [](const std::shared_ptr<Link>& l) {
            std::lock_guard b(l->bind_mu);
            return l->breaker == nullptr;
        });
        return routes_;
    }

    // The background thread: connect, then sync on every wake-up and every interval, and
    // apply what siblings publish as it arrives.
    void run() {
        detail::redis::TlsPipe::block_sigpipe();  // every Redis write is on this thread: a lost peer is EPIPE
        auto backoff = opts_.reconnect_min;
        auto next_sync = std::chrono::steady_clock::now();
        bool up = false;             // the last thing reported was "connected"
        bool down_reported = false;  // the last thing reported was "disconnected"
        auto report_down = [&] {
            if (down_reported) return;
            up = false;
            down_reported = true;
            {
                std::lock_guard lock(state_mu_);
                ++stats_.disconnects;
            }
            const std::string why = last_error();
            emit(StoreEvent{"redis", "disconnected", {}, why});
        };
        while (!stop_.load(std::memory_order_acquire)) {
            if (!connected()) {
                if (up) report_down();
                sub_.reset();
                sub_tls_.reset();
                if (!connect()) {
                    report_down();
                    wait_for(backoff);
                    backoff = std::min(opts_.reconnect_max, backoff * 2);
                    continue;
                }
                backoff = opts_.reconnect_min;
                up = true;
                down_reported = false;
                next_sync = std::chrono::steady_clock::now();
            }
            const auto now = std::chrono::steady_clock::now();
            const auto wait = std::max(std::chrono::steady_clock::duration{0}, next_sync - now);
            pollfd p[2] = {{wake_rd_, POLLIN, 0}, {sub_ ? sub_->fd : -1, POLLIN, 0}};
            const int ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
            const int n = ::poll(p, 2, ms);
            if (stop_.load(std::memory_order_acquire)) break;
            bool woken = false;
            if (n > 0 && (p[0].revents & POLLIN)) {
                char buf[256];
                while (::read(wake_rd_, buf, sizeof buf) > 0) {
                }
                woken = true;
            }
            if (n > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) read_messages();
            if (!connected()) continue;
            if (woken || std::chrono::steady_clock::now() >= next_sync) {
                sync_round();
                next_sync = std::chrono::steady_clock::now() + opts_.sync_interval;
            }
        }
        if (connected()) sync_round();  // what this instance spent and saw last is not lost at exit
    }

    void wait_for(std::chrono::milliseconds d) {
        pollfd p{wake_rd_, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(d.count()));
        char buf[256];
        while (::read(wake_rd_, buf, sizeof buf) > 0) {
        }
    }

    void read_messages() {
        using namespace detail::redis;
        if (redisBufferRead(sub_.get()) != REDIS_OK) {
            std::string why = sub_->errstr[0] ? std::string("subscription: ") + sub_->errstr : "subscription lost";
            std::lock_guard lock(cmd_mu_);
            fail(std::move(why));
            return;
        }
        for (;;) {
            void* raw = nullptr;
            if (redisGetReplyFromReader(sub_.get(), &raw) != REDIS_OK) {
                std::lock_guard lock(cmd_mu_);
                fail("subscription: bad reply");
                return;
            }
            if (!raw) break;
            Reply r(static_cast<redisReply*>(raw));
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || as_string(r->element[0]) != "message") continue;
            on_message(as_string(r->element[2]));
        }
    }

    // "b|version|state|until_ms|opens|origin|route" or "c|0|cooldown|until_ms|0|origin|route"; an
// origin is an instance id, or "window:<id>" when the shared window opened the breaker during
// that instance's sync.
    void on_message(std::string_view m) {
        std::string_view f[7];
        for (int i = 0; i < 6; ++i) {
            const auto bar = m.find('|');
            if (bar == std::string_view::npos) return;
            f[i] = m.substr(0, bar);
            m.remove_prefix(bar + 1);
        }
        f[6] = m;
        if (f[5] == opts_.instance) return;  // our own, already applied
        {
            std::lock_guard lock(state_mu_);
            ++stats_.messages;
        }
        // Anyone who can publish on the channel writes these: numbers in full, or nothing.
        auto number = [](std::string_view t, std::int64_t& out) {
            const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
            return ec == std::errc{} && end == t.data() + t.size();
        };
        detail::redis::Shared s;
        std::int64_t opens = 0;
        if (!number(f[1], s.version) || !number(f[3], s.until_ms) || !number(f[4], opens)) return;
        s.opens = static_cast<int>(std::clamp<std::int64_t>(opens, 0, kMaxOpens));
        for (auto& l : links()) {
            if (l->id != f[6]) continue;
            if (f[0] == "c") apply_cooldown(*l, s.until_ms);
            else {
                s.state = detail::redis::parse_state(f[2]);
                apply(*l, s, f[5] != "window:" + opts_.instance);
            }
        }
    }

    // Applies a shared breaker state newer than what the link has seen.
    void apply(Link& l, const detail::redis::Shared& s, bool from_sibling) {
        if (s.version <= l.seen_version) return;
        l.seen_version = s.version;
        std::optional<BreakerTransition> t;
        {
            std::lock_guard lock(l.bind_mu);
            if (!l.breaker) return;
            const auto now = std::chrono::steady_clock::now();
            if (s.state == BreakerState::open) {
                if (s.until_ms <= detail::redis::wall_ms()) return;
                // No longer than this breaker would open itself (a value in Redis is not trusted).
                const auto& bo = l.breaker->options();
                const double cap = static_cast<double>(bo.open_max.count()) * (1.0 + bo.open_jitter);
                const double left = std::min(static_cast<double>(s.until_ms) - static_cast<double>(detail::redis::wall_ms()), cap);
                // A sibling's opening: probe a little after the opener would.
                const double spread = from_sibling ? bo.open_jitter * uniform() : 0.0;
                const auto d = std::chrono::milliseconds{static_cast<std::int64_t>(std::min(left * (1.0 + spread), cap))};
                t = l.breaker->adopt(BreakerState::open, now, d, std::clamp(s.opens, 0, kMaxOpens));
            } else {
                t = l.breaker->adopt(BreakerState::closed, now, {}, 0);
            }
        }
        if (t) {
            {
                std::lock_guard lock(state_mu_);
                ++stats_.adopted;
            }
            emit(BreakerEvent{l.id, *t});
            emit(StoreEvent{"redis", "adopted_breaker", l.id, {}});
        }
    }

    void apply_cooldown(Link& l, std::int64_t until_ms) {
        if (until_ms <= l.seen_cooldown) return;
        if (until_ms <= detail::redis::wall_ms()) return;
        const std::int64_t left = std::min<std::int64_t>(until_ms - detail::redis::wall_ms(), kMaxCooldownMs);
        l.seen_cooldown = until_ms;
        {
            std::lock_guard lock(l.bind_mu);
            if (!l.adopt_cooldown) return;
            l.adopt_cooldown(std::chrono::steady_clock::now() + std::chrono::milliseconds{left});
        }
        {
            std::lock_guard lock(state_mu_);
            ++stats_.adopted;
        }
        emit(StoreEvent{"redis", "adopted_cooldown", l.id, {}});
    }

    double uniform() {
        std::uniform_real_distribution<double> u(0.0, 1.0);
        return u(rng_);
    }

    // One round: each route's transition, cooldown, window counts and tokens; each tenant's
    // holds and spend. All in one pipeline, after any earlier round whose replies were lost:
    // Redis may have run those commands or not (a timeout says nothing), so they go again
    // unchanged, with their round number, and the scripts apply a round's counts, tokens and
    // spend once.
    void sync_round() {
        using namespace detail::redis;
        struct RouteWork {
            std::shared_ptr<Link> link;
            Link::Pending pending;
            int capacity = -1;
            bool has_transition = false;
            bool has_cooldown = false;
        };
        std::vector<RouteWork> rw;
        Batch batch;
        auto& cmds = batch.cmds;
        const std::int64_t now = wall_ms();
        const std::string round = std::to_string(++round_);
        for (auto& l : links()) {
            RouteWork w{l, l->take(), -1, false, false};
            BreakerOptions bo;
            {
                std::lock_guard lock(l->bind_mu);
                if (!l->breaker) continue;
                bo = l->breaker->options();
                if (l->budget && l->budget->options().enabled) w.capacity = l->budget->options().capacity;
            }
            if (w.pending.transition) {
                const auto& t = *w.pending.transition;
                cmds.push_back({{"EVALSHA", sha_transition_, "2", key("breaker", l->id), key("window", l->id),
                                 std::string(to_string(t.state)), std::to_string(t.until_ms), std::to_string(t.opens),
                                 opts_.instance, channel_, l->id, std::to_string(l->seen_version)}});
                w.has_transition = true;
            }
            if (w.pending.cooldown_ms > now) {
                cmds.push_back({{"EVALSHA", sha_cooldown_, "1", key("cooldown", l->id), std::to_string(w.pending.cooldown_ms),
                                 std::to_string(now), opts_.instance, channel_, l->id}});
                w.has_cooldown = true;
            }
            Command c{{"EVALSHA", sha_sync_, "5", key("breaker", l->id), key("window", l->id), key("retry", l->id),
                       key("cooldown", l->id), key("round:" + opts_.instance, l->id), std::to_string(now),
                       std::to_string(bo.window.count()), std::to_string(bo.minimum_calls), num(bo.failure_rate),
                       std::to_string(bo.open_base.count()), num(bo.open_multiplier), std::to_string(bo.open_max.count()),
                       num(2.0 * uniform() - 1.0), num(bo.open_jitter), std::to_string(w.pending.tokens),
                       std::to_string(w.capacity), opts_.instance, channel_, l->id, round}};
            for (const auto& k : w.pending.counts) {
                c.args.push_back(std::to_string(k.second));
                c.args.push_back(std::to_string(k.calls));
                c.args.push_back(std::to_string(k.failures));
            }
            cmds.push_back(std::move(c));
            rw.push_back(std::move(w));
        }
        {
            std::lock_guard lock(tenants_mu_);
            const auto cutoff = std::chrono::steady_clock::now() - std::chrono::minutes{2};
            for (auto it = tenants_.begin(); it != tenants_.end();) {
                auto& v = it->second;
                if (v.used < cutoff && v.my_held == 0.0 && v.unsent == 0.0 && v.sending == 0.0) {
                    it = tenants_.erase(it);
                    continue;
                }
                if (v.window.count() > 0) {
                    v.sending += v.unsent;
                    const double add = std::exchange(v.unsent, 0.0);
                    cmds.push_back(budget_command(it->first, v.window, v.my_held, add,
                                                  reseed_ && v.known ? v.shared_spent : -1.0, round_));
                    batch.tenants.push_back({it->first, add});
                }
                ++it;
            }
        }
        std::vector<Command> all;
        for (const auto& b : unacked_) all.insert(all.end(), b.cmds.begin(), b.cmds.end());
        const std::size_t skip = all.size();
        all.insert(all.end(), cmds.begin(), cmds.end());
        std::vector<Reply> replies;
        {
            std::lock_guard lock(cmd_mu_);
            replies = pipeline(all);
            // Errors that say this connection cannot serve the scripts (scripts flushed, a
            // replica, a server loading or cut off from its primary): reconnect, which loads
            // them again, and send the round again.
            for (const auto& r : replies) {
                if (!r || r->type != REDIS_REPLY_ERROR) continue;
                const std::string e(r->str, std::min<std::size_t>(r->len, 200));
                for (const char* code : {"NOSCRIPT", "READONLY", "LOADING", "MASTERDOWN", "NOAUTH", "NOPERM"}) {
                    if (e.rfind(code, 0) == 0) {
                        fail(e);
                        replies.clear();
                        break;
                    }
                }
                if (replies.empty()) break;
            }
        }
        if (replies.size() != all.size()) {
            // Nothing is known of this round: it goes again, as it is, after reconnecting.
            unacked_.push_back(std::move(batch));
            {
                std::lock_guard lock(state_mu_);
                ++stats_.resent;
            }
            if (unacked_.size() > kMaxUnacked) {  // Redis away for long: the oldest is given up (local state is whole)
                forget(unacked_.front());
                unacked_.pop_front();
            }
            return;
        }
        for (auto& b : unacked_) forget(b);
        unacked_.clear();
        reseed_ = false;
        // A script Redis refused (a value it could not repair, say): not sent again (what it
        // wrote before the error stays, and its round is spent), and said once per round.
        for (const auto& r : replies) {
            if (r->type != REDIS_REPLY_ERROR) continue;
            {
                std::lock_guard lock(state_mu_);
                ++stats_.script_errors;
            }
            emit(StoreEvent{"redis", "error", {}, std::string(r->str, std::min<std::size_t>(r->len, 200))});
            break;
        }
        std::size_t i = skip;
        for (auto& w : rw) {
            if (w.has_transition) {
                // What we sent, as Redis now has it: ours (just note the version), or a later
                // opening by a sibling that ours did not shorten or close (apply it).
                if (auto sh = shared_of(replies[i].get())) {
                    if (sh->state == w.pending.transition->state) w.link->seen_version = std::max(w.link->seen_version, sh->version);
                    else apply(*w.link, *sh, true);
                }
                ++i;
            }
            if (w.has_cooldown) ++i;
            const redisReply* r = replies[i++].get();
            if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 7) {
                if (auto sh = shared_of(r)) {
                    // Our own transition is already ours; an opening the shared window caused
                    // is applied here too (first: no added delay when the flush was ours).
                    const std::string origin = as_string(r->element[6]);
                    if (origin == opts_.instance) w.link->seen_version = std::max(w.link->seen_version, sh->version);
                    else apply(*w.link, *sh, origin != "window:" + opts_.instance);
                }
                apply_cooldown(*w.link, as_int(r->element[4]));
                const std::int64_t tokens = as_int(r->element[5]);
                if (tokens >= 0) {
                    std::lock_guard lock(w.link->bind_mu);
                    if (w.link->budget)
                        w.link->budget->adopt_tokens(static_cast<int>(std::min<std::int64_t>(tokens, 1 << 20)) +
                                                     w.link->pending_tokens());
                }
            }
        }
        {
            std::lock_guard lock(tenants_mu_);
            for (auto& t : batch.tenants) {
                const redisReply* r = replies[i++].get();
                auto it = tenants_.find(t.first);
                if (it == tenants_.end()) continue;
                auto& v = it->second;
                v.sending = std::max(0.0, v.sending - t.second);
                if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
                    v.shared_spent = std::max(0.0, as_double(r->element[0]));
                    v.others_held = std::max(0.0, as_double(r->element[1]));
                    v.known = true;
                    v.synced = std::chrono::steady_clock::now();
                }
            }
        }
        {
            std::lock_guard lock(state_mu_);
            ++rounds_;
        }
        state_cv_.notify_all();
    }

    // A round that went through (or was given up): its spend is no longer in flight.
    void forget(const Batch& b) {
        std::lock_guard lock(tenants_mu_);
        for (const auto& t : b.tenants) {
            auto it = tenants_.find(t.first);
            if (it != tenants_.end()) it->second.sending = std::max(0.0, it->second.sending - t.second);
        }
    }

    static std::optional<detail::redis::Shared> shared_of(const redisReply* r) {
        using namespace detail::redis;
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 4) return std::nullopt;
        Shared s;
        s.state = parse_state(as_string(r->element[0]));
        s.until_ms = as_int(r->element[1]);
        s.opens = static_cast<int>(as_int(r->element[2]));
        s.version = as_int(r->element[3]);
        return s;
    }

    static std::string num(double d) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g", d);
        return buf;
    }

    static constexpr int kMaxOpens = 64;                            // a shared opens count, capped
    static constexpr std::int64_t kMaxCooldownMs = 24 * 3600 * 1000;  // a shared cooldown, capped
    static constexpr std::size_t kMaxUnacked = 16;                  // rounds kept to send again

    RedisOptions opts_;
    std::string channel_{};
    int wake_rd_ = -1;
    int wake_wr_ = -1;
    std::shared_ptr<detail::redis::Waker> waker_{};
    std::atomic<bool> stop_{false};
    std::atomic<bool> connected_{false};
    bool reseed_ = false;         // background thread only: the next round restores lost spend
    // Round numbers only grow, across restarts of an instance that keeps its id too (they
    // start at the wall clock in microseconds; a double holds them exactly in Lua).
    std::int64_t round_ = detail::redis::wall_ms() * 1000;  // background thread only
    std::deque<Batch> unacked_{};                                // background thread only
    std::string last_error_{};    // under state_mu_
    std::string sha_sync_{}, sha_transition_{}, sha_cooldown_{}, sha_budget_{};
    std::mt19937_64 rng_{std::random_device{}()};

    std::mutex cmd_mu_{};  // the command connection (the background thread and first-seen tenant reads)
    detail::redis::Context cmd_{};
    std::unique_ptr<detail::redis::TlsPipe> cmd_tls_{};  // with TLS: what carries cmd_ (under cmd_mu_)
    detail::redis::Context sub_{};  // the subscription: background thread only
    std::unique_ptr<detail::redis::TlsPipe> sub_tls_{};

    std::mutex routes_mu_{};
    std::vector<std::shared_ptr<Link>> routes_{};

    std::mutex tenants_mu_{};
    std::unordered_map<std::string, detail::redis::TenantView> tenants_{};
    std::chrono::seconds default_window_{std::chrono::hours{24}};  // for tenants only ever charged (no ceiling)

    mutable std::mutex state_mu_{};
    mutable std::condition_variable state_cv_{};
    std::uint64_t rounds_ = 0;
    Stats stats_{};

    std::thread thread_{};
};

FAILOVER_END_NAMESPACE
