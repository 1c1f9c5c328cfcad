// SPDX-License-Identifier: MIT
// Recording doubles for unit tests: a transport that plays a script and counts
// calls, a minimal adapter for a made-up wire format, and a sink that keeps
// copies of every event. All thread-safe.
#pragma once

#include <deque>
#include <optional>
#include <sstream>
#include <string_view>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <failover/failover.hpp>

namespace failover_test {

using namespace failover;

/// An HTTP response with a JSON body.
inline HttpResponse http(int status, std::string body = "{}", Headers headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    r.headers.emplace_back("Content-Type", "application/json");
    return r;
}
/// The fake wire format's success body.
inline HttpResponse ok_body(const std::string& text) { return http(200, nlohmann::json{{"text", text}}.dump()); }

/// Plays scripted outcomes in order, then `fallback` forever. Optionally moves a
/// ManualClock forward by `latency` on each call, as a real call would take time.
/// stream() plays the same script: a step may call the StreamSpec's on_data itself
/// (see streamed()); a plain response's body is then handed over in one piece.
class ScriptedTransport {
public:
    using Step = std::function<Result<HttpResponse>(const HttpRequest&, Deadline)>;
    using StreamStepFn = std::function<Result<HttpResponse>(const HttpRequest&, Deadline, const StreamSpec&)>;

    /// A streamed step: hands `chunks` to on_data in order, then ends with `end` (a
    /// Failure for a stream cut or stalled half-way; a 200 for a clean end).
    static StreamStepFn streamed(std::vector<std::string> chunks, Result<HttpResponse> end = HttpResponse{200, {}, {}}) {
        return [chunks = std::move(chunks), end = std::move(end)](const HttpRequest&, Deadline d, const StreamSpec& spec)
                   -> Result<HttpResponse> {
            if (spec.on_head) spec.on_head(200, Headers{{"Content-Type", "text/event-stream"}});
            for (const auto& c : chunks) {
                if (d.stop.stop_requested()) return Failure::of(Reason::cancelled, "cancelled by the caller");
                if (spec.on_data(c) == StreamStep::stop) return HttpResponse{200, {}, {}};
            }
            return end;
        };
    }
    ScriptedTransport& then_stream(StreamStepFn s) {
        std::lock_guard l(mu_);
        streams_.push_back(std::move(s));
        return *this;
    }

    Result<HttpResponse> stream(const HttpRequest& req, Deadline d, const StreamSpec& spec) {
        StreamStepFn step;
        {
            std::lock_guard l(mu_);
            if (!streams_.empty()) {
                step = std::move(streams_.front());
                streams_.pop_front();
            }
        }
        if (step) {
            std::lock_guard l(mu_);
            ++calls_;
            requests_.push_back(req);
            deadlines_.push_back(d);
        }
        if (step) return step(req, d, spec);
        Result<HttpResponse> r = send(req, d);
        if (r && r->status >= 200 && r->status < 300) {
            if (spec.on_head) spec.on_head(r->status, r->headers);
            spec.on_data(r->body);
            r->body.clear();
        }
        return r;
    }

    explicit ScriptedTransport(ManualClock* clock = nullptr, std::chrono::milliseconds latency = {})
        : clock_(clock), latency_(latency) {}

    ScriptedTransport& then(Result<HttpResponse> r) {
        std::lock_guard l(mu_);
        script_.push_back([r](const HttpRequest&, Deadline) { return r; });
        return *this;
    }
    ScriptedTransport& then(Step s) {
        std::lock_guard l(mu_);
        script_.push_back(std::move(s));
        return *this;
    }
    ScriptedTransport& otherwise(Result<HttpResponse> r) {
        std::lock_guard l(mu_);
        fallback_ = [r](const HttpRequest&, Deadline) { return r; };
        return *this;
    }
    ScriptedTransport& otherwise(Step s) {
        std::lock_guard l(mu_);
        fallback_ = std::move(s);
        return *this;
    }

    Result<HttpResponse> send(const HttpRequest& req, Deadline d) {
        Step step;
        {
            std::lock_guard l(mu_);
            ++calls_;
            requests_.push_back(req);
            deadlines_.push_back(d);
            if (!script_.empty()) {
                step = std::move(script_.front());
                script_.pop_front();
            } else {
                step = fallback_;
            }
        }
        if (clock_ && latency_.count() > 0) clock_->advance(latency_);
        return step(req, d);
    }

    int calls() const {
        std::lock_guard l(mu_);
        return calls_;
    }
    std::vector<HttpRequest> requests() const {
        std::lock_guard l(mu_);
        return requests_;
    }
    std::vector<Deadline> deadlines() const {
        std::lock_guard l(mu_);
        return deadlines_;
    }

private:
    mutable std::mutex mu_;
    std::deque<StreamStepFn> streams_;
    std::deque<Step> script_;
    Step fallback_ = [](const HttpRequest&, Deadline) { return Result<HttpResponse>(ok_body("ok")); };
    ManualClock* clock_;
    std::chrono::milliseconds latency_;
    int calls_ = 0;
    std::vector<HttpRequest> requests_;
    std::vector<Deadline> deadlines_;
};

/// A made-up wire format: the request body is {"messages":[...]}; a 200 body
/// is {"text": "..."} or {"refusal": "..."} (a policy block on HTTP 200).
struct FakeAdapter {
    std::string url = "http://fake.invalid/v1/chat";

    Result<HttpRequest> encode(const ChatRequest& req) const {
        nlohmann::json msgs = nlohmann::json::array();
        for (const auto& m : req.messages) msgs.push_back({{"role", to_string(m.role)}, {"content", m.content}});
        HttpRequest h;
        h.url = url;
        h.headers = {{"Content-Type", "application/json"}};
        h.body = nlohmann::json{{"messages", msgs}}.dump();
        return h;
    }
    Result<ChatResponse> decode(const ChatRequest&, const HttpResponse& res) const {
        auto j = nlohmann::json::parse(res.body, nullptr, false);
        if (j.is_discarded() || !j.is_object()) return Failure::of(Reason::malformed_response, "body is not JSON");
        if (j.contains("refusal")) {
            Failure f = Failure::of(Reason::refusal, j["refusal"].is_string() ? j["refusal"].get<std::string>() : "");
            f.category = "test_category";
            return f;
        }
        if (!j.contains("text") || !j["text"].is_string())
            return Failure::of(Reason::malformed_response, "no text in body");
        ChatResponse r;
        r.text = j["text"].get<std::string>();
        r.usage = {10, 5};
        return r;
    }
    std::string_view provider() const { return "fake"; }
    std::string_view model() const { return "fake-1"; }
};

/// The fake wire format, streamed: one line per event: "t <text>" a text piece,
/// "c <index> <name> <arguments piece>" a tool-call piece, "u <in> <out>" usage, "f"
/// the finish (required: a stream without it ended early), "e <reason>" an error event.
struct FakeStreamDecoder {
    std::string buffer{}, text{};
    std::vector<ToolCall> calls{};
    std::vector<std::string> args{};
    Usage usage{};
    bool finished = false;

    std::optional<Failure> feed(std::string_view bytes, std::vector<StreamDelta>& out) {
        buffer.append(bytes);
        for (auto nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
            const std::string line = buffer.substr(0, nl);
            buffer.erase(0, nl + 1);
            if (line.rfind("t ", 0) == 0) {
                text += line.substr(2);
                out.push_back(StreamDelta{StreamDelta::Kind::text, line.substr(2), 0, {}, {}, {}, FinishReason::stop});
            } else if (line.rfind("c ", 0) == 0) {
                std::istringstream in(line.substr(2));
                std::size_t index = 0;
                std::string name, piece;
                in >> index >> name;
                std::getline(in >> std::ws, piece);
                StreamDelta d{StreamDelta::Kind::tool_call, piece, index, {}, {}, {}, FinishReason::stop};
                if (index >= calls.size()) {
                    calls.resize(index + 1);
                    args.resize(index + 1);
                    calls[index].name = name;
                    calls[index].id = "call_" + std::to_string(index);
                    d.id = calls[index].id;
                    d.name = name;
                }
                args[index] += piece;
                out.push_back(d);
            } else if (line.rfind("u ", 0) == 0) {
                std::istringstream in(line.substr(2));
                in >> usage.input_tokens >> usage.output_tokens;
                StreamDelta d;
                d.kind = StreamDelta::Kind::usage;
                d.usage = usage;
                out.push_back(d);
            } else if (line == "f") {
                finished = true;
                StreamDelta d;
                d.kind = StreamDelta::Kind::finish;
                d.finish = calls.empty() ? FinishReason::stop : FinishReason::tool_calls;
                out.push_back(d);
            } else if (line.rfind("e ", 0) == 0) {
                return Failure::of(line.substr(2) == "overloaded" ? Reason::overloaded : Reason::server_error,
                                   "error event: " + line.substr(2));
            }
        }
        return std::nullopt;
    }
    Result<ChatResponse> end() {
        if (!finished) return Failure::of(Reason::malformed_response, "stream ended before its end");
        ChatResponse r;
        r.text = text;
        for (std::size_t i = 0; i < calls.size(); ++i) {
            calls[i].arguments = nlohmann::json::parse(args[i], nullptr, false);
            if (calls[i].arguments.is_discarded()) calls[i].arguments = args[i];
        }
        r.tool_calls = calls;
        r.usage = usage;
        r.finish_reason = calls.empty() ? FinishReason::stop : FinishReason::tool_calls;
        return r;
    }
};

/// FakeAdapter that can also stream (the format of FakeStreamDecoder).
struct FakeStreamingAdapter : FakeAdapter {
    Result<HttpRequest> encode_stream(const ChatRequest& req) const { return encode(req); }
    FakeStreamDecoder stream_decoder(const ChatRequest&, StreamLimits = {}) const { return {}; }
};

/// A local adapter that answers with a fixed text.
struct Canned {
    std::string text = "canned";
    Result<ChatResponse> respond(const ChatRequest&) const {
        ChatResponse r;
        r.text = text;
        return r;
    }
};

/// Keeps a copy of every event (owning strings).
struct Recorded {
    std::string type;
    std::string route, from, to, tenant;
    Reason reason = Reason::internal;
    bool ok = false;
    int number = 0;
    int status = 0;
    std::chrono::nanoseconds delay{};
    BreakerTransition transition{};
    std::string category;
    std::string kind, detail;  // StoreEvent
};

class RecordingSink final : public BasicSink<std::mutex> {
public:
    std::vector<Recorded> events() const {
        std::lock_guard l(const_cast<std::mutex&>(mutex_));
        return events_;
    }
    std::vector<Recorded> of(const std::string& type) const {
        std::vector<Recorded> out;
        for (auto& e : events())
            if (e.type == type) out.push_back(e);
        return out;
    }
    std::size_t count(const std::string& type) const { return of(type).size(); }

protected:
    void record_(const Event& ev) override {
        Recorded r;
        r.type = std::string(event_name(ev));
        std::visit(
            [&](const auto& e) {
                using E = std::decay_t<decltype(e)>;
                if constexpr (std::is_same_v<E, AttemptEvent>) {
                    r.route = e.route; r.tenant = e.tenant; r.ok = e.ok; r.reason = e.reason;
                    r.number = e.number; r.status = e.status;
                } else if constexpr (std::is_same_v<E, RetryEvent>) {
                    r.route = e.route; r.reason = e.reason; r.number = e.next_attempt; r.delay = e.delay;
                } else if constexpr (std::is_same_v<E, FallbackEvent>) {
                    r.from = e.from; r.to = e.to; r.reason = e.reason; r.tenant = e.tenant;
                } else if constexpr (std::is_same_v<E, SkipEvent>) {
                    r.route = e.route; r.reason = e.reason; r.tenant = e.tenant;
                } else if constexpr (std::is_same_v<E, BreakerEvent>) {
                    r.route = e.route; r.transition = e.transition;
                } else if constexpr (std::is_same_v<E, CooldownEvent>) {
                    r.route = e.route; r.delay = e.duration;
                } else if constexpr (std::is_same_v<E, SuccessEvent>) {
                    r.route = e.route; r.tenant = e.tenant; r.number = e.attempts;
                } else if constexpr (std::is_same_v<E, ExhaustedEvent>) {
                    r.tenant = e.tenant; r.reason = e.reason; r.number = e.attempts;
                } else if constexpr (std::is_same_v<E, PolicyEvent>) {
                    r.route = e.route; r.tenant = e.tenant; r.reason = e.reason; r.category = e.category;
                } else if constexpr (std::is_same_v<E, NoticeEvent>) {
                    r.route = e.route; r.category = e.topic;
                } else if constexpr (std::is_same_v<E, StoreEvent>) {
                    r.route = e.route; r.kind = e.kind; r.detail = e.detail;
                } else if constexpr (std::is_same_v<E, FirstTokenEvent>) {
                    r.route = e.route; r.tenant = e.tenant; r.delay = e.latency;
                } else if constexpr (std::is_same_v<E, StreamOutcomeEvent>) {
                    r.route = e.route; r.tenant = e.tenant; r.reason = e.reason; r.category = e.outcome;
                } else if constexpr (std::is_same_v<E, HealthCheckEvent>) {
                    r.route = e.route; r.ok = e.ok; r.reason = e.reason; r.status = e.status; r.delay = e.latency;
                }
            },
            ev);
        events_.push_back(std::move(r));
    }

private:
    std::vector<Recorded> events_;
};

}  // namespace failover_test
