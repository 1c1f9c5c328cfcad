// SPDX-License-Identifier: MIT
// Settings that apply to a whole chain (RouterOptions) and the user quality
// gate type. Kept apart from router.hpp so the engine's internals can name
// them without the routers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "failover/budget.hpp"
#include "failover/clock.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/state.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// A user quality gate: returns a reason to reject an answer, or nullopt to pass it.
/// A rejection is handled like a schema failure: a repair turn, then fail over.
using QualityGate = std::function<std::optional<std::string>(const ChatRequest&, const ChatResponse&)>;

/// Settings that apply to the whole chain.
struct RouterOptions {
    std::shared_ptr<Clock> clock = default_clock();
    std::shared_ptr<Sleeper> sleeper = default_sleeper();
    std::optional<std::uint64_t> seed;                 ///< jitter seed; random when unset
    std::chrono::milliseconds timeout{60000};          ///< whole-chain deadline unless the request sets one
    int max_recovery_waits = 3;                        ///< times an all-skipped chain waits for a route to recover
    std::shared_ptr<Budgets> budgets{};                ///< tenant ceilings; none: no budget checks
    /// Shares every route's breaker, cooldown and retry budget with other instances (e.g. a
    /// RedisStore, stores/redis.hpp); none: each route's state is this process's alone.
    std::shared_ptr<StateStore> state_store{};
    std::function<std::int64_t(const ChatRequest&)> token_counter{};  ///< request size; default estimate_tokens
    std::vector<QualityGate> gates{};                  ///< run on every answer, after the schema and tool-call gates
    bool policy_fallback = false;                      ///< opt in: after a policy block, try only routes at least as strict
    std::function<void(const ChatRequest&, const ChatResponse&)> on_answer{};  ///< e.g. ReplyCache::store
    /// Most requests this router runs at once (route_with_fallback and stream together). One
    /// over the limit waits for a slot (admission_wait) and, when none frees, fails with reason
    /// local_resource without being sent: never a connection failure charged to a route.
    /// Unset: from the process's descriptor limit when the router is built (the soft
    /// RLIMIT_NOFILE less 128, over 3 descriptors a request), so a burst beyond what the
    /// process can open waits instead of failing. 0: no limit.
    std::optional<std::size_t> max_in_flight{};
    /// How long a request over max_in_flight waits for a slot (never past its deadline; a stop
    /// request ends the wait as cancelled). Unset: until its deadline. 0: fails at once.
    std::optional<std::chrono::milliseconds> admission_wait{};
};

/// Settings of a router's active health checks (Router::start_health_checks).
struct HealthCheckOptions {
    /// Time between two rounds; each round probes every route whose breaker is open.
    std::chrono::milliseconds interval{10000};
    /// Time limit of one probe.
    std::chrono::milliseconds timeout{5000};
    /// The probe's one user message; it asks for a single output token.
    std::string prompt = "ping";
};

FAILOVER_END_NAMESPACE
