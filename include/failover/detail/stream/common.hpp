// SPDX-License-Identifier: MIT
// What every stream decoder shares (detail/stream/{openai,anthropic,gemini}.hpp):
// the SSE parser with its limits, the failure that ends a stream for good, a
// seed for minted tool-call ids that depends only on the stream's content, the
// Failure of an error the provider sent inside the stream (classified by the
// same code as an error body), and the wording of a stream that ended early.
//
// The decoder contract (one decoder per attempt, not thread-safe, never throws):
//   feed(bytes, out)  appends the deltas the bytes complete (any split gives the
//                     same deltas); returns a Failure when the stream says the
//                     attempt failed, after which every feed and end() return it.
//   end()             the body ended cleanly: the whole answer as the adapter's
//                     decode() assembles it, or a Failure (a stream without its
//                     end is malformed_response "stream ended before its end: ...").
#pragma once

#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "failover/classifier.hpp"
#include "failover/detail/adapter_util.hpp"
#include "failover/failure.hpp"
#include "failover/sse.hpp"
#include "failover/stream.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::stream {

using json = nlohmann::json;

/// A hash of the events read so far (FNV-1a's constants, eight bytes a step, read little
/// endian on every machine): the seed of minted tool-call ids. It depends on the stream's
/// content only, never on how its bytes were split, so the same stream mints the same ids.
class IdSeed {
public:
    void mix(std::string_view bytes) noexcept {
        constexpr std::uint64_t prime = 0x100000001b3ULL;
        std::size_t i = 0;
        for (; i + 8 <= bytes.size(); i += 8) {
            std::uint64_t w = 0;
            std::memcpy(&w, bytes.data() + i, 8);  // one load (the byte loop it replaces was not folded into one)
            if constexpr (std::endian::native == std::endian::big) w = byteswap64(w);
            h_ = (h_ ^ w) * prime;
            h_ ^= h_ >> 31;
        }
        for (; i < bytes.size(); ++i) h_ = (h_ ^ static_cast<unsigned char>(bytes[i])) * prime;
        h_ = (h_ ^ 0xffu) * prime;  // event boundary
    }
    /// The seed as 16 hex digits (what wire::mint_call_id mixes in place of a whole body).
    std::string text() const {
        static constexpr char digits[] = "0123456789abcdef";
        std::string s(16, '0');
        for (std::size_t i = 0; i < 16; ++i) s[i] = digits[(h_ >> (60 - 4 * i)) & 0xFu];
        return s;
    }

private:
    static constexpr std::uint64_t byteswap64(std::uint64_t x) noexcept {
        std::uint64_t r = 0;
        for (int k = 0; k < 8; ++k, x >>= 8) r = (r << 8) | (x & 0xffu);
        return r;
    }

    std::uint64_t h_ = 0xcbf29ce484222325ULL;
};

/// malformed_response "<provider>: stream ended before its end: <why>".
inline Failure ended_early(std::string_view provider, std::string_view why) {
    return wire::malformed(provider, "stream ended before its end: " + std::string(why));
}

/// malformed_response for an event that cannot be read; `data` is quoted, cleaned and short.
inline Failure bad_event(std::string_view provider, std::string_view why, std::string_view data,
                         std::string_view secret) {
    std::string msg(why);
    if (!data.empty()) msg += ": " + wire::clean_message(data, secret, 80);
    return wire::malformed(provider, msg);
}

/// The Failure of an error the provider sent inside a stream, classified exactly as an error
/// body with this status would be (generic rules, then `hook`, the adapter's classify hook).
/// `status` is the one the provider gives that error when it answers with a status; the
/// Failure's own status is 200, what came on the wire, and its message says it came mid-stream.
template <class Hook>
Failure error_event(std::string_view provider, int status, std::string_view body, Hook&& hook) {
    const HttpResponse res{status, {}, std::string(body)};
    Failure f = classify_error(res, std::chrono::system_clock::now(), std::forward<Hook>(hook));
    std::string_view rest = f.message;
    const std::string http = "HTTP " + std::to_string(status);
    if (rest.starts_with(http)) rest.remove_prefix(http.size());
    if (rest.starts_with(": ")) rest.remove_prefix(2);
    f.message = std::string(provider) + ": error event mid-stream: " + std::string(rest);
    f.status = 200;
    return f;
}

/// The parser, the sticky failure and the id seed of one stream.
class Decoder {
public:
    /// The failure that ended the stream, if any.
    const std::optional<Failure>& failure() const noexcept { return failed_; }
    /// Body bytes fed so far.
    std::size_t bytes() const noexcept { return sse_.bytes(); }
    /// Events read by the fast path (detail/stream/scan.hpp) instead of a JSON DOM.
    std::size_t scanned() const noexcept { return scanned_; }
    /// Of those, the events read by comparing their bytes with the event before (ShapeMemo).
    std::size_t remembered() const noexcept { return remembered_; }

protected:
    Decoder(std::string provider, std::string secret, StreamLimits limits)
        : provider_(std::move(provider)), secret_(std::move(secret)), sse_(limits), keep_text_(limits.keep_text) {}

    /// Parses `bytes` and hands each event to `on_event(const SseEventView&) -> std::optional<Failure>`
    /// until one fails. Never throws: an exception from reading an event is a malformed_response.
    template <class OnEvent>
    std::optional<Failure> run(std::string_view bytes, OnEvent&& on_event) {
        if (failed_) return failed_;
        try {
            std::optional<Failure> parser = sse_.feed(bytes, [&](const SseEventView& e) {
                seed_.mix(e.type);
                seed_.mix(e.data);
                if (std::optional<Failure> f = on_event(e)) {
                    failed_ = std::move(f);
                    return false;
                }
                return true;
            });
            if (!failed_ && parser) failed_ = std::move(parser);
        } catch (const std::exception& e) {
            failed_ = wire::malformed(provider_, std::string("unexpected stream structure (") + e.what() + ")");
        } catch (...) {
            failed_ = wire::malformed(provider_, "unexpected stream structure");
        }
        return failed_;
    }

    /// Runs the body of end(): a failure it returns is kept (the decoder stays failed), and an
    /// exception (memory) becomes a malformed_response instead of leaving end().
    template <class Body>
    Result<ChatResponse> finish(Body&& body) {
        if (failed_) return *failed_;
        try {
            Result<ChatResponse> r = body();
            if (!r) failed_ = r.error();
            return r;
        } catch (const std::exception& e) {
            return fail(wire::malformed(provider_, std::string("unexpected stream structure (") + e.what() + ")"));
        } catch (...) {
            return fail(wire::malformed(provider_, "unexpected stream structure"));
        }
    }

    /// Records a failure of end() so the decoder stays failed.
    Failure fail(Failure f) {
        failed_ = f;
        return f;
    }

    /// Parses an event's data as JSON; discarded when it is not JSON (or nests too deep).
    static json parse(std::string_view data) noexcept { return wire::parse_json(data); }

    std::string provider_;
    std::string secret_;
    SseParser sse_;
    bool keep_text_ = true;  // StreamLimits::keep_text
    IdSeed seed_{};
    std::size_t scanned_ = 0;
    std::size_t remembered_ = 0;
    std::optional<Failure> failed_{};
};

}  // namespace detail::stream
FAILOVER_END_NAMESPACE
