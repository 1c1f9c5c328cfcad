// SPDX-License-Identifier: MIT
// Streaming, below the router: the SSE parser (WHATWG rules, any split of the
// bytes gives the same events, bounded memory), the per-provider stream decoders
// against recorded streams written from providers.md section 8
// (tests/data/streams/<provider>/*.sse): text, tool calls, usage, finish
// reasons, structured output, thinking and signatures, policy signals, error
// events classified like error bodies, missing terminators, malformed events,
// and end() equal to decode() of the same answer whole; then over real HTTP:
// the loopback mock streams every format, CurlTransport reads the body, the
// decoders give the answer the mock meant, and each stream fault modifier
// does on the wire what it promises.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <failover/adapters/anthropic.hpp>
#include <failover/adapters/gemini.hpp>
#include <failover/adapters/openai.hpp>
#include <failover/adapters/openai_compatible.hpp>
#include <failover/detail/stream/anthropic.hpp>
#include <failover/detail/stream/openai.hpp>
#include <failover/schema.hpp>
#include <failover/sse.hpp>
#include <failover/stream.hpp>
#include <failover/transport/curl.hpp>

#include "support/catch.hpp"
#include "support/paths.hpp"
#include "support/mock_provider.hpp"

using namespace failover;
using namespace std::chrono_literals;
using failover_mock::Fault;
using failover_mock::MockProvider;
using nlohmann::json;

namespace {

const std::string kKey = "sk-test-STREAM-0123456789abcdef";

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::filesystem::path streams_dir() { return std::filesystem::path(failover_test::test_data_dir()) / "streams"; }
std::string fixture(const std::string& rel) { return read_file(streams_dir() / rel); }

/// Every *.sse file under streams/<folder>, sorted.
std::vector<std::filesystem::path> fixtures_in(const std::string& folder) {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(streams_dir() / folder))
        if (e.path().extension() == ".sse") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    REQUIRE(!out.empty());
    return out;
}

/// The bytes cut at these offsets (sorted, each within the size).
std::vector<std::string_view> split_at(std::string_view bytes, std::vector<std::size_t> cuts) {
    std::sort(cuts.begin(), cuts.end());
    std::vector<std::string_view> out;
    std::size_t from = 0;
    for (std::size_t c : cuts) {
        out.push_back(bytes.substr(from, c - from));
        from = c;
    }
    out.push_back(bytes.substr(from));
    return out;
}

/// Ways to split a stream: one piece, every two-piece split, one byte at a time, and a few
/// random multi-way splits (fixed seed).
std::vector<std::vector<std::string_view>> splits_of(std::string_view bytes) {
    std::vector<std::vector<std::string_view>> out;
    out.push_back({bytes});
    for (std::size_t i = 0; i <= bytes.size(); ++i) out.push_back(split_at(bytes, {i}));
    std::vector<std::string_view> bytewise;
    for (std::size_t i = 0; i < bytes.size(); ++i) bytewise.push_back(bytes.substr(i, 1));
    out.push_back(bytewise);
    std::mt19937 rng(7);
    for (int k = 0; k < 20 && !bytes.empty(); ++k) {
        std::uniform_int_distribution<std::size_t> at(0, bytes.size());
        std::vector<std::size_t> cuts;
        for (int c = 0; c < 6; ++c) cuts.push_back(at(rng));
        out.push_back(split_at(bytes, cuts));
    }
    return out;
}

// ------------------------------------------------------------------ SSE helpers

std::string describe(const std::vector<SseEvent>& events) {
    std::string s;
    for (const auto& e : events) s += "[" + e.type + "|" + e.data + "|" + e.id + "]\n";
    return s;
}

struct Parsed {
    std::vector<SseEvent> events;
    std::optional<Failure> failure;
    bool mid_event = false;
};

/// The events of `pieces` fed in turn, as owned SseEvents or (`views`) through the callback that
/// takes views: then each piece is fed from a buffer overwritten right after the feed, so a view
/// that outlived its feed shows as changed bytes.
Parsed parse_pieces(const std::vector<std::string_view>& pieces, StreamLimits limits = {}, bool views = false) {
    SseParser p(limits);
    Parsed out;
    std::string buffer;
    for (std::string_view piece : pieces) {
        if (!views) {
            out.failure = p.feed(piece, out.events);
        } else {
            buffer.assign(piece);
            out.failure = p.feed(buffer, [&](const SseEventView& e) {
                out.events.push_back(SseEvent{std::string(e.type), std::string(e.data), std::string(e.id)});
            });
            buffer.assign(buffer.size(), '#');
        }
        if (out.failure) break;
    }
    out.mid_event = p.mid_event();
    return out;
}

// ------------------------------------------------------------------ decoder helpers

/// What a decoder made of a stream.
struct Outcome {
    std::vector<StreamDelta> deltas;
    std::optional<Failure> failure;  ///< from feed or end
    bool failed_in_feed = false;
    std::optional<ChatResponse> answer;
};

template <class Decoder>
Outcome decode_pieces(Decoder d, const std::vector<std::string_view>& pieces) {
    Outcome o;
    for (std::string_view piece : pieces) {
        if ((o.failure = d.feed(piece, o.deltas))) {
            o.failed_in_feed = true;
            // After a failure nothing more is accepted, and end() says the same.
            std::vector<StreamDelta> more;
            const auto again = d.feed("data: {}\n\n", more);
            CHECK(more.empty());
            CHECK((again && again->reason == o.failure->reason && again->message == o.failure->message));
            const Result<ChatResponse> e = d.end();
            CHECK((!e && e.error().message == o.failure->message));
            return o;
        }
    }
    Result<ChatResponse> r = d.end();
    if (r) o.answer = *r;
    else o.failure = r.error();
    return o;
}

template <class Decoder>
Outcome decode_whole(Decoder d, std::string_view bytes) {
    return decode_pieces(std::move(d), {bytes});
}

std::string describe(const StreamDelta& d) {
    std::string s = to_string(d.kind);
    switch (d.kind) {
        case StreamDelta::Kind::text: s += "(" + d.text + ")"; break;
        case StreamDelta::Kind::tool_call:
            s += "(#" + std::to_string(d.index) + " id=" + d.id + " name=" + d.name + " args=" + d.text + ")";
            break;
        case StreamDelta::Kind::usage:
            s += "(" + std::to_string(d.usage.input_tokens) + "/" + std::to_string(d.usage.output_tokens) + ")";
            break;
        case StreamDelta::Kind::finish: s += "(" + std::string(to_string(d.finish)) + ")"; break;
    }
    return s;
}

std::string describe(const ChatResponse& r) {
    std::string s = "text=" + r.text + " json=" + r.json.dump() + " finish=" + std::string(to_string(r.finish_reason)) +
                    " usage=" + std::to_string(r.usage.input_tokens) + "/" + std::to_string(r.usage.output_tokens) +
                    " model=" + r.model + " sig=" + r.signature.provider + "/" + r.signature.model + "/" +
                    r.signature.value;
    for (const ToolCall& c : r.tool_calls)
        s += " call{" + c.id + (c.minted_id ? "(minted)" : "") + " " + c.name + " " + c.arguments.dump() + " sig=" +
             c.signature.value + "}";
    for (const Thinking& t : r.thinking)
        s += " thinking{" + t.text + " " + t.signature.provider + "/" + t.signature.model + "/" + t.signature.value +
             (t.redacted ? " redacted" : "") + "}";
    return s;
}

std::string describe(const Outcome& o) {
    std::string s;
    for (const auto& d : o.deltas) s += describe(d) + "\n";
    if (o.failure)
        s += std::string(o.failed_in_feed ? "feed" : "end") + " failure " + std::string(to_string(o.failure->kind)) +
             "/" + std::string(to_string(o.failure->reason)) + ": " + o.failure->message + " code=" +
             o.failure->provider_code + " category=" + o.failure->category;
    if (o.answer) s += describe(*o.answer);
    return s;
}

/// Text deltas joined.
std::string text_of(const Outcome& o) {
    std::string s;
    for (const auto& d : o.deltas)
        if (d.kind == StreamDelta::Kind::text) s += d.text;
    return s;
}

std::size_t count_of(const Outcome& o, StreamDelta::Kind k) {
    return static_cast<std::size_t>(
        std::count_if(o.deltas.begin(), o.deltas.end(), [k](const StreamDelta& d) { return d.kind == k; }));
}

/// The answer fields a stream and a whole body must agree on. Minted ids differ by design
/// (a stream seeds them from its events, decode() from the body), so `ids` can be left out.
void same_answer(const ChatResponse& streamed, const ChatResponse& whole, bool ids = true) {
    CHECK(streamed.text == whole.text);
    CHECK(streamed.json == whole.json);
    CHECK(streamed.finish_reason == whole.finish_reason);
    CHECK(streamed.usage.input_tokens == whole.usage.input_tokens);
    CHECK(streamed.usage.output_tokens == whole.usage.output_tokens);
    CHECK(streamed.model == whole.model);
    CHECK(streamed.signature.value == whole.signature.value);
    CHECK(streamed.signature.provider == whole.signature.provider);
    CHECK(streamed.signature.model == whole.signature.model);
    REQUIRE(streamed.tool_calls.size() == whole.tool_calls.size());
    for (std::size_t i = 0; i < whole.tool_calls.size(); ++i) {
        const ToolCall& a = streamed.tool_calls[i];
        const ToolCall& b = whole.tool_calls[i];
        CHECK(a.name == b.name);
        CHECK(a.arguments == b.arguments);
        CHECK(a.minted_id == b.minted_id);
        if (ids) CHECK(a.id == b.id);
        CHECK(a.signature.value == b.signature.value);
        CHECK(a.signature.model == b.signature.model);
    }
    REQUIRE(streamed.thinking.size() == whole.thinking.size());
    for (std::size_t i = 0; i < whole.thinking.size(); ++i) {
        CHECK(streamed.thinking[i].text == whole.thinking[i].text);
        CHECK(streamed.thinking[i].redacted == whole.thinking[i].redacted);
        CHECK(streamed.thinking[i].signature.value == whole.thinking[i].signature.value);
        CHECK(streamed.thinking[i].signature.model == whole.thinking[i].signature.model);
    }
}

HttpResponse ok(std::string body) { return HttpResponse{200, {{"Content-Type", "application/json"}}, std::move(body)}; }

OpenAI openai() { return OpenAI{{.model = "gpt-4o", .api_key = kKey, .base_url = "https://api.openai.com/v1"}}; }
Anthropic anthropic() {
    return Anthropic{{.model = "claude-sonnet-4-5", .api_key = kKey, .base_url = "https://api.anthropic.com"}};
}
Gemini gemini() {
    return Gemini{{.model = "gemini-2.5-flash", .api_key = kKey, .base_url = "https://generativelanguage.googleapis.com"}};
}

ChatRequest plain() {
    ChatRequest r;
    r.messages = {user("Hi")};
    return r;
}
std::shared_ptr<const Schema> invoice_schema() {
    return Schema::parse(R"({"type":"object","properties":{"invoice":{"type":"string"},"total":{"type":"number"}},)"
                         R"("required":["invoice","total"],"additionalProperties":false})");
}
ChatRequest structured() {
    ChatRequest r = plain();
    r.schema = invoice_schema();
    return r;
}

/// The request a decoder is made for, by fixture name.
ChatRequest request_for(const std::filesystem::path& file) {
    return file.filename().string().rfind("structured", 0) == 0 ? structured() : plain();
}

/// Every split of every fixture in `folder` decodes exactly as the whole stream does.
template <class MakeDecoder>
void check_split_invariance(const std::string& folder, MakeDecoder make) {
    for (const auto& file : fixtures_in(folder)) {
        const std::string bytes = read_file(file);
        const ChatRequest req = request_for(file);
        const std::string whole = describe(decode_whole(make(req), bytes));
        INFO(file.filename().string() << "\n" << whole);
        for (const auto& pieces : splits_of(bytes)) {
            const std::string split = describe(decode_pieces(make(req), pieces));
            if (split != whole) {
                INFO("pieces: " << pieces.size());
                CHECK(split == whole);
                break;
            }
        }
    }
}

// ------------------------------------------------------------------ raw HTTP client

/// What a raw socket read of one response gives: the head, the de-chunked body, and whether
/// the chunked body ended properly ("0\r\n\r\n").
struct RawReply {
    std::string head;
    std::string body;
    bool chunked_end = false;
    bool closed = false;  ///< the server closed the connection
};

/// POSTs `body` to `path` on the mock with a raw socket and reads until the server closes,
/// the chunked body ends, or `wait` passes without a byte.
RawReply raw_post(const MockProvider& mock, const std::string& path, const std::string& body,
                  std::chrono::milliseconds wait = 2000ms, std::string extra_headers = {}) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(mock.port());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    const std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n" +
                            extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
    std::string raw;
    RawReply out;
    char buf[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) break;
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            out.closed = true;
            break;
        }
        raw.append(buf, static_cast<std::size_t>(n));
        if (raw.size() >= 5 && raw.compare(raw.size() - 5, 5, "0\r\n\r\n") == 0) break;
    }
    ::close(fd);
    const auto head_end = raw.find("\r\n\r\n");
    REQUIRE(head_end != std::string::npos);
    out.head = raw.substr(0, head_end);
    std::string_view rest = std::string_view(raw).substr(head_end + 4);
    if (out.head.find("Transfer-Encoding: chunked") == std::string::npos) {
        out.body = std::string(rest);
        return out;
    }
    while (!rest.empty()) {
        const auto eol = rest.find("\r\n");
        if (eol == std::string_view::npos) break;
        const std::size_t size = std::stoul(std::string(rest.substr(0, eol)), nullptr, 16);
        rest.remove_prefix(eol + 2);
        if (size == 0) {
            out.chunked_end = rest.substr(0, 2) == "\r\n";
            break;
        }
        if (rest.size() < size + 2) {
            out.body += rest.substr(0, std::min(size, rest.size()));
            break;
        }
        out.body += rest.substr(0, size);
        rest.remove_prefix(size + 2);
    }
    return out;
}

const std::string openai_stream_body =
    R"({"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"stream":true,"stream_options":{"include_usage":true}})";
const std::string anthropic_stream_body =
    R"({"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hi"}],"stream":true})";
const std::string gemini_body = R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}]})";

Deadline within(std::chrono::milliseconds t) {
    Deadline d;
    d.timeout = t;
    d.connect_timeout = t;
    return d;
}

/// Sends the adapter's streaming request for `req` and decodes the body as it came, whole and
/// one byte at a time (which must agree).
template <class A>
Outcome stream_through(CurlTransport& http, const A& adapter, const ChatRequest& req, HttpResponse* seen = nullptr) {
    Result<HttpRequest> call = adapter.encode_stream(req);
    REQUIRE(call.has_value());
    Result<HttpResponse> res = http.send(*call, Deadline{});
    REQUIRE(res.has_value());
    if (seen) *seen = *res;
    REQUIRE(res->status == 200);
    REQUIRE(res->header("content-type") != nullptr);
    CHECK(res->header("content-type")->rfind("text/event-stream", 0) == 0);
    Outcome whole = decode_whole(adapter.stream_decoder(req), res->body);
    std::vector<std::string_view> bytewise;
    for (std::size_t i = 0; i < res->body.size(); ++i) bytewise.push_back(std::string_view(res->body).substr(i, 1));
    CHECK(describe(decode_pieces(adapter.stream_decoder(req), bytewise)) == describe(whole));
    return whole;
}

}  // namespace

// ======================================================================= SSE parser

TEST_CASE("SSE: every split of every recorded stream gives the events of one feed", "[sse][parser]") {
    std::size_t files = 0, splits = 0;
    for (const char* folder : {"openai", "anthropic", "gemini", "sse"}) {
        for (const auto& file : fixtures_in(folder)) {
            const std::string bytes = read_file(file);
            const Parsed whole = parse_pieces({bytes});
            INFO(file.filename().string() << "\n" << describe(whole.events));
            REQUIRE(!whole.failure);
            ++files;
            for (const auto& pieces : splits_of(bytes)) {
                ++splits;
                const Parsed split = parse_pieces(pieces);
                const Parsed views = parse_pieces(pieces, {}, true);  // what the stream decoders read
                if (describe(split.events) != describe(whole.events) || split.mid_event != whole.mid_event ||
                    split.failure.has_value() || describe(views.events) != describe(whole.events) ||
                    views.mid_event != whole.mid_event || views.failure.has_value()) {
                    INFO("pieces: " << pieces.size());
                    CHECK(describe(split.events) == describe(whole.events));
                    CHECK(describe(views.events) == describe(whole.events));
                    CHECK(split.mid_event == whole.mid_event);
                    CHECK(views.mid_event == whole.mid_event);
                    CHECK(!split.failure);
                    CHECK(!views.failure);
                    break;
                }
            }
        }
    }
    CHECK(files >= 40);
    CHECK(splits > 10000);
}

TEST_CASE("SSE: line ends, comments, fields and dispatch follow the WHATWG rules", "[sse][parser]") {
    SECTION("CR-only line ends, an event type, data joined with LF, a comment, an id") {
        const Parsed p = parse_pieces({fixture("sse/cr_only.sse")});
        CHECK(describe(p.events) == "[a|one|]\n[message|two\nlines|]\n[message|three|42]\n");
        CHECK(!p.mid_event);
    }
    SECTION("empty data lines, two leading spaces keep one, a field without a colon, no data no event") {
        SseParser sse;
        std::vector<SseEvent> ev;
        REQUIRE(!sse.feed(fixture("sse/multiline.sse"), ev));
        CHECK(describe(ev) ==
              "[message|first\n\n two spaces|]\n[custom||]\n[message|nul id ignored|]\n[message|after retry|]\n");
        CHECK(sse.retry() == std::chrono::milliseconds(2500));  // "12a" was ignored
        CHECK(sse.mid_event());  // the last event had no blank line: never dispatched
    }
    SECTION("a CR ending one feed and an LF starting the next are one line end") {
        SseParser sse;
        std::vector<SseEvent> ev;
        REQUIRE(!sse.feed("data: a\r", ev));
        REQUIRE(!sse.feed("\ndata: b\r\n\r\n", ev));
        CHECK(describe(ev) == "[message|a\nb|]\n");
    }
    SECTION("a BOM is skipped at the very start only, even when split") {
        std::vector<SseEvent> ev;
        SseParser a;
        REQUIRE(!a.feed("\xEF", ev));
        REQUIRE(!a.feed("\xBB", ev));
        REQUIRE(!a.feed("\xBF" "data: x\n\n", ev));
        REQUIRE(!a.feed("\xEF\xBB\xBF" "data: y\n\n", ev));  // later: not a BOM, an unknown field name
        CHECK(describe(ev) == "[message|x|]\n");
        SseParser b;
        ev.clear();
        REQUIRE(!b.feed("data: \xEF\xBB\xBFz\n\n", ev));
        CHECK(ev.at(0).data == "\xEF\xBB\xBFz");
        SseParser c;  // two bytes of a BOM and then something else: those bytes are data
        ev.clear();
        REQUIRE(!c.feed("\xEF\xBB", ev));
        REQUIRE(!c.feed(": not a bom\ndata: w\n\n", ev));
        CHECK(describe(ev) == "[message|w|]\n");
    }
    SECTION("the id persists across events and an empty id field clears it") {
        std::vector<SseEvent> ev;
        SseParser sse;
        REQUIRE(!sse.feed("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", ev));
        CHECK(describe(ev) == "[message|a|1]\n[message|b|1]\n[message|c|]\n");
        CHECK(sse.last_event_id().empty());
    }
    SECTION("on_event returning false stops parsing") {
        SseParser sse;
        int seen = 0;
        REQUIRE(!sse.feed("data: 1\n\ndata: 2\n\ndata: 3\n\n", [&](const SseEvent&) { return ++seen < 2; }));
        CHECK(seen == 2);
        SseParser views;
        seen = 0;
        REQUIRE(!views.feed("data: 1\n\ndata: 2\n\ndata: 3\n\n", [&](const SseEventView&) { return ++seen < 2; }));
        CHECK(seen == 2);
        CHECK(!views.mid_event());
    }
    SECTION("an event line split across feeds, then another whole: the last one names the event, and only it") {
        for (const bool views : {false, true}) {
            const Parsed p = parse_pieces({"event: a", "\nevent: b\ndata: x\n\ndata: y\n\n"}, {}, views);
            CHECK(describe(p.events) == "[b|x|]\n[message|y|]\n");
            CHECK(!p.mid_event);
        }
    }
    SECTION("a callback that throws leaves the parser between events, holding nothing of the bytes it was fed") {
        const auto throw_then_go_on = [](auto thrower) {
            SseParser sse;
            std::string bytes = "event: first\ndata: a\n\n";
            CHECK_THROWS_AS(sse.feed(bytes, thrower), std::runtime_error);
            CHECK(!sse.mid_event());
            bytes.assign(bytes.size(), 'z');  // the caller reuses its buffer
            std::vector<SseEvent> ev;
            REQUIRE(!sse.feed("data: b\n\n", ev));
            return describe(ev);
        };
        CHECK(throw_then_go_on([](const SseEventView&) { throw std::runtime_error("view"); }) == "[message|b|]\n");
        CHECK(throw_then_go_on([](const SseEvent&) { throw std::runtime_error("owned"); }) == "[message|b|]\n");
    }
}

TEST_CASE("SSE: memory is bounded by the event and stream limits", "[sse][parser][limits]") {
    SECTION("an endless line with no newline stops at the event limit with response_too_large") {
        SseParser sse(StreamLimits{.max_event_bytes = 64 * 1024, .max_total_bytes = std::size_t{1} << 30});
        std::vector<SseEvent> ev;
        const std::string block(4096, 'x');
        std::optional<Failure> f = sse.feed("data: ", ev);
        std::size_t fed = 0;
        while (!f && fed < (std::size_t{1} << 24)) {
            f = sse.feed(block, ev);
            fed += block.size();
        }
        REQUIRE(f);
        CHECK(f->reason == Reason::response_too_large);
        CHECK(f->kind == FailureKind::terminal);
        CHECK(fed <= 64 * 1024 + block.size());
        CHECK(ev.empty());
        const auto again = sse.feed("\n\n", ev);  // nothing more is accepted
        CHECK((again && again->reason == Reason::response_too_large));
        CHECK(ev.empty());
    }
    SECTION("many data lines of one event count together") {
        SseParser sse(StreamLimits{.max_event_bytes = 1000, .max_total_bytes = 1 << 20});
        std::vector<SseEvent> ev;
        std::optional<Failure> f;
        for (int i = 0; i < 100 && !f; ++i) f = sse.feed("data: 0123456789012345678901234567890123456789\n", ev);
        REQUIRE(f);
        CHECK(f->reason == Reason::response_too_large);
    }
    SECTION("the default event limit is 1 MiB") {
        SseParser sse;
        std::vector<SseEvent> ev;
        CHECK(!sse.feed("data: " + std::string((std::size_t{1} << 20) - 100, 'y') + "\n\n", ev));
        CHECK(ev.size() == 1);
        const auto f = sse.feed("data: " + std::string((std::size_t{1} << 20) + 1, 'y'), ev);
        CHECK((f && f->reason == Reason::response_too_large));
    }
    SECTION("comment lines cost nothing: a long keep-alive comment is skipped, not stored") {
        SseParser sse(StreamLimits{.max_event_bytes = 1024, .max_total_bytes = std::size_t{1} << 30});
        std::vector<SseEvent> ev;
        REQUIRE(!sse.feed(":", ev));
        const std::string block(1 << 16, 'k');
        for (int i = 0; i < 64; ++i) REQUIRE(!sse.feed(block, ev));  // 4 MiB of comment
        REQUIRE(!sse.feed("\ndata: after\n\n", ev));
        CHECK(describe(ev) == "[message|after|]\n");
    }
    SECTION("the stream limit delivers what came before it, whatever the split") {
        const std::string bytes = "data: one\n\ndata: two\n\ndata: three\n\n";
        const StreamLimits limits{.max_event_bytes = 1024, .max_total_bytes = 25};
        for (const auto& pieces : splits_of(bytes)) {
            for (const Parsed& p : {parse_pieces(pieces, limits), parse_pieces(pieces, limits, true)}) {
                REQUIRE(p.failure);
                CHECK(p.failure->reason == Reason::response_too_large);
                CHECK(describe(p.events) == "[message|one|]\n[message|two|]\n");
            }
        }
    }
}

// ======================================================================= decoders: OpenAI

TEST_CASE("OpenAI stream: text, usage chunk and finish, equal to decode() of the whole answer", "[sse][openai]") {
    const OpenAI a = openai();
    const Outcome o = decode_whole(a.stream_decoder(plain()), fixture("openai/text.sse"));
    INFO(describe(o));
    REQUIRE(o.answer);
    CHECK(text_of(o) == "Bonjour, le monde ✓");
    CHECK(count_of(o, StreamDelta::Kind::text) == 3);  // the empty first content is no delta
    REQUIRE(o.deltas.size() == 5);
    CHECK(o.deltas[3].kind == StreamDelta::Kind::finish);
    CHECK(o.deltas[3].finish == FinishReason::stop);
    CHECK(o.deltas[4].kind == StreamDelta::Kind::usage);
    CHECK(o.deltas[4].usage.input_tokens == 19);
    CHECK(o.deltas[4].usage.output_tokens == 7);

    const json whole = {{"id", "chatcmpl-A1"},
                        {"object", "chat.completion"},
                        {"model", "gpt-4o-2024-08-06"},
                        {"choices",
                         {{{"index", 0},
                           {"message", {{"role", "assistant"}, {"content", "Bonjour, le monde ✓"}, {"refusal", nullptr}}},
                           {"finish_reason", "stop"}}}},
                        {"usage", {{"prompt_tokens", 19}, {"completion_tokens", 7}, {"total_tokens", 26}}}};
    Result<ChatResponse> d = a.decode(plain(), ok(whole.dump()));
    REQUIRE(d.has_value());
    same_answer(*o.answer, *d);

    SECTION("CRLF line ends, a BOM, comments, id, retry and unknown fields change nothing") {
        const Outcome c = decode_whole(a.stream_decoder(plain()), fixture("openai/crlf_comments.sse"));
        CHECK(describe(c) == describe(o));
    }
}

TEST_CASE("OpenAI stream: two parallel tool calls assembled from fragments by index", "[sse][openai]") {
    const OpenAI a = openai();
    const Outcome o = decode_whole(a.stream_decoder(plain()), fixture("openai/tool_calls_parallel.sse"));
    INFO(describe(o));
    REQUIRE(o.answer);
    std::vector<std::string> calls;
    for (const auto& d : o.deltas)
        if (d.kind == StreamDelta::Kind::tool_call) calls.push_back(describe(d));
    CHECK(calls == std::vector<std::string>{"tool_call(#0 id=call_w1 name=get_weather args=)",
                                            "tool_call(#0 id= name= args={\"ci)",
                                            "tool_call(#1 id=call_t2 name=get_time args=)",
                                            "tool_call(#0 id= name= args=ty\": \"Paris\"})",
                                            "tool_call(#1 id= name= args={\"tz\":\"CET\"})"});
    const json whole = {
        {"model", "gpt-4o-2024-08-06"},
        {"choices",
         {{{"index", 0},
           {"message",
            {{"role", "assistant"},
             {"content", nullptr},
             {"tool_calls",
              {{{"id", "call_w1"}, {"type", "function"}, {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Paris\"}"}}}},
               {{"id", "call_t2"}, {"type", "function"}, {"function", {{"name", "get_time"}, {"arguments", "{\"tz\":\"CET\"}"}}}}}}}},
           {"finish_reason", "tool_calls"}}}},
        {"usage", {{"prompt_tokens", 19}, {"completion_tokens", 7}}}};
    Result<ChatResponse> d = a.decode(plain(), ok(whole.dump()));
    REQUIRE(d.has_value());
    same_answer(*o.answer, *d);
    CHECK(o.answer->finish_reason == FinishReason::tool_calls);
    CHECK(o.answer->tool_calls.at(0).arguments == json{{"city", "Paris"}});
}

TEST_CASE("OpenAI stream: a compatible server without ids gets stable minted ones", "[sse][openai]") {
    const OpenAICompatible a{{.base_url = "http://127.0.0.1:11434/v1", .model = "llama3.1"}};
    const std::string bytes = fixture("openai/tool_call_no_id.sse");
    const Outcome o = decode_whole(a.stream_decoder(plain()), bytes);
    INFO(describe(o));
    REQUIRE(o.answer);
    const ToolCall& c = o.answer->tool_calls.at(0);
    CHECK(c.minted_id);
    CHECK(c.id.rfind("call_", 0) == 0);
    CHECK(c.id.size() == 21);
    CHECK(c.arguments == json{{"q", "x"}});
    CHECK(o.deltas.at(0).id == c.id);  // the first fragment carries the id the answer keeps
    CHECK(o.answer->usage.total() == 0);  // this server sent no usage chunk
    CHECK(decode_whole(a.stream_decoder(plain()), bytes).answer->tool_calls.at(0).id == c.id);  // stable
}

TEST_CASE("OpenAI stream: structured output parsed at the end like decode()", "[sse][openai]") {
    const OpenAI a = openai();
    const Outcome o = decode_whole(a.stream_decoder(structured()), fixture("openai/structured.sse"));
    REQUIRE(o.answer);
    CHECK(o.answer->json == json{{"invoice", "INV-7"}, {"total", 42.5}});
    CHECK(text_of(o) == o.answer->text);

    const Outcome t = decode_whole(a.stream_decoder(structured()), fixture("openai/structured_truncated.sse"));
    REQUIRE(t.failure);
    CHECK(!t.failed_in_feed);
    CHECK(t.failure->reason == Reason::malformed_response);
    CHECK_THAT(t.failure->message, Catch::Contains("truncated"));

    const Outcome p = decode_whole(a.stream_decoder(structured()), fixture("openai/structured_not_json.sse"));
    REQUIRE(p.failure);
    CHECK(p.failure->reason == Reason::schema_invalid);
    // Exactly what decode() says of the same answers whole.
    const json prose = {{"choices", {{{"message", {{"content", "The total is 42.50"}}}, {"finish_reason", "stop"}}}}};
    CHECK(a.decode(structured(), ok(prose.dump())).error().message == p.failure->message);
}

TEST_CASE("OpenAI stream: refusal and content filter are policy failures, with the category", "[sse][openai]") {
    const OpenAI a = openai();
    const Outcome r = decode_whole(a.stream_decoder(plain()), fixture("openai/refusal.sse"));
    INFO(describe(r));
    REQUIRE(r.failure);
    CHECK(r.failed_in_feed);
    CHECK(r.failure->kind == FailureKind::policy);
    CHECK(r.failure->reason == Reason::refusal);
    CHECK(r.failure->message == "I'm sorry, I can't help with that.");  // the whole refusal
    CHECK(count_of(r, StreamDelta::Kind::text) == 0);                   // never shown as the answer
    const json whole = {{"choices",
                         {{{"message", {{"content", nullptr}, {"refusal", "I'm sorry, I can't help with that."}}},
                           {"finish_reason", "stop"}}}}};
    CHECK(a.decode(plain(), ok(whole.dump())).error().message == r.failure->message);

    const auto azure = OpenAICompatible::azure({.resource = "acme", .deployment = "gpt-4o", .api_key = kKey});
    const Outcome f = decode_whole(azure.stream_decoder(plain()), fixture("openai/azure_content_filter.sse"));
    INFO(describe(f));
    REQUIRE(f.failure);
    CHECK(f.failed_in_feed);
    CHECK(f.failure->kind == FailureKind::policy);
    CHECK(f.failure->reason == Reason::content_filter);
    CHECK(f.failure->category == "violence");
    CHECK(text_of(f) == "Here is how");  // what the caller saw before the filter
}

TEST_CASE("OpenAI stream: error events are classified like error bodies and say they came mid-stream", "[sse][openai]") {
    const OpenAI a = openai();
    const Outcome r = decode_whole(a.stream_decoder(plain()), fixture("openai/error_data.sse"));
    INFO(describe(r));
    REQUIRE(r.failure);
    CHECK(r.failed_in_feed);
    CHECK(text_of(r) == "Partial ");
    CHECK(r.failure->reason == Reason::rate_limited);
    CHECK(r.failure->kind == FailureKind::transient);
    CHECK(r.failure->provider_code == "rate_limit_exceeded");
    CHECK(r.failure->retry_after == std::chrono::milliseconds(1500));  // "try again in 1.5s", as for a 429 body
    CHECK(r.failure->status == 200);
    CHECK_THAT(r.failure->message, Catch::Contains("mid-stream"));

    const Outcome e = decode_whole(a.stream_decoder(plain()), fixture("openai/error_event.sse"));
    REQUIRE(e.failure);
    CHECK(e.failure->reason == Reason::server_error);
    CHECK(e.failure->kind == FailureKind::transient);

    const Outcome n = decode_whole(a.stream_decoder(plain()), fixture("openai/error_numeric_code.sse"));
    REQUIRE(n.failure);
    CHECK(n.failure->reason == Reason::overloaded);  // vLLM's numeric code 503

    SECTION("a quota error is terminal, and the key never shows") {
        auto d = a.stream_decoder(plain());
        std::vector<StreamDelta> out;
        const json err = {{"error",
                           {{"message", "You exceeded your current quota (key " + kKey + ")."},
                            {"type", "insufficient_quota"},
                            {"code", "insufficient_quota"}}}};
        const auto f = d.feed("data: " + err.dump() + "\n\n", out);
        REQUIRE(f);
        CHECK(f->reason == Reason::quota_exhausted);
        CHECK(f->kind == FailureKind::terminal);
        CHECK(f->message.find(kKey) == std::string::npos);
        CHECK(f->message.find("sk-test-STREAM") == std::string::npos);
    }
}

TEST_CASE("OpenAI stream: completeness needs the finish_reason, not [DONE]", "[sse][openai]") {
    const OpenAI a = openai();
    const Outcome no_done = decode_whole(a.stream_decoder(plain()), fixture("openai/no_done.sse"));
    REQUIRE(no_done.answer);
    CHECK(no_done.answer->text == "Complete answer.");

    for (const char* file : {"openai/no_finish.sse", "openai/cut_mid_event.sse"}) {
        INFO(file);
        const Outcome o = decode_whole(a.stream_decoder(plain()), fixture(file));
        REQUIRE(o.failure);
        CHECK(!o.failed_in_feed);
        CHECK(o.failure->reason == Reason::malformed_response);
        CHECK(o.failure->kind == FailureKind::transient);
        CHECK_THAT(o.failure->message, Catch::Contains("stream ended before its end"));
    }
    const Outcome empty = decode_whole(a.stream_decoder(plain()), "");
    REQUIRE(empty.failure);
    CHECK(empty.failure->reason == Reason::malformed_response);

    const Outcome bad = decode_whole(a.stream_decoder(plain()), fixture("openai/malformed.sse"));
    REQUIRE(bad.failure);
    CHECK(bad.failed_in_feed);
    CHECK(bad.failure->reason == Reason::malformed_response);
    CHECK_THAT(bad.failure->message, Catch::Contains("malformed server-sent event JSON"));

    const Outcome after = decode_whole(a.stream_decoder(plain()), fixture("openai/after_done.sse"));
    REQUIRE(after.answer);  // events after [DONE] are ignored, errors and garbage included
    CHECK(after.answer->text == "Done.");
}

TEST_CASE("OpenAI stream: odd but valid shapes of compatible servers", "[sse][openai]") {
    const OpenAICompatible a{{.base_url = "http://127.0.0.1:8080/v1", .model = "local"}};
    SECTION("fragments without an index: an id starts a call, the rest continue the last one") {
        const std::string bytes =
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n"
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"1}\"}}]}}]}\n\n"
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"c2\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n"
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n";
        const Outcome o = decode_whole(a.stream_decoder(plain()), bytes);
        INFO(describe(o));
        REQUIRE(o.answer);
        REQUIRE(o.answer->tool_calls.size() == 2);
        CHECK(o.answer->tool_calls[0].id == "c1");
        CHECK(o.answer->tool_calls[0].arguments == json{{"a", 1}});
        CHECK(o.answer->tool_calls[1].id == "c2");
        CHECK(o.answer->tool_calls[1].name == "g");
    }
    SECTION("arguments that never become JSON are kept as a string, as decode() keeps them") {
        const std::string bytes =
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":\"{oops\"}}]}}]}\n\n"
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n";
        const Outcome o = decode_whole(a.stream_decoder(plain()), bytes);
        REQUIRE(o.answer);
        CHECK(o.answer->tool_calls.at(0).arguments == json("{oops"));
    }
    SECTION("a call whose name never came is malformed") {
        const std::string bytes =
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n"
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n";
        const Outcome o = decode_whole(a.stream_decoder(plain()), bytes);
        REQUIRE(o.failure);
        CHECK(o.failure->reason == Reason::malformed_response);
        CHECK_THAT(o.failure->message, Catch::Contains("no function name"));
    }
    SECTION("an error event whose data is not JSON is still a server error, and other choices are ignored") {
        const Outcome e = decode_whole(a.stream_decoder(plain()), "event: error\ndata: upstream exploded\n\n");
        REQUIRE(e.failure);
        CHECK(e.failure->reason == Reason::server_error);
        const Outcome n = decode_whole(
            a.stream_decoder(plain()),
            "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other\"}},{\"index\":0,\"delta\":{\"content\":\"mine\"}}]}\n\n"
            "data: {\"choices\":[{\"index\":1,\"delta\":{},\"finish_reason\":\"length\"},{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
        REQUIRE(n.answer);
        CHECK(n.answer->text == "mine");
        CHECK(n.answer->finish_reason == FinishReason::stop);
    }
}

TEST_CASE("OpenAI stream: every split decodes like the whole stream", "[sse][openai][splits]") {
    const OpenAI a = openai();
    check_split_invariance("openai", [&](const ChatRequest& r) { return a.stream_decoder(r); });
}

// ======================================================================= decoders: Anthropic

TEST_CASE("Anthropic stream: text, usage, finish, pings, equal to decode()", "[sse][anthropic]") {
    const Anthropic a = anthropic();
    const Outcome o = decode_whole(a.stream_decoder(plain()), fixture("anthropic/text.sse"));
    INFO(describe(o));
    REQUIRE(o.answer);
    std::vector<std::string> d;
    for (const auto& x : o.deltas) d.push_back(describe(x));
    CHECK(d == std::vector<std::string>{"usage(25/1)", "text(Hello)", "text(, wörld)", "text(!)", "usage(25/12)",
                                        "finish(stop)"});
    const json whole = {{"model", "claude-sonnet-4-5-20250929"},
                        {"content", {{{"type", "text"}, {"text", "Hello, wörld!"}}}},
                        {"stop_reason", "end_turn"},
                        {"usage", {{"input_tokens", 25}, {"output_tokens", 12}}}};
    same_answer(*o.answer, a.decode(plain(), ok(whole.dump())).value());
}

TEST_CASE("Anthropic stream: tool_use blocks from input_json_delta pieces", "[sse][anthropic]") {
    const Anthropic a = anthropic();
    const Outcome o = decode_whole(a.stream_decoder(plain()), fixture("anthropic/tool_use.sse"));
    INFO(describe(o));
    REQUIRE(o.answer);
    std::vector<std::string> calls;
    for (const auto& x : o.deltas)
        if (x.kind == StreamDelta::Kind::tool_call) calls.push_back(describe(x));
    CHECK(calls == std::vector<std::string>{"tool_call(#0 id=toolu_01A name=get_weather args=)",
                                            "tool_call(#0 id= name= args={\"city\": \"Pa)",
                                            "tool_call(#0 id= name= args=ris\"})",
                                            "tool_call(#1 id=toolu_01B name=get_time args=)"});
    const json whole = {{"model", "claude-sonnet-4-5-20250929"},
                        {"content",
                         {{{"type", "text"}, {"text", "Let me check."}},
                          {{"type", "tool_use"}, {"id", "toolu_01A"}, {"name", "get_weather"}, {"input", {{"city", "Paris"}}}},
                          {{"type", "tool_use"}, {"id", "toolu_01B"}, {"name", "get_time"}, {"input", json::object()}}}},
                        {"stop_reason", "tool_use"},
                        {"usage", {{"input_tokens", 25}, {"output_tokens", 40}}}};
    same_answer(*o.answer, a.decode(plain(), ok(whole.dump())).value());
}

TEST_CASE("Anthropic stream: the forced structured-output tool streams as text and ends as json", "[sse][anthropic]") {
    const Anthropic a = anthropic();
    const Outcome o = decode_whole(a.stream_decoder(structured()), fixture("anthropic/structured.sse"));
    INFO(describe(o));
    REQUIRE(o.answer);
    CHECK(count_of(o, StreamDelta::Kind::tool_call) == 0);
    CHECK(text_of(o) == R"({"invoice": "INV-7", "total": 42.5})");
    CHECK(o.answer->json == json{{"invoice", "INV-7"}, {"total", 42.5}});
    CHECK(o.answer->finish_reason == FinishReason::stop);
    CHECK(o.deltas.back().kind == StreamDelta::Kind::finish);
    CHECK(o.deltas.back().finish == FinishReason::stop);
    CHECK(o.answer->usage.input_tokens == 150);  // cache reads are part of the prompt
    const json whole = {{"model", "claude-sonnet-4-5-20250929"},
                        {"content",
                         {{{"type", "tool_use"}, {"id", "toolu_01S"}, {"name", "answer"}, {"input", {{"invoice", "INV-7"}, {"total", 42.5}}}}}},
                        {"stop_reason", "tool_use"},
                        {"usage", {{"input_tokens", 100}, {"cache_read_input_tokens", 50}, {"output_tokens", 20}}}};
    same_answer(*o.answer, a.decode(structured(), ok(whole.dump())).value());

    const Outcome t = decode_whole(a.stream_decoder(structured()), fixture("anthropic/structured_truncated.sse"));
    REQUIRE(t.failure);
    CHECK(t.failure->reason == Reason::malformed_response);
    CHECK_THAT(t.failure->message, Catch::Contains("truncated"));
}

TEST_CASE("Anthropic stream: thinking and redacted thinking kept with their signatures", "[sse][anthropic]") {
    const Anthropic a = anthropic();
    const Outcome o = decode_whole(a.stream_decoder(plain()), fixture("anthropic/thinking.sse"));
    INFO(describe(o));
    REQUIRE(o.answer);
    CHECK(text_of(o) == "Hi there.");  // thinking is kept, not streamed as answer text
    REQUIRE(o.answer->thinking.size() == 2);
    CHECK(o.answer->thinking[0].text == "The user wants a greeting.");
    CHECK(o.answer->thinking[0].signature.value == "EqQBCgIYAhIM1gbcDa9GJwZA2b3h");
    CHECK(o.answer->thinking[0].signature.belongs_to("anthropic", "claude-sonnet-4-5"));
    CHECK(o.answer->thinking[1].redacted);
    CHECK(o.answer->thinking[1].signature.value == "EmwKAhgBEgy3va3pzix/LafPsn4a");
    const json whole = {{"model", "claude-sonnet-4-5-20250929"},
                        {"content",
                         {{{"type", "thinking"}, {"thinking", "The user wants a greeting."}, {"signature", "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"}},
                          {{"type", "redacted_thinking"}, {"data", "EmwKAhgBEgy3va3pzix/LafPsn4a"}},
                          {{"type", "text"}, {"text", "Hi there."}}}},
                        {"stop_reason", "end_turn"},
                        {"usage", {{"input_tokens", 25}, {"output_tokens", 30}}}};
    same_answer(*o.answer, a.decode(plain(), ok(whole.dump())).value());
}

TEST_CASE("Anthropic stream: refusal, context window, error events, missing message_stop", "[sse][anthropic]") {
    const Anthropic a = anthropic();
    const Outcome r = decode_whole(a.stream_decoder(plain()), fixture("anthropic/refusal.sse"));
    INFO(describe(r));
    REQUIRE(r.failure);
    CHECK(r.failed_in_feed);  // from message_delta, before message_stop
    CHECK(r.failure->kind == FailureKind::policy);
    CHECK(r.failure->reason == Reason::refusal);
    CHECK(r.failure->category == "cyber");
    CHECK(r.failure->message == "This request asks for help with malware.");

    const Outcome c = decode_whole(a.stream_decoder(plain()), fixture("anthropic/context_window.sse"));
    REQUIRE(c.failure);
    CHECK(c.failure->reason == Reason::context_too_long);

    const Outcome e = decode_whole(a.stream_decoder(plain()), fixture("anthropic/error_overloaded.sse"));
    REQUIRE(e.failure);
    CHECK(e.failed_in_feed);
    CHECK(text_of(e) == "Partial");
    CHECK(e.failure->kind == FailureKind::transient);
    CHECK(e.failure->reason == Reason::overloaded);
    CHECK(e.failure->provider_code == "overloaded_error");
    CHECK(e.failure->status == 200);
    CHECK(e.failure->message == "anthropic: error event mid-stream: Overloaded");

    const Outcome rl = decode_whole(a.stream_decoder(plain()), fixture("anthropic/error_rate_limit.sse"));
    REQUIRE(rl.failure);
    CHECK(rl.failure->reason == Reason::rate_limited);

    const Outcome n = decode_whole(a.stream_decoder(plain()), fixture("anthropic/no_message_stop.sse"));
    REQUIRE(n.failure);
    CHECK(!n.failed_in_feed);
    CHECK(n.failure->reason == Reason::malformed_response);
    CHECK_THAT(n.failure->message, Catch::Contains("stream ended before its end"));

    const Outcome m = decode_whole(a.stream_decoder(plain()), fixture("anthropic/malformed.sse"));
    REQUIRE(m.failure);
    CHECK(m.failure->reason == Reason::malformed_response);
}

TEST_CASE("Anthropic stream: pings, unknown events and deltas are ignored, nothing counts after message_stop", "[sse][anthropic]") {
    const Anthropic a = anthropic();
    const Outcome o = decode_whole(a.stream_decoder(plain()), fixture("anthropic/unknown_events.sse"));
    INFO(describe(o));
    REQUIRE(o.answer);
    CHECK(o.answer->text == "Cited text.");
    CHECK(o.answer->tool_calls.empty());  // a server tool is no tool call of ours
    CHECK(o.answer->finish_reason == FinishReason::stop);
    CHECK(o.answer->usage.output_tokens == 9);
}

TEST_CASE("Anthropic stream: a tool input cut by max_tokens, a delta for no block", "[sse][anthropic]") {
    const Anthropic a = anthropic();
    const auto ev = [](const std::string& type, const json& data) { return "event: " + type + "\ndata: " + data.dump() + "\n\n"; };
    const std::string start = ev("message_start", {{"type", "message_start"}, {"message", {{"model", "m"}, {"usage", {{"input_tokens", 3}}}}}});
    const std::string tool = ev("content_block_start", {{"type", "content_block_start"},
                                                        {"index", 0},
                                                        {"content_block", {{"type", "tool_use"}, {"id", "t1"}, {"name", "f"}, {"input", json::object()}}}});
    const std::string piece = ev("content_block_delta", {{"type", "content_block_delta"},
                                                         {"index", 0},
                                                         {"delta", {{"type", "input_json_delta"}, {"partial_json", "{\"a\": [1, 2"}}}});
    const auto stop = [&](const char* reason) {
        return ev("content_block_stop", {{"type", "content_block_stop"}, {"index", 0}}) +
               ev("message_delta", {{"type", "message_delta"}, {"delta", {{"stop_reason", reason}}}, {"usage", {{"output_tokens", 9}}}}) +
               ev("message_stop", {{"type", "message_stop"}});
    };
    const Outcome cut = decode_whole(a.stream_decoder(plain()), start + tool + piece + stop("max_tokens"));
    INFO(describe(cut));
    REQUIRE(cut.answer);
    CHECK(cut.answer->finish_reason == FinishReason::length);
    CHECK(cut.answer->tool_calls.at(0).arguments == json("{\"a\": [1, 2"));  // kept for the tool-call gate to report
    const Outcome broken = decode_whole(a.stream_decoder(plain()), start + tool + piece + stop("tool_use"));
    REQUIRE(broken.failure);
    CHECK(broken.failure->reason == Reason::malformed_response);
    const Outcome stray = decode_whole(a.stream_decoder(plain()), start + piece);
    REQUIRE(stray.failure);
    CHECK(stray.failed_in_feed);
    CHECK_THAT(stray.failure->message, Catch::Contains("never started"));
    const Outcome unknown = decode_whole(a.stream_decoder(plain()), start + "event: brand_new\ndata: not json\n\n" + tool +
                                                                      ev("content_block_delta", {{"type", "content_block_delta"}, {"index", 0},
                                                                                                 {"delta", {{"type", "input_json_delta"}, {"partial_json", "{}"}}}}) +
                                                                      stop("tool_use"));
    REQUIRE(unknown.answer);  // an unknown event is ignored whatever its data
    CHECK(unknown.answer->tool_calls.at(0).arguments == json::object());
}

TEST_CASE("Anthropic stream: every split decodes like the whole stream", "[sse][anthropic][splits]") {
    const Anthropic a = anthropic();
    check_split_invariance("anthropic", [&](const ChatRequest& r) { return a.stream_decoder(r); });
}

// ======================================================================= decoders: Gemini

TEST_CASE("Gemini stream: text chunks, usage and finish, equal to decode()", "[sse][gemini]") {
    const Gemini g = gemini();
    const Outcome o = decode_whole(g.stream_decoder(plain()), fixture("gemini/text.sse"));
    INFO(describe(o));
    REQUIRE(o.answer);
    std::vector<std::string> d;
    for (const auto& x : o.deltas) d.push_back(describe(x));
    CHECK(d == std::vector<std::string>{"text(Hello)", "usage(8/0)", "text( from)", "text( Gemini.)", "finish(stop)",
                                        "usage(8/12)"});
    const json whole = {{"candidates",
                         {{{"content", {{"parts", {{{"text", "Hello from Gemini."}}}}, {"role", "model"}}},
                           {"finishReason", "STOP"}}}},
                        {"usageMetadata", {{"promptTokenCount", 8}, {"candidatesTokenCount", 12}}},
                        {"modelVersion", "gemini-2.5-flash"}};
    same_answer(*o.answer, g.decode(plain(), ok(whole.dump())).value());
}

TEST_CASE("Gemini stream: functionCall parts without ids, thoughtSignature kept", "[sse][gemini]") {
    const Gemini g = gemini();
    const std::string bytes = fixture("gemini/function_call.sse");
    const Outcome o = decode_whole(g.stream_decoder(plain()), bytes);
    INFO(describe(o));
    REQUIRE(o.answer);
    REQUIRE(o.answer->tool_calls.size() == 2);
    const ToolCall& c = o.answer->tool_calls[0];
    CHECK(c.minted_id);
    CHECK(c.signature.value == "CiQB0e2Kb2sig");
    CHECK(c.signature.belongs_to("gemini", "gemini-2.5-flash"));
    CHECK(o.answer->tool_calls[1].signature.empty());  // only the first parallel call is signed
    CHECK(o.answer->tool_calls[0].id != o.answer->tool_calls[1].id);
    CHECK(o.answer->finish_reason == FinishReason::tool_calls);
    CHECK(o.answer->usage.output_tokens == 15);  // thinking tokens are output
    const StreamDelta& first = o.deltas.at(0);
    CHECK(first.kind == StreamDelta::Kind::tool_call);
    CHECK(first.index == 0);
    CHECK(first.id == c.id);
    CHECK(first.name == "get_weather");
    CHECK(json::parse(first.text) == json{{"city", "Paris"}});  // one fragment: the whole args
    const json whole = {
        {"candidates",
         {{{"content",
            {{"parts",
              {{{"functionCall", {{"name", "get_weather"}, {"args", {{"city", "Paris"}}}}}, {"thoughtSignature", "CiQB0e2Kb2sig"}},
               {{"functionCall", {{"name", "get_time"}, {"args", json::object()}}}}}},
             {"role", "model"}}},
           {"finishReason", "STOP"}}}},
        {"usageMetadata", {{"promptTokenCount", 30}, {"candidatesTokenCount", 10}, {"thoughtsTokenCount", 5}}},
        {"modelVersion", "gemini-2.5-flash"}};
    same_answer(*o.answer, g.decode(plain(), ok(whole.dump())).value(), /*ids=*/false);
    CHECK(decode_whole(g.stream_decoder(plain()), bytes).answer->tool_calls[0].id == c.id);  // stable
}

TEST_CASE("Gemini stream: thought summaries skipped, the text part's signature kept", "[sse][gemini]") {
    const Gemini g = gemini();
    const Outcome o = decode_whole(g.stream_decoder(plain()), fixture("gemini/thought.sse"));
    INFO(describe(o));
    REQUIRE(o.answer);
    CHECK(text_of(o) == "Hi!");
    CHECK(o.answer->signature.value == "Ct0Bsigtext");
    CHECK(o.answer->signature.belongs_to("gemini", "gemini-2.5-flash"));
}

TEST_CASE("Gemini stream: structured output, policy stops, error chunks, no finishReason", "[sse][gemini]") {
    const Gemini g = gemini();
    const Outcome s = decode_whole(g.stream_decoder(structured()), fixture("gemini/structured.sse"));
    REQUIRE(s.answer);
    CHECK(s.answer->json == json{{"invoice", "INV-7"}, {"total", 42.5}});
    const Outcome t = decode_whole(g.stream_decoder(structured()), fixture("gemini/structured_truncated.sse"));
    REQUIRE(t.failure);
    CHECK(t.failure->reason == Reason::malformed_response);
    CHECK_THAT(t.failure->message, Catch::Contains("truncated"));

    const Outcome b = decode_whole(g.stream_decoder(plain()), fixture("gemini/prompt_blocked.sse"));
    REQUIRE(b.failure);
    CHECK(b.failed_in_feed);
    CHECK(b.failure->kind == FailureKind::policy);
    CHECK(b.failure->category == "PROHIBITED_CONTENT");

    const Outcome f = decode_whole(g.stream_decoder(plain()), fixture("gemini/safety_finish.sse"));
    REQUIRE(f.failure);
    CHECK(f.failure->kind == FailureKind::policy);
    CHECK(f.failure->reason == Reason::content_filter);
    CHECK(f.failure->category == "SAFETY");
    CHECK(text_of(f) == "Here is");

    const Outcome e = decode_whole(g.stream_decoder(plain()), fixture("gemini/error_rate_limit.sse"));
    REQUIRE(e.failure);
    CHECK(e.failure->reason == Reason::rate_limited);
    CHECK(e.failure->retry_after == std::chrono::milliseconds(12000));  // RetryInfo, as in an error body
    CHECK(e.failure->provider_code == "RESOURCE_EXHAUSTED");
    const Outcome u = decode_whole(g.stream_decoder(plain()), fixture("gemini/error_unavailable.sse"));
    REQUIRE(u.failure);
    CHECK(u.failure->reason == Reason::overloaded);

    const Outcome n = decode_whole(g.stream_decoder(plain()), fixture("gemini/no_finish.sse"));
    REQUIRE(n.failure);
    CHECK(!n.failed_in_feed);
    CHECK(n.failure->reason == Reason::malformed_response);
    CHECK_THAT(n.failure->message, Catch::Contains("no chunk carried a finishReason"));

    const Outcome m = decode_whole(g.stream_decoder(plain()), fixture("gemini/malformed.sse"));
    REQUIRE(m.failure);
    CHECK(m.failure->reason == Reason::malformed_response);
}

TEST_CASE("Gemini stream: every split decodes like the whole stream", "[sse][gemini][splits]") {
    const Gemini g = gemini();
    check_split_invariance("gemini", [&](const ChatRequest& r) { return g.stream_decoder(r); });
}

TEST_CASE("decoders: a decoder moved mid-stream carries on", "[sse][decoder]") {
    const std::string bytes = fixture("anthropic/tool_use.sse");
    // The concrete decoder (adapters hand it out boxed), to read its byte count.
    detail::stream::AnthropicStream d("claude-sonnet-4-5", "sk-ant-test", plain(), StreamLimits{});
    std::vector<StreamDelta> out;
    REQUIRE(!d.feed(std::string_view(bytes).substr(0, bytes.size() / 2), out));
    auto moved = std::move(d);
    REQUIRE(!moved.feed(std::string_view(bytes).substr(bytes.size() / 2), out));
    const Result<ChatResponse> r = moved.end();
    REQUIRE(r.has_value());
    CHECK(r->tool_calls.size() == 2);
    CHECK(moved.bytes() == bytes.size());
}

TEST_CASE("decoders: garbage never throws, and an oversized event is response_too_large", "[sse][garbage]") {
    std::mt19937 rng(11);
    const std::string alphabet = "data: {}[]\"\\:,\n\r event error [DONE] choices delta content 0123456789 abc\xC3\xA9\xFF";
    for (int round = 0; round < 300; ++round) {
        std::uniform_int_distribution<std::size_t> len(0, 400), pick(0, alphabet.size() - 1);
        std::string bytes;
        for (std::size_t i = len(rng); i > 0; --i) bytes += alphabet[pick(rng)];
        (void)decode_whole(openai().stream_decoder(plain()), bytes);
        (void)decode_whole(anthropic().stream_decoder(structured()), bytes);
        (void)decode_whole(gemini().stream_decoder(plain()), bytes);
    }
    auto d = openai().stream_decoder(plain(), StreamLimits{.max_event_bytes = 256, .max_total_bytes = 1 << 20});
    std::vector<StreamDelta> out;
    const auto f = d.feed("data: " + std::string(1000, 'x'), out);
    REQUIRE(f);
    CHECK(f->reason == Reason::response_too_large);
    auto whole = gemini().stream_decoder(plain(), StreamLimits{.max_event_bytes = 1 << 20, .max_total_bytes = 100});
    const Outcome o = decode_whole(std::move(whole), fixture("gemini/text.sse"));
    REQUIRE(o.failure);
    CHECK(o.failure->reason == Reason::response_too_large);
}

// ======================================================================= requests

TEST_CASE("encode_stream: the streaming request of each adapter", "[sse][encode]") {
    const ChatRequest req = plain();
    SECTION("OpenAI, Azure and compatible servers ask for events and the usage chunk") {
        const auto azure = OpenAICompatible::azure({.resource = "acme", .deployment = "gpt-4o", .api_key = kKey});
        const OpenAICompatible local{{.base_url = "http://127.0.0.1:11434/v1", .model = "llama3.1"}};
        for (const auto& [whole, streamed] :
             {std::pair{openai().encode(req), openai().encode_stream(req)}, std::pair{azure.encode(req), azure.encode_stream(req)},
              std::pair{local.encode(req), local.encode_stream(req)}}) {
            REQUIRE(streamed.has_value());
            json body = json::parse(streamed->body);
            CHECK(body["stream"] == true);
            CHECK(body["stream_options"] == json{{"include_usage", true}});
            body.erase("stream");
            body.erase("stream_options");
            CHECK(body == json::parse(whole->body));  // otherwise the same request
            CHECK(streamed->url == whole->url);
            REQUIRE(streamed->header("accept") != nullptr);
            CHECK(*streamed->header("accept") == "text/event-stream");
        }
    }
    SECTION("Anthropic adds stream: true") {
        const auto whole = anthropic().encode(req);
        const auto streamed = anthropic().encode_stream(req);
        json body = json::parse(streamed->body);
        CHECK(body["stream"] == true);
        body.erase("stream");
        CHECK(body == json::parse(whole->body));
        CHECK(*streamed->header("accept") == "text/event-stream");
        CHECK(*streamed->header("x-api-key") == kKey);
    }
    SECTION("Gemini calls streamGenerateContent with alt=sse") {
        const auto whole = gemini().encode(req);
        const auto streamed = gemini().encode_stream(req);
        CHECK(streamed->body == whole->body);
        CHECK(streamed->url ==
              "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
        CHECK(*streamed->header("accept") == "text/event-stream");
    }
    SECTION("what encode refuses, encode_stream refuses too") {
        ChatRequest empty;
        CHECK(!openai().encode_stream(empty).has_value());
        CHECK(!anthropic().encode_stream(empty).has_value());
        CHECK(!gemini().encode_stream(empty).has_value());
    }
    static_assert(StreamingAdapter<OpenAI> && StreamingAdapter<OpenAICompatible> && StreamingAdapter<Anthropic> &&
                  StreamingAdapter<Gemini>);
    static_assert(std::is_same_v<stream_decoder_t<Gemini>, StreamDecoderBox>);  // the concrete decoders stay inside
}

// ======================================================================= over real HTTP

TEST_CASE("mock streams: each format decodes into the answer the mock meant", "[sse][http]") {
    MockProvider mock;
    CurlTransport http;
    const OpenAI oai{{.model = "gpt-4o", .api_key = kKey, .base_url = mock.url("o") + "/v1"}};
    const auto azure = OpenAICompatible::azure({.base_url = mock.url("z"), .deployment = "gpt-4o-prod", .api_key = kKey});
    const OpenAICompatible local{{.base_url = mock.url("l") + "/v1", .model = "llama3.1"}};
    const Anthropic ant{{.model = "claude-sonnet-4-5", .api_key = kKey, .base_url = mock.url("a")}};
    const Gemini gem{{.model = "gemini-2.5-flash", .api_key = kKey, .base_url = mock.url("g")}};
    const std::string text = "Streaming over loopback, piece by piece. ✓ done";

    SECTION("plain text, in ~8-byte pieces, with usage and finish") {
        for (const char* r : {"o", "z", "l", "a", "g"}) mock.route(r).then(Fault::ok(text));
        for (const Outcome& o : {stream_through(http, oai, plain()), stream_through(http, azure, plain()),
                                 stream_through(http, local, plain()), stream_through(http, ant, plain()),
                                 stream_through(http, gem, plain())}) {
            INFO(describe(o));
            REQUIRE(o.answer);
            CHECK(o.answer->text == text);
            CHECK(text_of(o) == text);
            CHECK(count_of(o, StreamDelta::Kind::text) == 7);  // 49 bytes in pieces of 8 (the ✓ kept whole)
            CHECK(o.answer->finish_reason == FinishReason::stop);
            CHECK(o.answer->usage.input_tokens > 0);
            CHECK(o.answer->usage.output_tokens > 0);
            CHECK(count_of(o, StreamDelta::Kind::finish) == 1);
        }
        CHECK(mock.route("o").last_request()->json()["stream"] == true);
        CHECK(mock.last_request_at("/g/v1beta/models/gemini-2.5-flash:streamGenerateContent")->query == "alt=sse");
    }
    SECTION("the streamed answer is the one the mock gives whole") {
        const json answer = {{"invoice", "INV-9"}, {"total", 7.25}};
        const auto sreq = [] {
            ChatRequest r = structured();
            r.schema_name = "invoice";
            return r;
        }();
        for (const char* r : {"o", "a", "g"}) mock.route(r).then(Fault::ok_json(answer), 2);
        const auto check = [&](const auto& adapter) {
            const Outcome s = stream_through(http, adapter, sreq);
            INFO(describe(s));
            REQUIRE(s.answer);
            CHECK(s.answer->json == answer);
            CHECK(count_of(s, StreamDelta::Kind::tool_call) == 0);  // Anthropic's forced tool streams as text
            CHECK(json::parse(text_of(s)) == answer);
            auto call = adapter.encode(sreq);
            auto res = http.send(*call, Deadline{});
            REQUIRE(res.has_value());
            const Result<ChatResponse> whole = adapter.decode(sreq, *res);
            REQUIRE(whole.has_value());
            CHECK(s.answer->json == whole->json);
            CHECK(s.answer->text == whole->text);
            CHECK(s.answer->finish_reason == whole->finish_reason);
            CHECK(s.answer->model == whole->model);
        };
        check(oai);
        check(ant);
        check(gem);
    }
    SECTION("tool calls in fragments, Gemini's signed call accepted back by the mock") {
        const json args = {{"city", "Paris"}, {"unit", "celsius"}};
        for (const char* r : {"o", "a", "g"}) mock.route(r).then(Fault::tool_call("get_weather", args));
        for (const Outcome& o : {stream_through(http, oai, plain()), stream_through(http, ant, plain()),
                                 stream_through(http, gem, plain())}) {
            INFO(describe(o));
            REQUIRE(o.answer);
            REQUIRE(o.answer->tool_calls.size() == 1);
            CHECK(o.answer->tool_calls[0].name == "get_weather");
            CHECK(o.answer->tool_calls[0].arguments == args);
            CHECK(o.answer->finish_reason == FinishReason::tool_calls);
            CHECK(!o.deltas.empty());
        }
        // Gemini 3: the streamed call's signature is one the mock issued; the next turn is accepted.
        const Gemini g3{{.model = "gemini-3-pro-preview", .api_key = kKey, .base_url = mock.url("g3")}};
        mock.route("g3").then(Fault::tool_call("get_weather", args)).then(Fault::ok("21 degrees"));
        ChatRequest req = plain();
        req.tools = {Tool{"get_weather", "", json{{"type", "object"}}}};
        const Outcome first = stream_through(http, g3, req);
        REQUIRE(first.answer);
        CHECK(first.answer->tool_calls.at(0).signature.value.rfind("sig-gemini-gemini-3-pro-preview-", 0) == 0);
        req.messages.push_back(first.answer->message());
        req.messages.push_back(tool_result(first.answer->tool_calls[0].id, "get_weather", R"({"temp_c":21})"));
        const Outcome second = stream_through(http, g3, req);
        INFO(describe(second));
        REQUIRE(second.answer);
        CHECK(second.answer->text == "21 degrees");
    }
    SECTION("Anthropic thinking streams as thinking_delta and signature_delta, and goes back accepted") {
        mock.route("a").then(Fault::ok("Hello.").with_thinking("Greet them back.")).then(Fault::ok("Again."));
        ChatRequest req = plain();
        const Outcome o = stream_through(http, ant, req);
        INFO(describe(o));
        REQUIRE(o.answer);
        REQUIRE(o.answer->thinking.size() == 1);
        CHECK(o.answer->thinking[0].text == "Greet them back.");
        CHECK(o.answer->thinking[0].signature.value.rfind("sig-claude-claude-sonnet-4-5-", 0) == 0);
        CHECK(text_of(o) == "Hello.");
        req.messages.push_back(o.answer->message());
        req.messages.push_back(user("And again?"));
        const Outcome again = stream_through(http, ant, req);
        REQUIRE(again.answer);  // the mock checked the thinking block's signature
    }
    SECTION("policy signals arrive in the stream") {
        mock.route("o").then(Fault::refusal("No."));
        mock.route("a").then(Fault::refusal("Not this."));
        mock.route("g").then(Fault::safety_block()).then(Fault::content_filter());
        const Outcome r1 = stream_through(http, oai, plain());
        REQUIRE(r1.failure);
        CHECK(r1.failure->reason == Reason::refusal);
        CHECK(r1.failure->message == "No.");
        const Outcome r2 = stream_through(http, ant, plain());
        REQUIRE(r2.failure);
        CHECK(r2.failure->reason == Reason::refusal);
        CHECK(r2.failure->message == "Not this.");
        for (const char* category : {"SAFETY", "SAFETY"}) {
            const Outcome g = stream_through(http, gem, plain());
            REQUIRE(g.failure);
            CHECK(g.failure->kind == FailureKind::policy);
            CHECK(g.failure->category == category);
        }
        // Azure's prompt filter is a 400 even for a streamed request; its classification stands.
        mock.route("z").then(Fault::content_filter());
        auto res = http.send(*azure.encode_stream(plain()), Deadline{});
        REQUIRE(res.has_value());
        CHECK(res->status == 400);
        CHECK(classify_response(*res, std::chrono::system_clock::now(), azure).kind == FailureKind::policy);
    }
    SECTION("error statuses answer the ordinary error response, not a stream") {
        mock.route("a").then(Fault::status(529));
        auto res = http.send(*ant.encode_stream(plain()), Deadline{});
        REQUIRE(res.has_value());
        CHECK(res->status == 529);
        CHECK(res->header("content-type")->find("application/json") == 0);
        CHECK(classify_response(*res, std::chrono::system_clock::now(), ant).reason == Reason::overloaded);
    }
    SECTION("streams keep the connection alive, and provider rules apply to streaming requests") {
        for (int i = 0; i < 3; ++i) {
            const Outcome o = stream_through(http, oai, plain());
            REQUIRE(o.answer);
        }
        CHECK(mock.connections() == 1);
        ChatRequest unanswered = plain();
        unanswered.messages.push_back(assistant("", {ToolCall{"call_1", "f", json::object()}}));
        unanswered.messages.push_back(user("and?"));
        auto res = http.send(*oai.encode_stream(unanswered), Deadline{});
        REQUIRE(res.has_value());
        CHECK(res->status == 400);  // the tool call was never answered, streamed or not
        const RawReply no_sse = raw_post(mock, "/g/v1beta/models/gemini-2.5-flash:streamGenerateContent", gemini_body,
                                         2000ms, "x-goog-api-key: k\r\n");
        CHECK(no_sse.head.rfind("HTTP/1.1 400", 0) == 0);  // the JSON-array form is not served
    }
}

TEST_CASE("mock stream modifiers do on the wire what they promise", "[sse][http][faults]") {
    MockProvider mock;
    CurlTransport http;
    const OpenAI oai{{.model = "gpt-4o", .api_key = kKey, .base_url = mock.url("o") + "/v1"}};
    const Anthropic ant{{.model = "claude-sonnet-4-5", .api_key = kKey, .base_url = mock.url("a")}};
    const Gemini gem{{.model = "gemini-2.5-flash", .api_key = kKey, .base_url = mock.url("g")}};
    const std::string text = "abcdefghijklmnopqrstuvwxyz";  // 26 bytes
    auto send_stream = [&](const auto& adapter, Deadline d) { return http.send(*adapter.encode_stream(plain()), d); };

    SECTION("pieces: the size of each text delta") {
        mock.route("o").then(Fault::ok(text).pieces(5));
        mock.route("a").then(Fault::ok(text).pieces(1));
        mock.route("g").then(Fault::ok(text).pieces(100));
        CHECK(count_of(stream_through(http, oai, plain()), StreamDelta::Kind::text) == 6);
        CHECK(count_of(stream_through(http, ant, plain()), StreamDelta::Kind::text) == 26);
        CHECK(count_of(stream_through(http, gem, plain()), StreamDelta::Kind::text) == 1);
    }
    SECTION("paced: a pause before every event") {
        mock.route("g").then(Fault::ok("0123456789").pieces(5).paced(40ms));  // 2 content + 1 final chunk
        const auto t0 = std::chrono::steady_clock::now();
        const Outcome o = stream_through(http, gem, plain());
        CHECK(std::chrono::steady_clock::now() - t0 >= 120ms);
        CHECK(o.answer);
    }
    SECTION("stall_first: headers, then nothing; a short transport timeout times out") {
        mock.route("o").then(Fault::ok(text).stall_first()).then(Fault::ok(text).stall_first(150ms));
        const auto t0 = std::chrono::steady_clock::now();
        Result<HttpResponse> r = send_stream(oai, within(300ms));
        REQUIRE(!r.has_value());
        CHECK(r.error().reason == Reason::timeout);
        CHECK(std::chrono::steady_clock::now() - t0 < 2s);
        const auto t1 = std::chrono::steady_clock::now();
        const Outcome o = stream_through(http, oai, plain());  // a finite stall, then the whole answer
        CHECK(std::chrono::steady_clock::now() - t1 >= 150ms);
        REQUIRE(o.answer);
        CHECK(o.answer->text == text);
        const RawReply raw = raw_post(mock, "/o/v1/chat/completions", openai_stream_body, 300ms);
        CHECK(raw.head.rfind("HTTP/1.1 200", 0) == 0);  // (the script is empty now: a plain ok)
    }
    SECTION("stall_after: a stall mid-stream after n content events") {
        mock.route("a").then(Fault::ok(text).stall_after(2)).then(Fault::ok(text).stall_after(2));
        Result<HttpResponse> r = send_stream(ant, within(300ms));
        REQUIRE(!r.has_value());
        CHECK(r.error().reason == Reason::timeout);
        const RawReply raw = raw_post(mock, "/a/v1/messages", anthropic_stream_body, 300ms,
                                      "x-api-key: k\r\nanthropic-version: 2023-06-01\r\n");
        CHECK(!raw.closed);
        CHECK(!raw.chunked_end);
        const Outcome partial = decode_whole(ant.stream_decoder(plain()), raw.body);
        CHECK(count_of(partial, StreamDelta::Kind::text) == 2);  // exactly two, then silence
        CHECK(text_of(partial) == "abcdefghijklmnop");
    }
    SECTION("cut_after: the connection closes abruptly after n content events") {
        mock.route("o").then(Fault::ok(text).cut_after(1)).then(Fault::ok(text).cut_after(2));
        Result<HttpResponse> r = send_stream(oai, Deadline{});
        REQUIRE(!r.has_value());
        CHECK(r.error().reason == Reason::malformed_response);  // curl: a truncated chunked body
        const RawReply raw = raw_post(mock, "/o/v1/chat/completions", openai_stream_body);
        CHECK(raw.closed);
        CHECK(!raw.chunked_end);
        const Outcome o = decode_whole(oai.stream_decoder(plain()), raw.body);
        CHECK(text_of(o) == "abcdefghijklmnop");
        REQUIRE(o.failure);
        CHECK_THAT(o.failure->message, Catch::Contains("stream ended before its end"));
    }
    SECTION("error_after: the provider's error event after n content events, then the end") {
        mock.route("o").then(Fault::ok(text).error_after(1));
        mock.route("a").then(Fault::ok(text).error_after(2));
        mock.route("g").then(Fault::ok(text).error_after(0));
        const Outcome o = stream_through(http, oai, plain());
        REQUIRE(o.failure);
        CHECK(o.failure->reason == Reason::server_error);
        CHECK(text_of(o) == "abcdefgh");
        const Outcome a = stream_through(http, ant, plain());
        REQUIRE(a.failure);
        CHECK(a.failure->reason == Reason::overloaded);
        CHECK(a.failure->provider_code == "overloaded_error");
        CHECK(text_of(a) == "abcdefghijklmnop");
        const Outcome g = stream_through(http, gem, plain());
        REQUIRE(g.failure);
        CHECK(g.failure->reason == Reason::overloaded);
        CHECK(g.failure->provider_code == "UNAVAILABLE");
        CHECK(g.deltas.empty());
        CHECK(mock.connections() == 1);  // the stream ended properly: the connection was kept
        mock.route("a").then(Fault::ok(text).error_after(0).with_code("rate_limit_error"));
        CHECK(stream_through(http, ant, plain()).failure->reason == Reason::rate_limited);
    }
    SECTION("without_terminator: a clean end without the answer's end") {
        mock.route("o").then(Fault::ok(text).without_terminator());
        mock.route("a").then(Fault::tool_call("f", {{"x", 1}}).without_terminator());
        mock.route("g").then(Fault::ok(text).without_terminator());
        for (const Outcome& o : {stream_through(http, oai, plain()), stream_through(http, ant, plain()),
                                 stream_through(http, gem, plain())}) {
            INFO(describe(o));
            REQUIRE(o.failure);
            CHECK(!o.failed_in_feed);
            CHECK(o.failure->reason == Reason::malformed_response);
            CHECK_THAT(o.failure->message, Catch::Contains("stream ended before its end"));
            CHECK(count_of(o, StreamDelta::Kind::finish) == 0);
            CHECK(!o.deltas.empty());
        }
        const RawReply raw = raw_post(mock, "/o/v1/chat/completions", openai_stream_body);
        CHECK(raw.chunked_end);
    }
    SECTION("malformed_after: a data line that is not JSON") {
        mock.route("o").then(Fault::ok(text).malformed_after(1));
        mock.route("a").then(Fault::ok(text).malformed_after(0));
        mock.route("g").then(Fault::ok(text).malformed_after(3));
        for (const Outcome& o : {stream_through(http, oai, plain()), stream_through(http, ant, plain()),
                                 stream_through(http, gem, plain())}) {
            INFO(describe(o));
            REQUIRE(o.failure);
            CHECK(o.failed_in_feed);
            CHECK(o.failure->reason == Reason::malformed_response);
            CHECK_THAT(o.failure->message, Catch::Contains("malformed server-sent event JSON"));
        }
    }
    SECTION("a chunked text/event-stream reply as the real APIs send it") {
        mock.route("o").then(Fault::ok("hi"));
        const RawReply raw = raw_post(mock, "/o/v1/chat/completions", openai_stream_body);
        CHECK(raw.head.rfind("HTTP/1.1 200 OK", 0) == 0);
        CHECK(raw.head.find("Content-Type: text/event-stream") != std::string::npos);
        CHECK(raw.head.find("Transfer-Encoding: chunked") != std::string::npos);
        CHECK(raw.head.find("Content-Length") == std::string::npos);
        CHECK(raw.chunked_end);
        CHECK(raw.body.find("data: [DONE]\n\n") == raw.body.size() - 14);
        CHECK(raw.body.find(R"("usage":{"completion_tokens")") != std::string::npos);  // include_usage was asked
    }
}

// ---- the fast path for text chunks (detail/stream/scan.hpp) ------------------------------------

namespace {

detail::stream::OpenAIStream openai_decoder(bool scan, const ChatRequest& req) {
    detail::wire::OpenAIWire w;
    w.provider = "openai";
    w.model = "gpt-4o";
    w.secret = kKey;
    detail::stream::OpenAIStream d(w, req);
    d.scan(scan);
    return d;
}

detail::stream::AnthropicStream anthropic_decoder(bool scan, const ChatRequest& req) {
    detail::stream::AnthropicStream d("claude-sonnet-4-5", kKey, req);
    d.scan(scan);
    return d;
}

/// Decodes `body` with the fast path on and off: the same deltas, answer or failure, and
/// how many events the fast path read.
/// `remembered`: how many of those it read by comparing bytes with the event before.
template <class Make>
std::size_t same_both_ways(Make make, std::string_view body, std::size_t* remembered = nullptr) {
    auto fast = make(true);
    auto dom = make(false);
    std::vector<StreamDelta> a, b;
    const auto fa = fast.feed(body, a);
    const auto fb = dom.feed(body, b);
    const std::size_t scanned = fast.scanned();
    if (remembered) *remembered = fast.remembered();
    Outcome oa, ob;
    oa.deltas = a;
    ob.deltas = b;
    oa.failure = fa;
    ob.failure = fb;
    oa.failed_in_feed = fa.has_value();
    ob.failed_in_feed = fb.has_value();
    if (!fa) {
        Result<ChatResponse> r = fast.end();
        if (r) oa.answer = *r;
        else oa.failure = r.error();
    }
    if (!fb) {
        Result<ChatResponse> r = dom.end();
        if (r) ob.answer = *r;
        else ob.failure = r.error();
    }
    INFO(body);
    CHECK(describe(oa) == describe(ob));
    CHECK(dom.scanned() == 0);
    return scanned;
}

std::string openai_stream_with(std::string_view chunk) {
    return "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"model\":\"gpt-4o\"}\n\n"
           "data: " + std::string(chunk) + "\n\n"
           "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"model\":\"gpt-4o\"}\n\n"
           "data: [DONE]\n\n";
}

std::string anthropic_stream_with(std::string_view delta) {
    return "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\","
           "\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
           "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
           "{\"type\":\"text\",\"text\":\"\"}}\n\n"
           "event: content_block_delta\ndata: " + std::string(delta) + "\n\n"
           "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
           "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
           "\"usage\":{\"output_tokens\":5}}\n\n"
           "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
}

/// JSON texts the fast path must read exactly as nlohmann::json does, or leave to it: the
/// grammar's corners, inside a member both decoders skip (`"x": <value>`).
const std::vector<std::string> kSkippedValues = {
    "0", "-0", "1.5", "-1.5E-3", "1e5", "1E+05", "123456789012345678901234567890", "1e-400", "1e300", "true", "false", "null",
    "\"\"", "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "\"\\u00e9\\ud83d\\ude00\"", "[]", "{}", "[1,[2,{\"a\":[]}]]",
    "{\"k\\u0065y\":1}", "\"h\xC3\xA9llo \xE6\x97\xA5 \xF0\x9F\x98\x80\"",
    // not JSON: nlohmann::json rejects each, so the chunk is malformed either way
    "1e400", "-1E+309", "1" + std::string(400, '0'), "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "\"\\x\"", "\"\\u12\"", "\"\\ud83d\"", "\"\\ude00\"",
    "\"\\ud83dx\"", "\"\\ud83d\\u0041\"", "\"a\tb\"", "\"\xC3\x28\"", "\"\xC0\xAF\"", "\"\xED\xA0\x80\"",
    "\"\xF4\x90\x80\x80\"", "\"\xE0\x80\xAF\"", "\"\xF0\x80\x80\xAF\"", "\"\xFF\"", "\"\xC3\"", "[1,]", "[1 2]",
    "{\"a\" 1}", "{\"a\":1,}", "{,}", "{\"a\":}", "[", "{", "\"open", "1 2", "NaN", "Infinity"};

}  // namespace

TEST_CASE("OpenAI stream: text chunks are read without a DOM, exactly as through it", "[sse][openai][scan]") {
    const ChatRequest req = plain();
    const auto make = [&](bool scan) { return openai_decoder(scan, req); };
    const auto common = [](std::string_view inner) {
        return R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp",)"
               R"("choices":[{"index":0,"delta":{"content":")" + std::string(inner) + R"("},"logprobs":null,"finish_reason":null}]})";
    };
    SECTION("the common shapes are read by the fast path") {
        // role chunk + one text chunk + the finish chunk
        CHECK(same_both_ways(make, openai_stream_with(common("Hello"))) == 3);
        CHECK(same_both_ways(make, openai_stream_with(common(R"(a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00)"))) == 3);
        CHECK(same_both_ways(make, openai_stream_with(common("h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80"))) == 3);
        CHECK(same_both_ways(make, openai_stream_with(
                                       " {\t\"choices\" : [ { \"delta\" : { \"content\" : \"x\" } , \"index\" : 0 } ] ,"
                                       "\"usage\":null,\"error\":null,\"obfuscation\":\"Zx\"}\t ")) == 3);
        CHECK(same_both_ways(make, openai_stream_with(R"({"choices":[{"delta":{"content":null,"refusal":null,"tool_calls":null}}]})")) == 3);
        CHECK(same_both_ways(make, openai_stream_with(R"({"choices":[]})")) == 3);
        // the text and the finish_reason in one chunk; a second finish_reason (ignored either way)
        CHECK(same_both_ways(make, openai_stream_with(R"({"choices":[{"delta":{"content":"x"},"finish_reason":"length"}]})")) == 3);
        CHECK(same_both_ways(make, openai_stream_with(R"({"choices":[{"delta":{"content":"x"},"finish_reason":""}]})")) == 3);
        // filter results beside a finish that is not content_filter: read by the fast path, which
        // passes none on (the policy reads them only for a content_filter finish)
        CHECK(same_both_ways(make, openai_stream_with(R"({"choices":[{"delta":{},"finish_reason":"stop",)"
                                                      R"("content_filter_results":{"hate":{"filtered":true,"severity":"high"}}}]})")) == 3);
        // every recorded plain-text stream: all but the usage and [DONE] events
        const std::string text = fixture("openai/text.sse");
        CHECK(same_both_ways(make, text) > 0);
    }
    SECTION("what the fast path does not read exactly is left to the DOM, with the same result") {
        for (const std::string& chunk : {
                 // duplicates: nlohmann keeps the last
                 std::string(R"({"choices":[{"delta":{"content":"a","content":"b"}}]})"),
                 std::string(R"({"choices":[{"delta":{"content":"a"}}],"choices":[{"delta":{"content":"b"}}]})"),
                 std::string(R"({"model":"m1","model":"m2","choices":[{"delta":{"content":"a"}}]})"),
                 std::string(R"({"choices":[{"index":0,"index":1,"delta":{"content":"a"}}]})"),
                 // escaped keys name the same members
                 std::string(R"({"choices":[{"delta":{"con\u0074ent":"x"}}]})"),
                 std::string(R"({"ch\u006fices":[{"delta":{"content":"x"}}]})"),
                 // other choices, other index forms
                 std::string(R"({"choices":[{"index":1,"delta":{"content":"x"}}]})"),
                 std::string(R"({"choices":[{"index":"0","delta":{"content":"x"}}]})"),
                 std::string(R"({"choices":[{"index":0.0,"delta":{"content":"x"}}]})"),
                 std::string(R"({"choices":[{"index":-0,"delta":{"content":"x"}}]})"),
                 std::string(R"({"choices":[{"index":0,"delta":{"content":"x"}},{"index":1,"delta":{"content":"y"}}]})"),
                 std::string(R"({"choices":[{"index":0,"delta":{"content":"x"}},{"delta":{"content":"y"}}]})"),
                 // other content forms and the members that matter
                 std::string(R"({"choices":[{"delta":{"content":5}}]})"),
                 std::string(R"({"choices":[{"delta":{"content":[{"type":"text","text":"p"}]}}]})"),
                 std::string(R"({"choices":[{"delta":{"content":"x","refusal":"no"}}]})"),
                 std::string(R"({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":""}}]}}]})"),
                 // policy signals: the content filter (with the categories only the DOM path reads)
                 std::string(R"({"choices":[{"delta":{},"finish_reason":"content_filter","content_filter_results":)"
                             R"({"hate":{"filtered":true,"severity":"high"}}}]})"),
                 std::string(R"({"choices":[{"delta":{"content":"x"},"finish_reason":5}]})"),
                 std::string(R"({"choices":[{"delta":{"content":"x"},"finish_reason":"stop","finish_reason":null}]})"),
                 std::string(R"({"choices":[{"delta":"x"}]})"),
                 std::string(R"({"choices":{"delta":{"content":"x"}}})"),
                 std::string(R"({"choices":["x"]})"),
                 std::string(R"({"usage":{"prompt_tokens":3,"completion_tokens":4},"choices":[{"delta":{"content":"x"}}]})"),
                 std::string(R"({"usage":7,"choices":[{"delta":{"content":"x"}}]})"),
                 std::string(R"({"error":{"message":"overloaded","type":"server_error"}})"),
                 std::string(R"({"model":5,"choices":[{"delta":{"content":"x"}}]})"),
                 // not a JSON object, trailing bytes
                 std::string(R"([{"choices":[]}])"), std::string(R"("text")"), std::string("{}x"), std::string("{} {}"),
                 std::string(R"({"choices":[{"delta":{"content":"x"}}]}})"),
                 // nesting: deeper than the scanner reads, deeper than the DOM accepts
                 R"({"x":)" + std::string(40, '[') + std::string(40, ']') + R"(,"choices":[{"delta":{"content":"x"}}]})",
                 R"({"x":)" + std::string(600, '[') + std::string(600, ']') + R"(,"choices":[{"delta":{"content":"x"}}]})",
             })
            same_both_ways(make, openai_stream_with(chunk));
        for (const std::string& value : kSkippedValues) {
            same_both_ways(make, openai_stream_with(R"({"x":)" + value + R"(,"choices":[{"delta":{"content":"t"}}]})"));
            same_both_ways(make, openai_stream_with(R"({"choices":[{"delta":{"content":)" + value + "}}]}"));
            same_both_ways(make, openai_stream_with(R"({"choices":[{"delta":{},"finish_reason":)" + value + "}]}"));
        }
        // A refusal came before the finish chunk: the finish is a policy stop, through the DOM.
        const std::string refused =
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"I can't help with that.\"}}]}\n\n"
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
            "data: [DONE]\n\n";
        CHECK(same_both_ways(make, refused) == 0);
    }
}

TEST_CASE("Anthropic stream: text deltas are read without a DOM, exactly as through it", "[sse][anthropic][scan]") {
    const ChatRequest req = plain();
    const auto make = [&](bool scan) { return anthropic_decoder(scan, req); };
    SECTION("the common shapes are read by the fast path") {
        // Every event of a plain answer is read without a DOM: message_start, the text block's
        // start, the delta, the block's stop, message_delta and message_stop.
        CHECK(same_both_ways(make, anthropic_stream_with(
                                       R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})")) == 6);
        CHECK(same_both_ways(make, anthropic_stream_with(
                                       R"({"delta":{"text":"\u00e9\n","type":"text_delta"},"index":0,"type":"content_block_delta"})")) == 6);
        CHECK(same_both_ways(make, anthropic_stream_with(
                                       R"({"type":"content_block_delta","index":0,"delta":{"type":"text\u005fdelta","text":"x"}})")) == 6);
        CHECK(same_both_ways(make, fixture("anthropic/text.sse")) > 0);
    }
    SECTION("what the fast path does not read exactly is left to the DOM, with the same result") {
        for (const std::string& delta : {
                 std::string(R"({"type":"content_block_delta","index":5,"delta":{"type":"text_delta","text":"x"}})"),
                 std::string(R"({"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"x"}})"),
                 std::string(R"({"type":"content_block_delta","index":"0","delta":{"type":"text_delta","text":"x"}})"),
                 std::string(R"({"type":"content_block_delta","index":0,"index":1,"delta":{"type":"text_delta","text":"x"}})"),
                 std::string(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","text":"b"}})"),
                 std::string(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","te\u0078t":"x"}})"),
                 std::string(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}})"),
                 std::string(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":null}})"),
                 std::string(R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}})"),
                 std::string(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"},"delta":{}})"),
                 std::string(R"({"type":"content_block_delta","index":0,"delta":"x"})"),
                 std::string(R"(["x"])"),
                 std::string(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}} x)"),
             })
            same_both_ways(make, anthropic_stream_with(delta));
        for (const std::string& value : kSkippedValues) {
            same_both_ways(make, anthropic_stream_with(R"({"type":"content_block_delta","x":)" + value +
                                                       R"(,"index":0,"delta":{"type":"text_delta","text":"t"}})"));
            same_both_ways(make, anthropic_stream_with(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":)" +
                                                       value + "}}"));
        }
    }
    SECTION("the events that close the answer: read by the fast path, or left to the DOM, with the same result") {
        const std::string delta = R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})";
        const auto with = [&](const std::string& stop, const std::string& message_delta, const std::string& message_stop) {
            std::string body = anthropic_stream_with(delta);
            const std::string old_stop = R"({"type":"content_block_stop","index":0})";
            const std::string old_delta = R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}})";
            const std::string old_end = R"({"type":"message_stop"})";
            body.replace(body.find(old_stop), old_stop.size(), stop);
            body.replace(body.find(old_delta), old_delta.size(), message_delta);
            body.replace(body.find(old_end), old_end.size(), message_stop);
            return body;
        };
        const std::string stop = R"({"type":"content_block_stop","index":0})";
        const std::string end = R"({"type":"message_stop"})";
        // Read by the fast path: every usage count (the input summed with the cache counts),
        // a stop_sequence, extra members, no usage or no stop reason.
        for (const std::string& md : {
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"input_tokens":3,)"
                             R"("cache_creation_input_tokens":4,"cache_read_input_tokens":5,"output_tokens":6,"server_tool_use":null}})"),
                 std::string(R"({"usage":{"cache_read_input_tokens":5},"delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},"x":[1]})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"tool_use"}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":2}})"),
                 std::string(R"({"type":"message_delta","delta":{},"usage":{}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":""}})"),
             })
            CHECK(same_both_ways(make, with(stop, md, end)) == 6);
        // A stop reason that is a failure ends the stream there: message_stop is never read.
        for (const std::string& md : {
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"refusal"},"usage":{"output_tokens":2}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"model_context_window_exceeded"}})"),
             })
            CHECK(same_both_ways(make, with(stop, md, end)) == 5);
        CHECK(same_both_ways(make, with(R"({"index":0,"type":"content_block_stop","x":{"y":[]}})", R"({"delta":{"stop_reason":"end_turn"}})",
                                        R"( {"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3}} )")) == 6);
        // Left to the DOM (read there to the same deltas, answer or failure).
        for (const std::string& md : {
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"refusal","stop_details":{"category":"cyber","explanation":"no"}}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"refusal"},"stop_details":{"category":"cyber"}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":5},"usage":{"output_tokens":2}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_reason":"max_tokens"}})"),
                 std::string(R"({"type":"message_delta","delta":"x","usage":{"output_tokens":2}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":null})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":-1}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2.0}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":"2"}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1,"output_tokens":2}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":99999999999999999999}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"delta":{}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop\u005freason":"end_turn"}})"),
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":"end_turn"}} x)"),
                 std::string(R"(["message_delta"])"),
             })
            CHECK(same_both_ways(make, with(stop, md, end)) < 6);
        const std::string md = R"({"type":"message_delta","delta":{"stop_reason":"end_turn"}})";
        for (const std::string& bad : {std::string("[]"), std::string("{} x"), std::string("{"), std::string("null"),
                                       std::string("\"message_stop\"")}) {
            CHECK(same_both_ways(make, with(bad, md, end)) < 6);
            CHECK(same_both_ways(make, with(stop, md, bad)) < 6);
        }
        for (const std::string& value : kSkippedValues) {
            same_both_ways(make, with(R"({"type":"content_block_stop","x":)" + value + "}", md, end));
            same_both_ways(make, with(stop, R"({"type":"message_delta","x":)" + value + R"(,"delta":{"stop_reason":"end_turn"}})", end));
            same_both_ways(make, with(stop, R"({"type":"message_delta","delta":{"stop_reason":)" + value + "}}", end));
            same_both_ways(make, with(stop, R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":)" + value + "}}", end));
            same_both_ways(make, with(stop, md, R"({"type":"message_stop","x":)" + value + "}"));
        }
    }
    SECTION("message_start and a text block's start: read by the fast path, or left to the DOM, with the same result") {
        const std::string delta = R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})";
        const auto with = [&](const std::string& start, const std::string& block) {
            std::string body = anthropic_stream_with(delta);
            const std::string old_start = R"({"type":"message_start","message":{"model":"claude-sonnet-4-5","usage":{"input_tokens":3,"output_tokens":1}}})";
            const std::string old_block = R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})";
            body.replace(body.find(old_start), old_start.size(), start);
            body.replace(body.find(old_block), old_block.size(), block);
            return body;
        };
        const std::string block = R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})";
        // Read by the fast path (and the three closing events): usage with cache counts (summed into the input), extra members, text in the start.
        CHECK(same_both_ways(make, with(R"({"type":"message_start","message":{"id":"m","model":"claude-sonnet-4-5","content":[],)"
                                        R"("usage":{"input_tokens":3,"cache_creation_input_tokens":4,"cache_read_input_tokens":5,"output_tokens":1}}})",
                                        block)) == 6);
        CHECK(same_both_ways(make, with(R"({"message":{"usage":{"output_tokens":2}},"type":"message_start"})",
                                        R"({"content_block":{"citations":[],"text":"Pre","type":"text"},"index":0})")) == 6);
        // Left to the DOM (read there to the same deltas, answer or failure).
        for (const std::string& start : {
                 std::string(R"({"type":"message_start","message":{"model":7,"usage":{"input_tokens":3}}})"),
                 std::string(R"({"type":"message_start","message":{"model":"a","model":"b"}})"),
                 std::string(R"({"type":"message_start","message":{"model":"m","usage":{"input_tokens":-3,"output_tokens":1}}})"),
                 std::string(R"({"type":"message_start","message":{"model":"m","usage":{"input_tokens":2.5}}})"),
                 std::string(R"({"type":"message_start","message":{"model":"m","usage":{"input_tokens":99999999999999999999}}})"),
                 std::string(R"({"type":"message_start","message":{"model":"m","usage":{"input_tokens":1,"input_tokens":2}}})"),
                 std::string(R"({"type":"message_start","message":{"model":"m","usage":null}})"),
                 std::string(R"({"type":"message_start","message":"x"})"),
                 std::string(R"({"type":"message_start"})"),
                 std::string(R"({"type":"message_start","message":{},"message":{"model":"m"}})"),
                 std::string(R"({"type":"message_start","message":{"mod\u0065l":"m"}})"),
                 std::string(R"({"type":"message_start","message":{"model":"m"}} x)"),
                 std::string(R"([1])"),
             })
            CHECK(same_both_ways(make, with(start, block)) < 6);
        const std::string start = R"({"type":"message_start","message":{"model":"m","usage":{"input_tokens":3}}})";
        for (const std::string& b : {
                 std::string(R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}})"),
                 std::string(R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":null}})"),
                 std::string(R"({"type":"content_block_start","index":0,"content_block":{"text":"x"}})"),
                 std::string(R"({"type":"content_block_start","index":"0","content_block":{"type":"text","text":""}})"),
                 std::string(R"({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})"),
                 std::string(R"({"type":"content_block_start","content_block":{"type":"text","text":""}})"),
                 std::string(R"({"type":"content_block_start","index":0,"content_block":{"type":"text","type":"text"}})"),
                 std::string(R"({"type":"content_block_start","index":0,"content_block":"text"})"),
             })
            CHECK(same_both_ways(make, with(start, b)) < 6);
        for (const std::string& value : kSkippedValues) {
            same_both_ways(make, with(R"({"type":"message_start","x":)" + value + R"(,"message":{"model":"m"}})", block));
            same_both_ways(make, with(start, R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":)" + value + "}}"));
        }
    }
}

TEST_CASE("stream decoders: a chunk that repeats the one before with other text is read by comparing bytes, exactly as through the DOM",
          "[sse][scan][memo]") {
    const ChatRequest req = plain();
    // Pieces of text put raw between the quotes of the text member: plain, escaped and
    // multi-byte text; an empty piece; pieces that end the string early and so change the
    // chunk's shape (another member, a duplicate text member, a finish); pieces that are not
    // a JSON string (a raw control character, bad escapes, a lone surrogate, bad UTF-8, an
    // escaped closing quote that swallows the rest).
    const std::vector<std::string> odd = {
        "",
        R"(a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00)",
        "h\xC3\xA9llo \xE6\x97\xA5 \xF0\x9F\x98\x80",
        R"(a","x":"b)",
        R"(a","content":"b)",
        R"(a","text":"b)",
        R"(a"},"finish_reason":"length","y":{"z":")",
        "a\x01" "b",
        R"(\x)",
        R"(\ud83d)",
        "\xC3\x28",
        R"(x\)",
        R"(x"})",
    };
    SECTION("OpenAI") {
        const auto make = [&](bool scan) { return openai_decoder(scan, req); };
        const auto chunk = [](std::string_view inner) {
            return "data: {\"choices\":[{\"delta\":{\"content\":\"" + std::string(inner) +
                   "\"},\"finish_reason\":null,\"index\":0,\"logprobs\":null}],\"created\":1,\"id\":\"c1\","
                   "\"model\":\"gpt-4o\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp\",\"usage\":null}\n\n";
        };
        const std::string head = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"model\":\"gpt-4o\"}\n\n";
        const std::string tail =
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"model\":\"gpt-4o\"}\n\n"
            "data: {\"choices\":[],\"model\":\"gpt-4o\",\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5,"
            "\"total_tokens\":12,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n"
            "data: [DONE]\n\n";
        // Five chunks of one shape: the first is scanned member by member, the next four are
        // read by comparing bytes; all events, the usage chunk included, without a DOM.
        std::size_t remembered = 0;
        std::string body = head;
        for (const char* piece : {"Hello", " wor", "ld", "! ", "Bye"}) body += chunk(piece);
        CHECK(same_both_ways(make, body + tail, &remembered) == 8);
        CHECK(remembered == 4);
        // Each odd piece between plain ones: read as the DOM reads it (the memo forgets the
        // shape it no longer matches, or the scan leaves the chunk to the DOM).
        for (const std::string& piece : odd) {
            same_both_ways(make, head + chunk("a") + chunk("b") + chunk(piece) + chunk("c") + chunk("d") + tail);
            same_both_ways(make, head + chunk(piece) + chunk("c") + tail);
        }
        // Another event between two chunks of one shape: nothing is remembered across it.
        for (const std::string& between : {std::string("data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"no\"}}]}\n\n"),
                                           std::string("event: ping\ndata: {}\n\n"), std::string(": comment\n\n")}) {
            same_both_ways(make, head + chunk("a") + chunk("b") + between + chunk("c") + tail, &remembered);
            CHECK(remembered == (between.front() == ':' ? 2u : 1u));  // a comment is not an event
        }
    }
    SECTION("Anthropic") {
        const auto make = [&](bool scan) { return anthropic_decoder(scan, req); };
        const auto delta = [](std::string_view inner, int index = 0) {
            return "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":" + std::to_string(index) +
                   ",\"delta\":{\"type\":\"text_delta\",\"text\":\"" + std::string(inner) + "\"}}\n\n";
        };
        const std::string head =
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\","
            "\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
            "{\"type\":\"text\",\"text\":\"\"}}\n\n";
        const std::string tail =
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
            "\"usage\":{\"output_tokens\":5}}\n\n"
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        std::size_t remembered = 0;
        std::string body = head;
        for (const char* piece : {"Hello", " wor", "ld", "! ", "Bye"}) body += delta(piece);
        CHECK(same_both_ways(make, body + tail, &remembered) == 10);
        CHECK(remembered == 4);
        for (const std::string& piece : odd) {
            same_both_ways(make, head + delta("a") + delta("b") + delta(piece) + delta("c") + delta("d") + tail);
            same_both_ways(make, head + delta(piece) + delta("c") + tail);
        }
        // A tool_use block opens between two text deltas of one shape: the delta after it is
        // read again from the start (and a delta for a block that is not text goes to the DOM).
        const std::string tool_start =
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
            "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{}}}\n\n";
        same_both_ways(make, head + delta("a") + delta("b") + tool_start + delta("c") + delta("d", 1) + delta("e", 1) + tail,
                       &remembered);
        CHECK(remembered == 1);  // "b" only: "c" is read from the start, "d" and "e" are for the tool block (the DOM's)
        same_both_ways(make, head + delta("a") + delta("b") + "event: ping\ndata: {\"type\":\"ping\"}\n\n" + delta("c") + tail,
                       &remembered);
        CHECK(remembered == 1);
    }
}
