// SPDX-License-Identifier: MIT
// The streaming driver: the caller's thread walks the chain like the blocking
// driver, with the same RouteVisit and the same decisions, but each exchange
// is a stream whose deltas reach the caller as they are decoded. What differs
// is only what the caller has seen: until the first delta of an attempt is
// delivered, a failure is handled exactly as for a whole answer (retry, fail
// over, policy stop, the first-token limit is the attempt's timeout); once a
// delta is delivered the attempt is committed, and a failure ends the request
// as a mid-stream Failure with the partial text, or (opted in) restarts on the
// next route after a restart event. StreamDelivery decides what is delivered
// at once and what is held until the answer passed the gates. A route whose
// adapter or transport cannot stream answers whole, delivered after its gates.
#pragma once

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "failover/adapter.hpp"
#include "failover/detail/engine/exchange.hpp"
#include "failover/detail/engine/request_state.hpp"
#include "failover/detail/engine/visit.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/stream.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::engine {

/// The caller's side of a stream: what reaches its callback, and when.
class StreamDelivery {
public:
    StreamDelivery(std::function<void(const StreamEvent&)> callback, const StreamOptions& options)
        : callback_(std::move(callback)), hold_(options.hold), keep_text_option_(options.keep_text) {}

    /// An attempt on `route` starts; `structured` when its request asks for a schema.
    void begin(std::string_view route, bool structured) {
        route_ = route;
        structured_ = structured;
        keep_text_ = keep_text_option_ || structured;
        announced_ = false;
        committed_ = false;
        taken_ = false;
        first_content_ = false;
        held_content_ = false;
        held_.clear();
        partial_.clear();
    }

    /// A decoded delta: delivered now, or held until the answer passed the gates.
    /// True when it was content (text or a tool call): progress for the stall clock.
    bool take(StreamDelta d) {
        taken_ = true;
        const bool content = d.kind == StreamDelta::Kind::text || d.kind == StreamDelta::Kind::tool_call;
        first_content_ = first_content_ || content;
        if (holds(d)) {
            held_content_ = held_content_ || content;
            held_.push_back(std::move(d));
        } else {
            deliver(d);
        }
        return content;
    }

    /// The attempt's answer passed the gates: what was held goes out, the finish last
    /// (providers differ in whether usage comes before or after it).
    void release() {
        std::stable_partition(held_.begin(), held_.end(),
                              [](const StreamDelta& d) { return d.kind != StreamDelta::Kind::finish; });
        for (const StreamDelta& d : held_) deliver(d);
        held_.clear();
    }

    /// The attempt's answer is dropped before the caller saw any of it.
    void drop() { held_.clear(); }

    /// The route answered whole (it cannot stream): delivered as deltas, after its gates.
    void whole(const ChatResponse& r) {
        if (!r.text.empty()) deliver(StreamDelta{StreamDelta::Kind::text, r.text, 0, {}, {}, {}, FinishReason::stop});
        for (std::size_t i = 0; i < r.tool_calls.size(); ++i) {
            const ToolCall& c = r.tool_calls[i];
            deliver(StreamDelta{StreamDelta::Kind::tool_call,
                                c.arguments.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), i, c.id,
                                c.name, {}, FinishReason::stop});
        }
        StreamDelta usage;
        usage.kind = StreamDelta::Kind::usage;
        usage.usage = r.usage;
        deliver(usage);
        StreamDelta finish;
        finish.kind = StreamDelta::Kind::finish;
        finish.finish = r.finish_reason;
        deliver(finish);
    }

    /// Tells the caller to discard what it received: `route` failed mid-stream and the next takes over.
    void restart(Reason why) {
        StreamEvent e;
        e.kind = StreamEvent::Kind::restart;
        e.route = route_;
        e.reason = why;
        call(e);
    }

    bool committed() const noexcept { return committed_; }      ///< a delta of this attempt reached the caller
    bool taken() const noexcept { return taken_; }              ///< this attempt decoded a delta (it streamed)
    bool first_content() const noexcept { return first_content_; }
    bool keeps_text() const noexcept { return keep_text_; }     ///< this attempt's text is kept (StreamOptions::keep_text)
    const std::string& partial_text() const noexcept { return partial_; }  ///< text the caller received from this attempt
    bool broken() const noexcept { return broken_; }            ///< the caller's callback threw
    const std::string& broken_why() const noexcept { return broken_why_; }

private:
    bool holds(const StreamDelta& d) const noexcept {
        switch (hold_) {
            case StreamOptions::Hold::all: return true;
            case StreamOptions::Hold::none: return false;
            case StreamOptions::Hold::gated: break;
        }
        // Usage and the finish close the answer: they wait for its verdict. Structured answers
        // and tool calls must pass the gates first, and text after a held call keeps its place.
        if (d.kind == StreamDelta::Kind::usage || d.kind == StreamDelta::Kind::finish) return true;
        return structured_ || d.kind == StreamDelta::Kind::tool_call || held_content_;
    }

    void deliver(const StreamDelta& d) {
        if (!announced_) {
            announced_ = true;
            StreamEvent e;
            e.kind = StreamEvent::Kind::route;
            e.route = route_;
            call(e);
        }
        // Committed once answer content reached the caller (an early usage report does not count).
        committed_ = committed_ || d.kind == StreamDelta::Kind::text || d.kind == StreamDelta::Kind::tool_call;
        if (d.kind == StreamDelta::Kind::text && keep_text_) partial_ += d.text;
        StreamEvent e;
        e.kind = StreamEvent::Kind::delta;
        e.route = route_;
        e.delta = &d;
        call(e);
    }

    void call(const StreamEvent& e) {
        if (broken_ || !callback_) return;
        try {
            callback_(e);
        } catch (const std::exception& ex) {
            broken_ = true;
            broken_why_ = ex.what();
        } catch (...) {
            broken_ = true;
            broken_why_ = "unknown exception";
        }
    }

    std::function<void(const StreamEvent&)> callback_;
    StreamOptions::Hold hold_;
    bool keep_text_option_ = true;
    bool keep_text_ = true;
    std::string route_;
    bool structured_ = false;
    bool announced_ = false;
    bool committed_ = false;
    bool taken_ = false;
    bool first_content_ = false;
    bool held_content_ = false;
    bool broken_ = false;
    std::string broken_why_;
    std::vector<StreamDelta> held_;
    std::string partial_;
};

/// One streamed exchange with route `r`: encode for streaming, hand the bytes to the
/// adapter's decoder as they arrive, deltas to `out`; the assembled answer or a Failure.
/// A route that cannot stream performs a whole exchange instead.
template <class R>
Result<ChatResponse> perform_stream(R& r, const ChatRequest& req, Deadline d, StreamDelivery& out, RequestState& rs) {
    using A = typename R::adapter_type;
    const auto wall_now = [&rs] { return rs.clock.wall_now(); };
    if constexpr (R::is_http && StreamingAdapter<A> && StreamingTransport<typename R::transport_type>) {
        try {
            Result<HttpRequest> http = [&]() -> Result<HttpRequest> { return r.adapter().encode_stream(req); }();
            if (!http) return std::move(http).error();
            StreamLimits limits;
            if constexpr (requires { r.transport().options().max_response_bytes; })
                limits.max_total_bytes = r.transport().options().max_response_bytes;
            limits.keep_text = out.keeps_text();
            auto decoder = r.adapter().stream_decoder(req, limits);
            std::vector<StreamDelta> batch;
            std::optional<Failure> failed;
            const auto t0 = rs.clock.now();
            // A server that ignores the stream request answers one JSON body: read it whole.
            bool whole = false;
            HttpResponse body;
            StreamSpec spec;
            spec.idle = r.options().stream_idle_timeout;
            spec.on_head = [&](int status, const Headers& headers) {
                const std::string* type = find_header(headers, "content-type");
                whole = type == nullptr || type->find("event-stream") == std::string::npos;
                body.status = status;
                if (whole) body.headers = headers;
            };
            spec.on_data = [&](std::string_view bytes) {
                if (whole) {
                    if (bytes.size() > limits.max_total_bytes - std::min(body.body.size(), limits.max_total_bytes)) {
                        failed = Failure::of(Reason::response_too_large, "the response is larger than max_response_bytes");
                        return StreamStep::stop;
                    }
                    body.body.append(bytes);
                    return StreamStep::more;
                }
                batch.clear();
                failed = decoder.feed(bytes, batch);
                bool progress = false;
                for (StreamDelta& delta : batch) {
                    const bool before = out.first_content();
                    progress = out.take(std::move(delta)) || progress;
                    if (!before && out.first_content())
                        rs.emit(FirstTokenEvent{r.name(), rs.req.tenant, rs.clock.now() - t0});
                }
                if (failed || out.broken()) return StreamStep::stop;
                return progress ? StreamStep::progress : StreamStep::more;
            };
            Result<HttpResponse> res = r.transport().stream(*http, d, spec);
            if (out.broken())
                return Failure::of(Reason::cancelled,
                                   "the stream's callback threw: " + classifier::sanitize_text(out.broken_why(), 200));
            if (!res) return std::move(res).error();
            if (!is_success(res->status)) return classify_response(*res, wall_now(), r.adapter());
            if (failed) {
                if (failed->status == 0) failed->status = res->status;
                return std::move(*failed);
            }
            if (whole) {
                Result<ChatResponse> dec = r.adapter().decode(req, body);
                if (!dec && dec.error().status == 0) dec.error().status = res->status;
                return dec;
            }
            Result<ChatResponse> end = decoder.end();
            if (!end && end.error().status == 0) end.error().status = res->status;
            return end;
        } catch (const std::exception& e) {
            return thrown(e);
        } catch (...) {
            return Failure::of(Reason::internal, "unknown exception");
        }
    } else {
        return perform(r, req, d, wall_now);
    }
}

/// One route, streaming: the same visit as the blocking driver, with what the caller saw
/// deciding whether a failure may still be handled invisibly.
template <class R>
Step run_route_stream(R& route, RequestState& rs, StreamDelivery& out) {
    RouteVisit<R> visit(route, rs);
    if (!visit.begin()) return Step::next;
    for (;;) {
        const Order planned = visit.plan();
        if (planned.action == Action::done) return planned.step;
        out.begin(route.name(), static_cast<bool>(visit.request().schema));
        Result<ChatResponse> outcome = perform_stream(route, visit.request(), planned.deadline, out, rs);
        const bool committed = out.committed();
        const bool failed = !outcome;
        const Reason reason = failed ? outcome.error().reason : Reason::internal;
        const Order after = visit.finish(std::move(outcome), committed);
        if (after.step == Step::answered) {
            if (out.taken()) out.release();
            else out.whole(*rs.answer);
            if (out.broken()) {  // the caller's callback threw on the last deltas: the answer is still returned
                rs.sink_errors.fetch_add(1, std::memory_order_relaxed);
            }
            rs.emit(StreamOutcomeEvent{route.name(), rs.req.tenant, "complete", Reason::internal});
            return Step::answered;
        }
        if (!committed) {
            out.drop();
        } else if (failed || after.step != Step::answered) {
            // Past the first delta: the caller owns what it saw.
            if (after.step == Step::stop && rs.last_failure) {
                rs.last_failure->mid_stream = true;
                rs.last_failure->partial_text = out.partial_text();
                rs.emit(StreamOutcomeEvent{route.name(), rs.req.tenant, "failed_mid_stream", reason});
            } else {
                out.restart(reason);
                rs.emit(StreamOutcomeEvent{route.name(), rs.req.tenant, "restarted", reason});
            }
        }
        switch (after.action) {
            case Action::wait_then: rs.sleeper.sleep_for(after.wait, rs.stop); break;
            case Action::again: break;
            case Action::send:
            case Action::done: return after.step;
        }
    }
}

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
