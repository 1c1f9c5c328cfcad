// SPDX-License-Identifier: MIT
// libFuzzer target for the stream decoders and the SSE parser. The first input
// byte picks what is fuzzed (bits 0-2: OpenAI plain / structured, Anthropic
// plain / structured, Gemini plain / structured, the bare SSE parser) and the
// size of the pieces the rest is fed in (bits 3-7); the rest is the body.
// Beyond "never crashes, never throws, never trips ASan/UBSan" it checks the
// contracts: feeding in pieces gives exactly the deltas and the outcome of one
// feed, a failure is sticky, and every delta is well formed. A broken contract
// aborts, which libFuzzer reports with the input. For OpenAI and Anthropic it also
// checks that the fast path for text events (detail/stream/scan.hpp) gives exactly
// what the JSON DOM gives with the fast path off. SSE_FUZZ_ONLY=<target> in the
// environment spends a whole run on one decoder (see forced_target).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <failover/adapters/anthropic.hpp>
#include <failover/adapters/gemini.hpp>
#include <failover/adapters/openai.hpp>
#include <failover/detail/stream/anthropic.hpp>
#include <failover/detail/stream/openai.hpp>
#include <failover/schema.hpp>
#include <failover/sse.hpp>

namespace {

using namespace failover;

void require(bool ok) {
    if (!ok) std::abort();
}

const ChatRequest& request(bool structured) {
    static const ChatRequest plain = [] {
        ChatRequest r;
        r.messages = {user("Hi")};
        return r;
    }();
    static const ChatRequest schema = [] {
        ChatRequest r = plain;
        r.schema = Schema::parse(R"({"type":"object","properties":{"total":{"type":"number"}},"required":["total"]})");
        return r;
    }();
    return structured ? schema : plain;
}

std::string describe(const std::vector<StreamDelta>& deltas, const std::optional<Failure>& fed,
                     const std::optional<Result<ChatResponse>>& end) {
    std::string s;
    for (const StreamDelta& d : deltas) {
        s += to_string(d.kind);
        s += '|' + d.text + '|' + std::to_string(d.index) + '|' + d.id + '|' + d.name + '|' +
             std::to_string(d.usage.input_tokens) + '/' + std::to_string(d.usage.output_tokens) + '|' +
             std::string(to_string(d.finish)) + '\n';
    }
    const auto failure = [&s](const Failure& f) {
        s += std::string(to_string(f.kind)) + '/' + std::string(to_string(f.reason)) + ':' + f.message + '|' +
             f.provider_code + '|' + f.category;
    };
    if (fed) failure(*fed);
    if (end) {
        if (*end) {
            const ChatResponse& r = **end;
            s += "answer:" + r.text + '|' + r.json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                 '|' + std::string(to_string(r.finish_reason)) + '|' + r.model + '|' + std::to_string(r.tool_calls.size()) +
                 '|' + std::to_string(r.thinking.size());
            for (const ToolCall& c : r.tool_calls)
                s += '|' + c.id + ',' + c.name + ',' +
                     c.arguments.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        } else {
            failure(end->error());
        }
    }
    return s;
}

template <class Decoder>
std::string run(Decoder d, std::string_view body, std::size_t piece) {
    std::vector<StreamDelta> deltas;
    std::optional<Failure> fed;
    for (std::size_t at = 0; at < body.size() && !fed; at += piece) fed = d.feed(body.substr(at, piece), deltas);
    for (const StreamDelta& x : deltas) {
        if (x.kind == StreamDelta::Kind::text) require(!x.text.empty());
        if (x.kind != StreamDelta::Kind::tool_call) require(x.id.empty() && x.name.empty());
    }
    std::optional<Result<ChatResponse>> end;
    if (fed) {  // sticky: nothing more is accepted, end() says the same
        std::vector<StreamDelta> more;
        const auto again = d.feed("data: {}\n\n", more);
        require(more.empty() && again && again->message == fed->message);
        const Result<ChatResponse> e = d.end();
        require(!e && e.error().message == fed->message);
    } else {
        end.emplace(d.end());
    }
    return describe(deltas, fed, end);
}

template <class Make>
void differential(Make make, std::string_view body, std::size_t piece) {
    const std::string whole = run(make(), body, body.size() + 1);
    const std::string pieces = run(make(), body, piece);
    require(whole == pieces);
}

/// The fast path for text events (detail/stream/scan.hpp) against the JSON DOM it stands in
/// for: the same deltas and the same outcome, whole and in pieces.
template <class Decoder>
void fast_path_as_dom(Decoder fast, Decoder dom, std::string_view body, std::size_t piece) {
    dom.scan(false);
    Decoder fast_pieces = fast;
    require(run(fast, body, body.size() + 1) == run(dom, body, body.size() + 1));
    require(run(fast_pieces, body, piece) == run(dom, body, body.size() + 1));
}

/// The events of `body` fed in pieces, as owned SseEvents or (`views`) as SseEventViews read
/// from a copy of each piece that is overwritten right after its feed.
std::string events(std::string_view body, std::size_t piece, StreamLimits limits, bool views = false) {
    SseParser p(limits);
    std::string s;
    std::optional<Failure> f;
    std::string buffer;
    for (std::size_t at = 0; at < body.size() && !f; at += piece) {
        if (!views) {
            f = p.feed(body.substr(at, piece), [&s](const SseEvent& e) { s += e.type + '\x01' + e.data + '\x01' + e.id + '\x02'; });
            continue;
        }
        buffer.assign(body.substr(at, piece));
        f = p.feed(buffer, [&s](const SseEventView& e) {
            s.append(e.type).append(1, '\x01').append(e.data).append(1, '\x01').append(e.id).append(1, '\x02');
        });
        buffer.assign(buffer.size(), '#');
    }
    if (f) s += "failed:" + std::string(to_string(f->reason));
    s += p.mid_event() ? "mid" : "";
    return s;
}

}  // namespace

/// SSE_FUZZ_ONLY=openai|anthropic|gemini|sse fixes the target (bit 0 still picks plain or
/// structured), so one run can be spent on one decoder.
static int forced_target() {
    const char* only = std::getenv("SSE_FUZZ_ONLY");  // NOLINT(concurrency-mt-unsafe): read once
    if (only == nullptr) return -1;
    const std::string_view v = only;
    return v == "openai" ? 0 : v == "anthropic" ? 2 : v == "gemini" ? 4 : v == "sse" ? 6 : -1;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    static const int forced = forced_target();
    const unsigned pick = forced < 0 ? (data[0] & 7u) : static_cast<unsigned>(forced) | (data[0] & 1u);
    const std::size_t piece = 1 + (data[0] >> 3);
    const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
    static const OpenAI openai{{.model = "gpt-4o", .api_key = "sk-fuzz-0123456789abcdef", .base_url = "http://127.0.0.1:1/v1"}};
    static const Anthropic anthropic{{.model = "claude-x", .api_key = "sk-fuzz-0123456789abcdef", .base_url = "http://127.0.0.1:1"}};
    static const Gemini gemini{{.model = "gemini-x", .api_key = "fuzz-key", .base_url = "http://127.0.0.1:1"}};
    // Small limits, so the fuzzer reaches them.
    const StreamLimits limits{.max_event_bytes = 4096, .max_total_bytes = 16384};
    switch (pick) {
        case 0:
        case 1: {
            differential([&] { return openai.stream_decoder(request(pick == 1), limits); }, body, piece);
            detail::wire::OpenAIWire w;
            w.provider = "openai";
            w.model = "gpt-4o";
            w.secret = "sk-fuzz-0123456789abcdef";
            const detail::stream::OpenAIStream d(w, request(pick == 1), limits);
            fast_path_as_dom(d, d, body, piece);
            break;
        }
        case 2:
        case 3: {
            differential([&] { return anthropic.stream_decoder(request(pick == 3), limits); }, body, piece);
            const detail::stream::AnthropicStream d("claude-x", "sk-fuzz-0123456789abcdef", request(pick == 3), limits);
            fast_path_as_dom(d, d, body, piece);
            break;
        }
        case 4:
        case 5: differential([&] { return gemini.stream_decoder(request(pick == 5), limits); }, body, piece); break;
        default: {
            const std::string whole = events(body, body.size() + 1, limits);
            require(whole == events(body, piece, limits));
            require(whole == events(body, piece, limits, true));
            break;
        }
    }
    return 0;
}
