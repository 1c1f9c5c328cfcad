// SPDX-License-Identifier: MIT
// What a provider adapter must provide. An HTTP adapter translates a
// ChatRequest to its provider's wire format (encode) and the provider's answer
// back (decode); it may refine the generic classification of an error response
// with its provider's own signals (classify). A local adapter (a canned reply,
// a cache) answers without a transport (respond).
#pragma once

#include <concepts>

#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

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

/// Optional hook: refine the generic classification of a non-2xx response
/// (e.g. OpenAI's 429 insufficient_quota is terminal, not a rate limit).
template <class A>
concept ClassifyingAdapter = HttpAdapter<A> && requires(const A& a, const HttpResponse& res, Failure& f) {
    { a.classify(res, f) } -> std::same_as<void>;
};

/// Any adapter a Route accepts.
template <class A>
concept Adapter = HttpAdapter<A> || LocalAdapter<A>;

FAILOVER_END_NAMESPACE
