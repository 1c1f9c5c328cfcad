// SPDX-License-Identifier: MIT
// What a provider adapter must provide. An HTTP adapter translates a
// ChatRequest to its provider's wire format (encode) and the provider's answer
// back (decode); it may refine the generic classification of an error response
// with its provider's own signals (classify). A local adapter (a canned reply,
// a cache) answers without a transport (respond). A streaming adapter also
// encodes a streaming request (encode_stream) and hands out one decoder per
// attempt (stream_decoder) that turns the body into StreamDeltas and, at the
// end, into the same ChatResponse decode() would give.
#pragma once

#include <chrono>
#include <cstddef>
#include <concepts>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "failover/classifier.hpp"
#include "failover/detail/json_depth.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/stream.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// For an adapter reading untrusted JSON: true when no array or object in `text` (outside
/// strings) nests deeper than `limit`, counted without parsing. The check the library's own
/// readers make before text reaches a recursive parser or a parsed value is copied.
inline bool json_depth_within(std::string_view text, std::size_t limit) noexcept {
    return detail::json_depth_within(text, limit);
}

/// encode(request) -> Result<HttpRequest>; decode(request, 2xx response) -> Result<ChatResponse>.
/// decode reports 200-with-a-problem itself: refusals and filters as policy,
/// unparsable bodies as malformed_response.
template <class A>
concept HttpAdapter = requires(const A& a, const ChatRequest& req, const HttpResponse& res) {
    { a.encode(req) } -> std::same_as<Result<HttpRequest>>;
    { a.decode(req, res) } -> std::same_as<Result<ChatResponse>>;
};

/// An adapter that answers in-process, with no transport.
template <class A>
concept LocalAdapter = requires(const A& a, const ChatRequest& req) {
    { a.respond(req) } -> std::same_as<Result<ChatResponse>>;
};

/// Optional hook: refine the generic classification of a non-2xx response with what
/// only this provider says (e.g. Gemini's daily quota is terminal, not a rate limit).
/// It gets the body already parsed; `x-should-retry` is applied after it, by the router.
template <class A>
concept ClassifyingAdapter = HttpAdapter<A> && requires(const A& a, const ErrorReply& e, Failure& f) {
    { a.classify(e, f) } -> std::same_as<void>;
};

/// What an adapter can do with a structured-output schema, from its optional
/// schema_support(const Schema&) hook: send it faithfully, send it with a caveat the
/// operator should hear of once (`note`), or not at all (`sendable` false: the request
/// is refused before any call, and a route declared with that schema fails at construction).
struct SchemaSupport {
    bool sendable = true;
    std::string note{};  ///< "" when the schema goes out exactly as the provider's strictest form
};

/// Optional hook: how a structured-output schema will be sent (see SchemaSupport).
template <class A>
concept SchemaAwareAdapter = requires(const A& a, const Schema& s) {
    { a.schema_support(s) } -> std::same_as<SchemaSupport>;
};

/// Optional hook: why the adapter cannot be used as configured ("" when it can), e.g. a
/// hosted provider without its API key; a Route throws it at construction, naming itself.
template <class A>
concept SelfCheckingAdapter = requires(const A& a) {
    { a.config_problem() } -> std::same_as<std::string>;
};

/// How a route classifies a non-2xx response: the generic rules (status, portable body
/// signals), then `adapter`'s classify hook when it has one, then `x-should-retry`. The
/// body is parsed once. Never throws on account of the response.
/// @code
/// Failure f = failover::classify_response(res, std::chrono::system_clock::now(), my_adapter);
/// @endcode
template <HttpAdapter A>
Failure classify_response(const HttpResponse& res, std::chrono::system_clock::time_point wall_now, const A& adapter) {
    return detail::classify_error(res, wall_now, [&adapter](const ErrorReply& e, Failure& f) {
        if constexpr (ClassifyingAdapter<A>) adapter.classify(e, f);
    });
}

/// What decodes one streamed attempt: feed(bytes, out) appends the deltas the next bytes of the
/// body complete (any split) and returns a Failure when the stream says the attempt failed
/// (after which it accepts no more input); end() is called when the body ended cleanly and
/// returns the whole answer, exactly as decode() would assemble it, or a Failure (a stream
/// without its end is malformed_response). One per attempt, not thread-safe, never throws.
template <class D>
concept StreamDecoder = std::movable<D> && requires(D& d, std::string_view bytes, std::vector<StreamDelta>& out) {
    { d.feed(bytes, out) } -> std::same_as<std::optional<Failure>>;
    { d.end() } -> std::same_as<Result<ChatResponse>>;
};

/// An HTTP adapter that can also stream: encode_stream(request) is the streaming request
/// (server-sent events), stream_decoder(request) a fresh decoder for one attempt.
/// @code
/// auto http = adapter.encode_stream(req);
/// auto decoder = adapter.stream_decoder(req);
/// std::vector<StreamDelta> deltas;
/// if (auto f = decoder.feed(bytes, deltas)) return *f;   // an error event, a policy block...
/// Result<ChatResponse> whole = decoder.end();          // when the body ended
/// @endcode
template <class A>
concept StreamingAdapter = HttpAdapter<A> && requires(const A& a, const ChatRequest& req) {
    { a.encode_stream(req) } -> std::same_as<Result<HttpRequest>>;
    { a.stream_decoder(req) } -> StreamDecoder;
};

/// The decoder type a streaming adapter hands out.
template <StreamingAdapter A>
using stream_decoder_t = decltype(std::declval<const A&>().stream_decoder(std::declval<const ChatRequest&>()));

/// Any adapter a Route accepts.
template <class A>
concept Adapter = HttpAdapter<A> || LocalAdapter<A>;

FAILOVER_END_NAMESPACE
