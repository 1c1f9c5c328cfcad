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

/// True for a route whose answers can stream: its adapter decodes a stream and its transport
/// (when the blocking driver calls it) hands bytes over as they arrive.
template <class R>
inline constexpr bool streams_answers = [] {
    if constexpr (R::is_http) return StreamingAdapter<typename R::adapter_type>;
    else return false;
}();

/// One streamed exchange with route `r`, whatever does the waiting: encode() the request for
/// streaming, hand spec()'s callbacks to a transport (bytes go to the adapter's decoder as
/// they arrive, deltas to `out`), then end() turns what the transport returned into the
/// assembled answer or a Failure. The object must outlive the transfer.
template <class R>
class StreamExchange {
public:
    StreamExchange(R& r, const ChatRequest& req, StreamDelivery& out, RequestState& rs)
        : r_(r), req_(req), out_(out), rs_(rs) {}
    StreamExchange(const StreamExchange&) = delete;
    StreamExchange& operator=(const StreamExchange&) = delete;

    Result<HttpRequest> encode() {
        Result<HttpRequest> http = r_.adapter().encode_stream(req_);
        if (!http) return http;
        if constexpr (requires { r_.transport().options().max_response_bytes; })
            limits_.max_total_bytes = r_.transport().options().max_response_bytes;
        limits_.keep_text = out_.keeps_text();
        decoder_.emplace(r_.adapter().stream_decoder(req_, limits_));
        t0_ = rs_.clock.now();
        return http;
    }

    StreamSpec spec() {
        StreamSpec spec;
        spec.idle = r_.options().stream_idle_timeout;
        spec.on_head = [this](int status, const Headers& headers) {
            // A server that ignores the stream request answers one JSON body: read it whole.
            const std::string* type = find_header(headers, "content-type");
            whole_ = type == nullptr || type->find("event-stream") == std::string::npos;
            body_.status = status;
            if (whole_) body_.headers = headers;
        };
        spec.on_data = [this](std::string_view bytes) { return data(bytes); };
        return spec;
    }

    /// What the transport returned (the head of a streamed 2xx, or any whole response, or a Failure).
    Result<ChatResponse> end(Result<HttpResponse> res) {
        if (out_.broken())
            return Failure::of(Reason::cancelled,
                               "the stream's callback threw: " + classifier::sanitize_text(out_.broken_why(), 200));
        if (!res) return std::move(res).error();
        if (!is_success(res->status)) return classify_response(*res, rs_.clock.wall_now(), r_.adapter());
        if (failed_) {
            if (failed_->status == 0) failed_->status = res->status;
            return std::move(*failed_);
        }
        if (whole_) {
            Result<ChatResponse> dec = r_.adapter().decode(req_, body_);
            if (!dec && dec.error().status == 0) dec.error().status = res->status;
            return dec;
        }
        Result<ChatResponse> end = decoder_->end();
        if (!end && end.error().status == 0) end.error().status = res->status;
        return end;
    }

private:
    StreamStep data(std::string_view bytes) {
        if (whole_) {
            if (bytes.size() > limits_.max_total_bytes - std::min(body_.body.size(), limits_.max_total_bytes)) {
                failed_ = Failure::of(Reason::response_too_large, "the response is larger than max_response_bytes");
                return StreamStep::stop;
            }
            body_.body.append(bytes);
            return StreamStep::more;
        }
        batch_.clear();
        failed_ = decoder_->feed(bytes, batch_);
        bool progress = false;
        for (StreamDelta& delta : batch_) {
            const bool before = out_.first_content();
            progress = out_.take(std::move(delta)) || progress;
            if (!before && out_.first_content())
                rs_.emit(FirstTokenEvent{r_.name(), rs_.req.tenant, rs_.clock.now() - t0_});
        }
        if (failed_ || out_.broken()) return StreamStep::stop;
        return progress ? StreamStep::progress : StreamStep::more;
    }

    using Decoder = decltype(std::declval<const typename R::adapter_type&>().stream_decoder(
        std::declval<const ChatRequest&>(), std::declval<const StreamLimits&>()));

    R& r_;
    const ChatRequest& req_;
    StreamDelivery& out_;
    RequestState& rs_;
    StreamLimits limits_{};
    std::optional<Decoder> decoder_{};
    std::vector<StreamDelta> batch_{};
    std::optional<Failure> failed_{};
    Clock::time_point t0_{};
    bool whole_ = false;
    HttpResponse body_{};
};

/// One streamed exchange with route `r` on the caller's thread (the blocking streaming
/// driver); a route that cannot stream performs a whole exchange instead.
template <class R>
Result<ChatResponse> perform_stream(R& r, const ChatRequest& req, Deadline d, StreamDelivery& out, RequestState& rs) {
    if constexpr (streams_answers<R> && StreamingTransport<typename R::transport_type>) {
        try {
            StreamExchange<R> x(r, req, out, rs);
            Result<HttpRequest> http = x.encode();
            if (!http) return std::move(http).error();
            return x.end(r.transport().stream(*http, d, x.spec()));
        } catch (const std::exception& e) {
            return thrown(e);
        } catch (...) {
            return Failure::of(Reason::internal, "unknown exception");
        }
    } else {
        return perform(r, req, d, [&rs] { return rs.clock.wall_now(); });
    }
}

/// After a streamed attempt on `route` was finished by its visit (`after`): what the caller
/// is told. An answer releases what was held (or the whole answer, from a route that could
/// not stream); a failure before anything reached the caller drops what was held; a failure
/// after it ends the request as mid-stream with the partial text, or restarts (announced).
inline void after_stream_attempt(const std::string& route, RequestState& rs, StreamDelivery& out, bool committed,
                                 bool failed, Reason reason, const Order& after) {
    if (after.step == Step::answered) {
        if (out.taken()) out.release();
        else out.whole(*rs.answer);
        if (out.broken()) {  // the caller's callback threw on the last deltas: the answer is still returned
            rs.sink_errors.fetch_add(1, std::memory_order_relaxed);
        }
        rs.emit(StreamOutcomeEvent{route, rs.req.tenant, "complete", Reason::internal});
        return;
    }
    if (!committed) {
        out.drop();
    } else if (failed || after.step != Step::answered) {
        // Past the first delta: the caller owns what it saw.
        if (after.step == Step::stop && rs.last_failure) {
            rs.last_failure->mid_stream = true;
            rs.last_failure->partial_text = out.partial_text();
            rs.emit(StreamOutcomeEvent{route, rs.req.tenant, "failed_mid_stream", reason});
        } else {
            out.restart(reason);
            rs.emit(StreamOutcomeEvent{route, rs.req.tenant, "restarted", reason});
        }
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
        after_stream_attempt(route.name(), rs, out, committed, failed, reason, after);
        if (after.step == Step::answered) return Step::answered;
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
