// SPDX-License-Identifier: MIT
// One exchange with a route, split where a driver waits: prepare() turns the
// request into bytes for the wire (the adapter's encode), interpret() turns what
// came back into an answer or a classified Failure (the transport's failure as
// is; a non-2xx through the one classifier with the adapter's hook; a 2xx
// through the adapter's decode). Both are pure. perform() is the blocking
// composition the blocking driver uses; a local route answers in-process. None
// of these throws: an adapter or transport that throws is an internal failure.
#pragma once

#include <chrono>
#include <exception>
#include <string>
#include <utility>

#include "failover/adapter.hpp"
#include "failover/classifier.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::engine {

/// An exception's text as a Failure (it may quote a URL or a header: cleaned like provider text).
inline Failure thrown(const std::exception& e) {
    return Failure::of(Reason::internal, "exception: " + classifier::sanitize_text(e.what(), 300));
}

/// What came back from the wire, as an answer or a classified Failure.
template <class A>
Result<ChatResponse> interpret(const A& adapter, const ChatRequest& req, Result<HttpResponse>&& res,
                               std::chrono::system_clock::time_point wall_now) {
    try {
        if (!res) return std::move(res).error();
        if (!is_success(res->status)) return classify_response(*res, wall_now, adapter);
        Result<ChatResponse> dec = adapter.decode(req, *res);
        if (!dec && dec.error().status == 0) dec.error().status = res->status;
        return dec;
    } catch (const std::exception& e) {
        return thrown(e);
    } catch (...) {
        return Failure::of(Reason::internal, "unknown exception");
    }
}

/// The request for the wire, or why it cannot be sent.
template <class A>
Result<HttpRequest> prepare(const A& adapter, const ChatRequest& req) {
    try {
        return adapter.encode(req);
    } catch (const std::exception& e) {
        return thrown(e);
    } catch (...) {
        return Failure::of(Reason::internal, "unknown exception");
    }
}

/// One blocking exchange with route `r` within `d`; `wall_now()` reads the wall clock
/// for HTTP-date Retry-After values.
template <class R, class WallNow>
Result<ChatResponse> perform(R& r, const ChatRequest& req, Deadline d, WallNow&& wall_now) {
    using A = typename R::adapter_type;
    try {
        if constexpr (!R::is_http) {
            return r.adapter().respond(req);
        } else {
            Result<HttpRequest> http = prepare(r.adapter(), req);
            if (!http) return std::move(http).error();
            Result<HttpResponse> res = r.transport().send(*http, d);
            return interpret<A>(r.adapter(), req, std::move(res), wall_now());
        }
    } catch (const std::exception& e) {
        return thrown(e);
    } catch (...) {
        return Failure::of(Reason::internal, "unknown exception");
    }
}

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
