// SPDX-License-Identifier: MIT
// Local adapters: answers that need no provider. StaticReply is the degraded
// last route of a chain (a canned text, parsed as JSON for structured
// requests); HardError always fails with a given Failure (maintenance mode,
// tests); CachedReply answers from a ReplyCache, a bounded, thread-safe LRU of
// earlier successful answers keyed by a stable 128-bit hash of the request's
// messages, tools and schema. Sampling knobs (temperature, max_tokens, stop)
// and routing context (tenant, data class, region) are not part of the key:
// use one cache per tenant when answers must not cross tenants.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "failover/adapter.hpp"
#include "failover/detail/adapter_util.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/schema.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Always answers with the same text. For structured requests, .json holds
/// the text parsed (when it is JSON); finish reason stop; model "static".
/// @code
/// Route{"canned", StaticReply{R"({"status":"busy"})"}}
/// @endcode
class StaticReply {
public:
    /// The reply every request gets.
    explicit StaticReply(std::string text) : text_(std::move(text)), json_(detail::wire::parse_json(text_)) {}

    /// The canned answer.
    Result<ChatResponse> respond(const ChatRequest& request) const {
        ChatResponse r;
        r.text = text_;
        if (request.schema && !json_.is_discarded()) r.json = json_;
        r.finish_reason = FinishReason::stop;
        r.model = "static";
        return r;
    }

    /// "static".
    std::string_view provider() const noexcept { return "static"; }
    /// "static".
    std::string_view model() const noexcept { return "static"; }
    /// The reply text.
    const std::string& text() const noexcept { return text_; }

private:
    std::string text_;
    nlohmann::json json_;  // discarded when the text is not JSON
};

/// Always fails with the given Failure: a route under maintenance, or a test double.
/// @code
/// Route{"maintenance", HardError{Failure::of(Reason::server_error, "down for maintenance")}}
/// @endcode
class HardError {
public:
    /// The failure every request gets (its kind decides what the router does next).
    explicit HardError(Failure failure) : failure_(std::move(failure)) {}

    /// The configured failure.
    Result<ChatResponse> respond(const ChatRequest&) const { return failure_; }

    /// "static".
    std::string_view provider() const noexcept { return "static"; }
    /// "error".
    std::string_view model() const noexcept { return "error"; }

private:
    Failure failure_;
};

/// Earlier successful answers, keyed by request content. Bounded (least
/// recently used entries go first) and safe to share between threads and routes.
class ReplyCache {
public:
    /// A cache holding at most `capacity` answers; throws std::invalid_argument on 0.
    explicit ReplyCache(std::size_t capacity = 1024) : capacity_(capacity) {
        if (capacity_ == 0) throw std::invalid_argument("failover: ReplyCache: capacity must be positive, got 0");
    }

    /// Remembers `response` as the answer to `request`, replacing an older one.
    /// The route and attempt list are not kept: they describe the original call.
    void store(const ChatRequest& request, const ChatResponse& response) {
        ChatResponse copy = response;
        copy.route.clear();
        copy.attempts.clear();
        std::string k = key(request);
        std::lock_guard<std::mutex> lock(mu_);
        if (auto it = index_.find(k); it != index_.end()) {
            it->second->response = std::move(copy);
            lru_.splice(lru_.begin(), lru_, it->second);
            return;
        }
        lru_.push_front(Entry{k, std::move(copy)});
        index_.emplace(std::move(k), lru_.begin());
        if (lru_.size() > capacity_) {
            index_.erase(lru_.back().key);
            lru_.pop_back();
        }
    }

    /// The answer stored for an equal request, if any (and marks it recently used).
    std::optional<ChatResponse> lookup(const ChatRequest& request) const {
        const std::string k = key(request);
        std::lock_guard<std::mutex> lock(mu_);
        auto it = index_.find(k);
        if (it == index_.end()) return std::nullopt;
        lru_.splice(lru_.begin(), lru_, it->second);
        return it->second->response;
    }

    /// Number of answers held.
    std::size_t size() const {
        std::lock_guard<std::mutex> lock(mu_);
        return lru_.size();
    }
    /// Most answers held at once.
    std::size_t capacity() const noexcept { return capacity_; }
    /// Forgets every answer.
    void clear() {
        std::lock_guard<std::mutex> lock(mu_);
        index_.clear();
        lru_.clear();
    }

    /// The cache key of a request: 32 hex digits, the same in every process and
    /// on every platform (two independent 64-bit hashes of a length-prefixed
    /// serialisation of the messages, tools, schema document and schema name).
    static std::string key(const ChatRequest& request) {
        Hasher h;
        h.number(request.messages.size());
        for (const Message& m : request.messages) {
            h.text(to_string(m.role));
            h.text(m.content);
            h.number(m.tool_calls.size());
            for (const ToolCall& c : m.tool_calls) {
                h.text(c.id);
                h.text(c.name);
                h.text(dump(c.arguments));
            }
            h.text(m.tool_call_id);
            h.text(m.name);
            h.number(m.is_error ? 1 : 0);
        }
        h.number(request.tools.size());
        for (const Tool& t : request.tools) {
            h.text(t.name);
            h.text(t.description);
            h.text(dump(t.parameters));
        }
        h.number(request.schema ? 1 : 0);
        if (request.schema) {
            h.text(dump(request.schema->document()));
            h.text(request.schema_name);
        }
        return h.hex();
    }

private:
    // FNV-1a and a multiply-xorshift mix over the same bytes: 128 bits in all.
    struct Hasher {
        std::uint64_t a = 0xcbf29ce484222325ULL;
        std::uint64_t b = 0x9e3779b97f4a7c15ULL;
        void bytes(std::string_view s) {
            for (char ch : s) {
                const auto c = static_cast<std::uint64_t>(static_cast<unsigned char>(ch));
                a = (a ^ c) * 0x100000001b3ULL;
                b = (b ^ c) * 0xff51afd7ed558ccdULL;
                b ^= b >> 32;
            }
        }
        void number(std::uint64_t n) {
            char buf[8];
            for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((n >> (8 * i)) & 0xFFu);
            bytes(std::string_view(buf, 8));
        }
        void text(std::string_view s) {
            number(s.size());
            bytes(s);
        }
        std::string hex() const {
            static constexpr char digits[] = "0123456789abcdef";
            std::string out;
            for (std::uint64_t v : {a, b})
                for (int shift = 60; shift >= 0; shift -= 4) out += digits[(v >> shift) & 0xFu];
            return out;
        }
    };

    // Sorted-key JSON text; invalid UTF-8 replaced rather than thrown on.
    static std::string dump(const nlohmann::json& j) {
        return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }

    struct Entry {
        std::string key;
        ChatResponse response;
    };

    std::size_t capacity_;
    mutable std::mutex mu_;
    mutable std::list<Entry> lru_;  // most recently used first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

/// Answers from a ReplyCache: the stored answer to an equal request, or a
/// cache_miss, which the router treats as a skip (no attempt, no breaker effect),
/// so the route works in front of the chain as well as at its end.
/// @code
/// auto cache = std::make_shared<ReplyCache>(512);
/// Route{"cache", CachedReply{cache}}
/// @endcode
class CachedReply {
public:
    /// Reads from `cache`; throws std::invalid_argument when it is null.
    explicit CachedReply(std::shared_ptr<ReplyCache> cache) : cache_(std::move(cache)) {
        if (!cache_) throw std::invalid_argument("failover: CachedReply: cache must not be null");
    }

    /// The cached answer, or a cache_miss (a skip).
    Result<ChatResponse> respond(const ChatRequest& request) const {
        if (auto hit = cache_->lookup(request)) return std::move(*hit);
        return Failure::of(Reason::cache_miss, "no cached answer for this request");
    }

    /// "cache".
    std::string_view provider() const noexcept { return "cache"; }
    /// "cache".
    std::string_view model() const noexcept { return "cache"; }
    /// The cache read from (the router may also be told to store into it).
    const std::shared_ptr<ReplyCache>& cache() const noexcept { return cache_; }

private:
    std::shared_ptr<ReplyCache> cache_;
};

static_assert(LocalAdapter<StaticReply>, "StaticReply must satisfy LocalAdapter");
static_assert(LocalAdapter<HardError>, "HardError must satisfy LocalAdapter");
static_assert(LocalAdapter<CachedReply>, "CachedReply must satisfy LocalAdapter");

FAILOVER_END_NAMESPACE
