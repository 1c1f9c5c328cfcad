// SPDX-License-Identifier: MIT
// Integration tests of CurlTransport through real libcurl against the loopback
// MockProvider: every wire fault ends in the right classified Failure, any HTTP
// status comes back as a response with its headers, keep-alive connections are
// reused across calls and threads, and the response size limit stops a transfer
// early. Also checks that the mock's bodies have each provider's documented
// shape, since every adapter test relies on that.
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <failover/schema.hpp>
#include <failover/transport/curl.hpp>

#include "support/catch.hpp"
#include "support/paths.hpp"
#include "support/mock_provider.hpp"

using namespace std::chrono_literals;
using failover::CurlOptions;
using failover::CurlTransport;
using failover::Deadline;
using failover::FailureKind;
using failover::HttpRequest;
using failover::HttpResponse;
using failover::Reason;
using failover::StreamSpec;
using failover::StreamStep;
using failover_mock::Fault;
using failover_mock::Json;
using failover_mock::MockProvider;

namespace {

HttpRequest post(std::string url, const Json& body, failover::Headers headers = {}) {
    HttpRequest r;
    r.method = "POST";
    r.url = std::move(url);
    r.headers = std::move(headers);
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = body.dump();
    return r;
}

const Json openai_body = {{"model", "gpt-4o"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}};
const Json anthropic_body = {
    {"model", "claude-sonnet-4-5"}, {"max_tokens", 64}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}};
const Json gemini_body = {{"contents", {{{"role", "user"}, {"parts", {{{"text", "Hi"}}}}}}}};

HttpRequest openai_call(const MockProvider& m, const std::string& route) {
    return post(m.url(route) + "/v1/chat/completions", openai_body, {{"Authorization", "Bearer sk-test-0123456789"}});
}

Deadline within(std::chrono::milliseconds timeout) {
    Deadline d;
    d.timeout = timeout;
    d.connect_timeout = timeout;
    return d;
}

/// A loopback port with nothing listening on it.
int closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(fd);  // bound, never listened: connecting is refused
    return ntohs(a.sin_port);
}

template <class F>
std::chrono::milliseconds time_of(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
}

}  // namespace

TEST_CASE("transport: a success comes back with status, headers and body", "[transport]") {
    MockProvider mock;
    mock.route("a").then(Fault::ok("hello").with_header("X-Mixed-Case", "Value"));
    CurlTransport http;
    auto r = http.send(openai_call(mock, "a"), within(5s));
    REQUIRE(r);
    CHECK(r->status == 200);
    REQUIRE(r->header("x-mixed-case"));  // looked up in any case
    CHECK(*r->header("X-MIXED-CASE") == "Value");
    REQUIRE(r->header("content-type"));
    CHECK(*r->header("Content-Type") == "application/json");
    const Json body = Json::parse(r->body);
    CHECK(body["choices"][0]["message"]["content"] == "hello");
}

TEST_CASE("transport: error statuses are responses, with Retry-After headers intact", "[transport]") {
    MockProvider mock;
    mock.route("oai").then(Fault::status(429).retry_after("2").retry_after_ms("1500"));
    mock.route("ant").then(Fault::status(529).retry_after("7"));
    CurlTransport http;

    auto r = http.send(openai_call(mock, "oai"), within(5s));
    REQUIRE(r);  // classification of a status is not the transport's job
    CHECK(r->status == 429);
    REQUIRE(r->header("Retry-After"));
    CHECK(*r->header("Retry-After") == "2");
    REQUIRE(r->header("RETRY-AFTER-MS"));
    CHECK(*r->header("retry-after-ms") == "1500");
    CHECK(Json::parse(r->body)["error"]["code"] == "rate_limit_exceeded");

    auto a = http.send(post(mock.url("ant") + "/v1/messages", anthropic_body), within(5s));
    REQUIRE(a);
    CHECK(a->status == 529);
    REQUIRE(a->header("retry-after"));
    CHECK(*a->header("retry-after") == "7");
    CHECK(Json::parse(a->body)["error"]["type"] == "overloaded_error");
}

TEST_CASE("transport: headers of an interim 1xx block are not mixed into the response", "[transport]") {
    MockProvider mock;
    mock.route("a").then(Fault::ok("after continue").with_interim_continue().with_header("X-Final", "yes"));
    CurlTransport http;
    auto r = http.send(openai_call(mock, "a"), within(5s));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("x-interim") == nullptr);
    REQUIRE(r->header("x-final"));
    CHECK(Json::parse(r->body)["choices"][0]["message"]["content"] == "after continue");
}

TEST_CASE("transport: the request arrives as sent, without an Expect round trip", "[transport]") {
    MockProvider mock;
    CurlTransport http;
    Json big = openai_body;
    big["messages"][0]["content"] = std::string(2 * 1024 * 1024, 'a');  // large enough for curl's default Expect
    HttpRequest req = post(mock.url("a") + "/v1/chat/completions?api-version=1", big,
                           {{"Authorization", "Bearer sk-test-0123456789"}, {"X-Empty", ""}});
    auto r = http.send(req, within(5s));
    REQUIRE(r);
    CHECK(r->status == 200);
    auto last = mock.route("a").last_request();
    REQUIRE(last);
    CHECK(last->method == "POST");
    CHECK(last->path == "/a/v1/chat/completions");
    CHECK(last->query == "api-version=1");
    CHECK(last->body == req.body);
    REQUIRE(last->header("authorization"));
    CHECK(*last->header("authorization") == "Bearer sk-test-0123456789");
    REQUIRE(last->header("x-empty"));
    CHECK(last->header("x-empty")->empty());
    CHECK(last->header("expect") == nullptr);
    REQUIRE(last->header("user-agent"));
    CHECK(last->header("user-agent")->rfind("failover/", 0) == 0);
    CHECK(mock.requests_at("/a/v1/chat/completions") == 1);
}

TEST_CASE("transport: whole answers may come compressed, event streams are asked for uncompressed", "[transport]") {
    // A server or proxy that compresses an event stream may hold its events back to fill a
    // compression block, which delays every token: a stream asks for the identity encoding.
    MockProvider mock;
    Json streamed = openai_body;
    streamed["stream"] = true;
    const HttpRequest req = post(mock.url("a") + "/v1/chat/completions", streamed, {});
    std::string body;
    StreamSpec spec;
    spec.on_data = [&body](std::string_view bytes) {
        body.append(bytes);
        return StreamStep::more;
    };
    for (const bool compressed : {true, false}) {
        INFO("accept_compressed " << compressed);
        CurlOptions options;
        options.accept_compressed = compressed;
        CurlTransport http(options);
        auto whole = http.send(req, within(5s));
        REQUIRE(whole);
        CHECK(whole->status == 200);
        REQUIRE(mock.route("a").last_request());
        CHECK((mock.route("a").last_request()->header("accept-encoding") != nullptr) == compressed);
        body.clear();
        auto stream = http.stream(req, within(5s), spec);
        REQUIRE(stream);
        CHECK(stream->status == 200);
        CHECK(body.find("data: [DONE]") != std::string::npos);
        REQUIRE(mock.route("a").last_request());
        CHECK(mock.route("a").last_request()->header("accept-encoding") == nullptr);
    }
}

TEST_CASE("transport: one pooled handle carries requests of every shape in turn, each as sent", "[transport]") {
    // The transport keeps a handle's options from one transfer to the next when the next has
    // the same shape (streamed or not, the method), and its header list when the headers are
    // the same: nothing of one request may leak into the next.
    MockProvider mock;
    CurlOptions options;
    options.max_pooled_handles = 1;  // every call below takes the same handle
    CurlTransport http(options);
    Json streamed = openai_body;
    streamed["stream"] = true;
    std::string streamed_body;
    StreamSpec spec;
    spec.on_data = [&streamed_body](std::string_view bytes) {
        streamed_body.append(bytes);
        return StreamStep::more;
    };
    const auto with_method = [&](std::string method, std::string body) {
        HttpRequest r = openai_call(mock, "a");
        r.method = std::move(method);
        r.body = std::move(body);
        return r;
    };
    struct Call {
        HttpRequest req;
        bool stream;
        int status;
    };
    HttpRequest other_headers = post(mock.url("a") + "/v1/chat/completions", openai_body,
                                     {{"Authorization", "Bearer sk-other-987"}, {"X-Trace", "t1"}});
    HttpRequest streaming = post(mock.url("a") + "/v1/chat/completions", streamed, {{"Authorization", "Bearer sk-test-0123456789"}});
    const std::vector<Call> calls = {
        {openai_call(mock, "a"), false, 200},
        {openai_call(mock, "a"), false, 200},
        {streaming, true, 200},
        {streaming, true, 200},
        {openai_call(mock, "a"), false, 200},
        {with_method("GET", ""), false, 405},
        {other_headers, false, 200},
        {with_method("PUT", "{\"put\":1}"), false, 405},
        {with_method("GET", "{\"get\":1}"), false, 405},
        {with_method("HEAD", ""), false, 405},
        {openai_call(mock, "a"), false, 200},
        {other_headers, false, 200},
        {openai_call(mock, "a"), false, 200},
    };
    for (std::size_t i = 0; i < calls.size(); ++i) {
        const Call& c = calls[i];
        INFO("call " << i << ": " << c.req.method << (c.stream ? " streamed" : ""));
        streamed_body.clear();
        auto r = c.stream ? http.stream(c.req, within(5s), spec) : http.send(c.req, within(5s));
        REQUIRE(r);
        CHECK(r->status == c.status);
        auto last = mock.route("a").last_request();
        REQUIRE(last);
        CHECK(last->method == c.req.method);
        CHECK(last->body == (c.req.method == "HEAD" ? std::string() : c.req.body));
        CHECK((last->header("accept-encoding") != nullptr) == !c.stream);
        CHECK(last->header("expect") == nullptr);
        // The request's headers arrive, and no header of an earlier request does.
        for (const auto& [name, value] : c.req.headers) {
            REQUIRE(last->header(name));
            CHECK(*last->header(name) == value);
        }
        CHECK((last->header("x-trace") != nullptr) == (c.req.headers.size() == 3));
        if (c.stream) CHECK(streamed_body.find("data: [DONE]") != std::string::npos);
        else if (c.status == 200) CHECK(r->body.find("chat.completion") != std::string::npos);
    }
    CHECK(mock.requests() == calls.size());
}

TEST_CASE("transport: connection refused is a transient connection failure", "[transport]") {
    CurlTransport http;
    const std::string host = "127.0.0.1:" + std::to_string(closed_port());
    HttpRequest req = post("http://" + host + "/v1/chat/completions?key=QUERYSECRET42", openai_body,
                           {{"Authorization", "Bearer sk-HEADERSECRET42"}, {"x-api-key", "ant-HEADERSECRET43"}});
    auto r = http.send(req, within(2s));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::connection);
    CHECK(r.error().kind == FailureKind::transient);
    CHECK(r.error().message.find(host) != std::string::npos);
    // Keys travel in the query string and in headers: neither may leak into a message.
    CHECK(r.error().message.find("QUERYSECRET42") == std::string::npos);
    CHECK(r.error().message.find("HEADERSECRET4") == std::string::npos);
}

TEST_CASE("transport: a TCP reset is a connection failure", "[transport]") {
    MockProvider mock;
    mock.route("a").then(Fault::reset());
    CurlTransport http;
    auto r = http.send(openai_call(mock, "a"), within(5s));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::connection);
    CHECK(r.error().kind == FailureKind::transient);
    CHECK(mock.route("a").requests() == 1);
}

TEST_CASE("transport: a server that never answers is cut at the attempt timeout", "[transport]") {
    MockProvider mock;
    mock.route("a").then(Fault::hang());
    CurlTransport http;
    failover::Result<HttpResponse> r = failover::Failure{};
    const auto took = time_of([&] { r = http.send(openai_call(mock, "a"), within(200ms)); });
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::timeout);
    CHECK(r.error().kind == FailureKind::transient);
    CHECK(took >= 150ms);
    CHECK(took < 1000ms);
}

TEST_CASE("transport: a body dripping past the timeout is a timeout, within it, a full response", "[transport]") {
    MockProvider mock;
    mock.route("slow").then(Fault::slow_drip(20ms, 4));
    mock.route("fine").then(Fault::ok("dripped").dripped(1ms, 64));
    CurlTransport http;
    auto slow = http.send(openai_call(mock, "slow"), within(200ms));
    REQUIRE_FALSE(slow);
    CHECK(slow.error().reason == Reason::timeout);

    auto fine = http.send(openai_call(mock, "fine"), within(5s));
    REQUIRE(fine);
    CHECK(Json::parse(fine->body)["choices"][0]["message"]["content"] == "dripped");
}

TEST_CASE("transport: a truncated body is a malformed response", "[transport]") {
    MockProvider mock;
    mock.route("a").then(Fault::truncated());
    CurlTransport http;
    auto r = http.send(openai_call(mock, "a"), within(5s));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::malformed_response);
    CHECK(r.error().kind == FailureKind::transient);
}

TEST_CASE("transport: an oversized body is refused early, without being held", "[transport]") {
    constexpr std::size_t limit = 1024 * 1024;
    constexpr std::size_t huge = 64u * 1024u * 1024u;
    MockProvider mock;
    CurlOptions opt;
    opt.max_response_bytes = limit;
    CurlTransport http(opt);

    SECTION("announced by Content-Length: refused from the headers") {
        mock.route("a").then(Fault::oversized(huge));
        auto r = http.send(openai_call(mock, "a"), within(5s));
        REQUIRE_FALSE(r);
        CHECK(r.error().reason == Reason::response_too_large);
        CHECK(r.error().kind == FailureKind::terminal);
        CHECK(r.error().message.find("1048576") != std::string::npos);
        CHECK(r.error().message.find(std::to_string(huge)) != std::string::npos);
    }
    SECTION("chunked, no length: the reader stops at the limit") {
        mock.route("a").then(Fault::oversized(huge).without_length());
        auto r = http.send(openai_call(mock, "a"), within(5s));
        REQUIRE_FALSE(r);
        CHECK(r.error().reason == Reason::response_too_large);
        CHECK(r.error().message.find("1048576") != std::string::npos);
    }
    // The server could hand over only what the client took plus socket buffers: far from 64 MiB.
    mock.stop();
    CHECK(mock.route("a").bytes_sent() < huge / 4);
}

TEST_CASE("transport: the size limit is exact", "[transport]") {
    constexpr std::size_t limit = 100000;
    MockProvider mock;
    CurlOptions opt;
    opt.max_response_bytes = limit;
    CurlTransport http(opt);
    mock.route("a")
        .then(Fault::oversized(limit))
        .then(Fault::oversized(limit + 1))
        .then(Fault::oversized(limit).without_length())
        .then(Fault::oversized(limit + 1).without_length());
    auto at_limit = http.send(openai_call(mock, "a"), within(5s));
    REQUIRE(at_limit);
    CHECK(at_limit->body.size() == limit);
    CHECK_FALSE(http.send(openai_call(mock, "a"), within(5s)));
    auto chunked_at_limit = http.send(openai_call(mock, "a"), within(5s));
    REQUIRE(chunked_at_limit);
    CHECK(chunked_at_limit->body.size() == limit);
    auto over = http.send(openai_call(mock, "a"), within(5s));
    REQUIRE_FALSE(over);
    CHECK(over.error().reason == Reason::response_too_large);
}

TEST_CASE("transport: sequential calls reuse one keep-alive connection", "[transport]") {
    MockProvider mock;
    CurlTransport http;
    for (int i = 0; i < 20; ++i) {
        auto r = http.send(openai_call(mock, "a"), within(5s));
        REQUIRE(r);
        REQUIRE(r->status == 200);
    }
    CHECK(mock.requests() == 20);
    CHECK(mock.connections() == 1);
}

TEST_CASE("transport: many threads share one transport and few connections", "[transport]") {
    MockProvider mock;
    CurlTransport http;
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 25; ++i) {
                auto r = http.send(openai_call(mock, "a"), within(10s));
                if (r && r->status == 200 && Json::parse(r->body)["choices"][0]["message"]["content"] == "ok") ++ok;
            }
        });
    for (auto& t : threads) t.join();
    CHECK(ok.load() == 200);
    CHECK(mock.requests() == 200);
    CHECK(mock.connections() <= 10);
}

TEST_CASE("transport: a failed transfer does not poison the pooled handle", "[transport]") {
    MockProvider mock;
    mock.route("a").then(Fault::truncated()).then(Fault::reset()).then(Fault::hang());
    CurlTransport http;
    CHECK_FALSE(http.send(openai_call(mock, "a"), within(5s)));
    CHECK_FALSE(http.send(openai_call(mock, "a"), within(5s)));
    CHECK_FALSE(http.send(openai_call(mock, "a"), within(100ms)));
    auto r = http.send(openai_call(mock, "a"), within(5s));
    REQUIRE(r);
    CHECK(r->status == 200);
}

TEST_CASE("transport: the wrong content type and malformed JSON still come back as responses", "[transport]") {
    MockProvider mock;
    mock.route("a").then(Fault::wrong_content_type()).then(Fault::malformed_json());
    CurlTransport http;
    auto html = http.send(openai_call(mock, "a"), within(5s));
    REQUIRE(html);
    CHECK(html->status == 200);
    CHECK(html->header("content-type")->rfind("text/html", 0) == 0);
    auto bad = http.send(openai_call(mock, "a"), within(5s));
    REQUIRE(bad);
    CHECK(Json::parse(bad->body, nullptr, false).is_discarded());
}

TEST_CASE("transport: requests that cannot be sent fail before touching the network", "[transport]") {
    MockProvider mock;
    CurlTransport http;
    SECTION("no time left") {
        Deadline d;
        d.timeout = 0ms;
        auto r = http.send(openai_call(mock, "a"), d);
        REQUIRE_FALSE(r);
        CHECK(r.error().reason == Reason::timeout);
    }
    SECTION("a header with a line break") {
        auto r = http.send(post(mock.url("a") + "/v1/chat/completions", openai_body, {{"X-Bad", "a\r\nInjected: 1"}}),
                           within(5s));
        REQUIRE_FALSE(r);
        CHECK(r.error().reason == Reason::bad_request);
        CHECK(r.error().message.find("X-Bad") != std::string::npos);
    }
    SECTION("a scheme other than http(s)") {
        auto r = http.send(post("ftp://127.0.0.1/x", openai_body), within(5s));
        REQUIRE_FALSE(r);
        CHECK(r.error().reason == Reason::bad_request);
        CHECK(r.error().kind == FailureKind::terminal);
    }
    SECTION("a malformed URL") {
        auto r = http.send(post("http://127.0.0.1:99999999/x", openai_body), within(5s));
        REQUIRE_FALSE(r);
        CHECK(r.error().reason == Reason::bad_request);
    }
    CHECK(mock.requests() == 0);
}

TEST_CASE("transport: options are checked and the transport moves", "[transport]") {
    CurlOptions bad;
    bad.max_response_bytes = 0;
    CHECK_THROWS_WITH(CurlTransport(bad), Catch::Contains("max_response_bytes"));

    MockProvider mock;
    CurlOptions opt;
    opt.tcp_keepalive = 1500ms;  // any chrono duration converts
    opt.max_idle_connection = std::chrono::minutes(1);
    CurlTransport first(opt);
    CurlTransport moved(std::move(first));
    auto r = moved.send(openai_call(mock, "a"), within(5s));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(moved.options().max_response_bytes == FAILOVER_MAX_RESPONSE_BYTES);
}

TEST_CASE("mock: stopping the server ends hanging connections", "[transport][mock]") {
    auto mock = std::make_unique<MockProvider>();
    mock->route("a").otherwise(Fault::hang());
    CurlTransport http;
    failover::Result<HttpResponse> r = failover::Failure{};
    std::thread client([&] { r = http.send(openai_call(*mock, "a"), within(10s)); });
    while (mock->requests() == 0) std::this_thread::sleep_for(2ms);
    const auto took = time_of([&] { mock.reset(); });
    client.join();
    CHECK(took < 2000ms);
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::connection);  // the server went away, well before 10 s
}

TEST_CASE("mock: scripts play in order, then the default, and bad requests are refused like the real API",
          "[transport][mock]") {
    MockProvider mock;
    CurlTransport http;
    auto& route = mock.route("a");
    route.then(Fault::status(500)).then(Fault::ok("second")).otherwise(Fault::ok("default"));
    CHECK(route.pending() == 2);
    CHECK(http.send(openai_call(mock, "a"), within(5s))->status == 500);
    CHECK(Json::parse(http.send(openai_call(mock, "a"), within(5s))->body)["choices"][0]["message"]["content"] ==
          "second");
    CHECK(Json::parse(http.send(openai_call(mock, "a"), within(5s))->body)["choices"][0]["message"]["content"] ==
          "default");
    CHECK(route.pending() == 0);
    CHECK(route.requests() == 3);

    SECTION("a request missing a required field gets the provider's 400 and consumes nothing") {
        mock.route("b").then(Fault::ok("kept"));
        Json no_max = anthropic_body;
        no_max.erase("max_tokens");
        auto r = http.send(post(mock.url("b") + "/v1/messages", no_max), within(5s));
        REQUIRE(r);
        CHECK(r->status == 400);
        const Json e = Json::parse(r->body);
        CHECK(e["type"] == "error");
        CHECK(e["error"]["type"] == "invalid_request_error");
        CHECK(e["error"]["message"].get<std::string>().find("max_tokens") != std::string::npos);
        CHECK(mock.route("b").pending() == 1);
    }
    SECTION("require_auth answers 401 without the provider's auth header") {
        mock.route("c").require_auth();
        auto r = http.send(post(mock.url("c") + "/v1/chat/completions", openai_body), within(5s));
        REQUIRE(r);
        CHECK(r->status == 401);
        CHECK(Json::parse(r->body)["error"]["code"] == "invalid_api_key");
        CHECK(http.send(openai_call(mock, "c"), within(5s))->status == 200);
    }
    SECTION("an unknown path is a 404") {
        auto r = http.send(post(mock.url("a") + "/v2/nothing", openai_body), within(5s));
        REQUIRE(r);
        CHECK(r->status == 404);
    }
}

// ---- golden-ish checks of the mock's wire shapes -------------------------------------------

namespace {

std::shared_ptr<const failover::Schema> openai_response_schema() {
    std::ifstream in(failover_test::openai_schema_path());
    REQUIRE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    Json doc = Json::parse(ss.str());
    Json root = {{"$ref", "#/$defs/CreateChatCompletionResponse"}, {"$defs", doc["$defs"]}};
    return failover::Schema::parse(root);
}

Json send_json(const CurlTransport& http, const HttpRequest& req, int status = 200) {
    auto r = http.send(req, within(5s));
    REQUIRE(r);
    CHECK(r->status == status);
    Json j = Json::parse(r->body, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    return j;
}

}  // namespace

TEST_CASE("mock: OpenAI and Azure bodies have the documented shape", "[transport][mock]") {
    MockProvider mock;
    CurlTransport http;
    const auto schema = openai_response_schema();
    auto& r = mock.route("oai");
    r.then(Fault::ok("hi"))
        .then(Fault::ok_json({{"total", 12}}))
        .then(Fault::tool_call("lookup", {{"id", 7}}))
        .then(Fault::refusal("no"))
        .then(Fault::content_filter())
        .then(Fault::quota_exhausted())
        .then(Fault::context_length_exceeded());
    auto call = [&] { return openai_call(mock, "oai"); };

    Json ok = send_json(http, call());
    CHECK(schema->validate(ok).empty());
    CHECK(ok["object"] == "chat.completion");
    CHECK(ok["model"] == "gpt-4o");  // echoes the request's model
    CHECK(ok["choices"][0]["message"]["content"] == "hi");
    CHECK(ok["choices"][0]["finish_reason"] == "stop");
    CHECK(ok["usage"]["total_tokens"] ==
          ok["usage"]["prompt_tokens"].get<int>() + ok["usage"]["completion_tokens"].get<int>());

    Json js = send_json(http, call());
    CHECK(schema->validate(js).empty());
    CHECK(Json::parse(js["choices"][0]["message"]["content"].get<std::string>()) == Json{{"total", 12}});

    Json tool = send_json(http, call());
    CHECK(schema->validate(tool).empty());
    CHECK(tool["choices"][0]["finish_reason"] == "tool_calls");
    const Json& tc = tool["choices"][0]["message"]["tool_calls"][0];
    CHECK(tc["function"]["name"] == "lookup");
    CHECK(Json::parse(tc["function"]["arguments"].get<std::string>()) == Json{{"id", 7}});  // a string, parsed again

    Json refusal = send_json(http, call());
    CHECK(schema->validate(refusal).empty());
    CHECK(refusal["choices"][0]["message"]["refusal"] == "no");
    CHECK(refusal["choices"][0]["message"]["content"].is_null());

    Json filtered = send_json(http, call());
    CHECK(schema->validate(filtered).empty());
    CHECK(filtered["choices"][0]["finish_reason"] == "content_filter");

    Json quota = send_json(http, call(), 429);
    CHECK(quota["error"]["type"] == "insufficient_quota");
    CHECK(quota["error"]["code"] == "insufficient_quota");

    Json ctx = send_json(http, call(), 400);
    CHECK(ctx["error"]["code"] == "context_length_exceeded");
    CHECK(ctx["error"]["type"] == "invalid_request_error");

    // Azure: the deployment names the model; content filter is a 400 with innererror.
    mock.route("az")
        .then(Fault::ok("hi"))
        .then(Fault::content_filter())
        .then(Fault::status(429))
        .then(Fault::status(404));
    const std::string az = mock.url("az") + "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21";
    Json body = openai_body;
    body.erase("model");
    Json azok = send_json(http, post(az, body, {{"api-key", "azure-key-123456"}}));
    CHECK(azok["model"] == "gpt4o-prod");
    CHECK(azok.contains("prompt_filter_results"));
    Json azf = send_json(http, post(az, body), 400);
    CHECK(azf["error"]["code"] == "content_filter");
    CHECK(azf["error"]["innererror"]["code"] == "ResponsibleAIPolicyViolation");
    Json az429 = send_json(http, post(az, body), 429);
    CHECK(az429["error"]["code"] == "429");  // Azure spells it as a string
    Json az404 = send_json(http, post(az, body), 404);
    CHECK(az404["error"]["code"] == "DeploymentNotFound");
    REQUIRE(mock.route("az").last_request());
    CHECK(mock.route("az").last_request()->query == "api-version=2024-10-21");
}

TEST_CASE("mock: Anthropic bodies have the documented shape", "[transport][mock]") {
    MockProvider mock;
    CurlTransport http;
    mock.route("ant")
        .then(Fault::ok("hi"))
        .then(Fault::ok_json({{"total", 12}}))
        .then(Fault::ok_json({{"total", 12}}))
        .then(Fault::tool_call("lookup", {{"id", 7}}))
        .then(Fault::refusal())
        .then(Fault::schema_invalid())
        .then(Fault::quota_exhausted())
        .then(Fault::context_length_exceeded())
        .then(Fault::status(401));
    const std::string url = mock.url("ant") + "/v1/messages";
    Json forced = anthropic_body;
    const Json input_schema = {
        {"type", "object"}, {"required", Json::array({"total"})}, {"properties", {{"total", {{"type", "number"}}}}}};
    forced["tools"] = Json::array({{{"name", "emit"}, {"input_schema", input_schema}}});
    forced["tool_choice"] = {{"type", "tool"}, {"name", "emit"}};

    Json ok = send_json(http, post(url, anthropic_body));
    CHECK(ok["type"] == "message");
    CHECK(ok["role"] == "assistant");
    CHECK(ok["model"] == "claude-sonnet-4-5");
    CHECK(ok["content"][0]["type"] == "text");
    CHECK(ok["content"][0]["text"] == "hi");
    CHECK(ok["stop_reason"] == "end_turn");
    CHECK(ok["usage"]["input_tokens"].get<int>() > 0);
    CHECK(ok["usage"]["output_tokens"].get<int>() > 0);

    Json forced_json = send_json(http, post(url, forced));
    CHECK(forced_json["content"][0]["type"] == "tool_use");
    CHECK(forced_json["content"][0]["name"] == "emit");
    CHECK(forced_json["content"][0]["input"] == Json{{"total", 12}});  // an object, not a string
    CHECK(forced_json["stop_reason"] == "tool_use");

    Json text_json = send_json(http, post(url, anthropic_body));
    CHECK(Json::parse(text_json["content"][0]["text"].get<std::string>()) == Json{{"total", 12}});

    Json tool = send_json(http, post(url, anthropic_body));
    CHECK(tool["content"][0]["name"] == "lookup");
    CHECK(tool["content"][0]["input"] == Json{{"id", 7}});

    Json refusal = send_json(http, post(url, anthropic_body));
    CHECK(refusal["stop_reason"] == "refusal");

    Json invalid = send_json(http, post(url, forced));
    CHECK(invalid["content"][0]["type"] == "tool_use");
    CHECK_FALSE(invalid["content"][0]["input"].contains("total"));  // breaks the forced tool's schema

    Json billing = send_json(http, post(url, anthropic_body), 402);
    CHECK(billing["type"] == "error");
    CHECK(billing["error"]["type"] == "billing_error");
    Json ctx = send_json(http, post(url, anthropic_body), 400);
    CHECK(ctx["error"]["message"].get<std::string>().find("prompt is too long") != std::string::npos);
    Json auth = send_json(http, post(url, anthropic_body), 401);
    CHECK(auth["error"]["type"] == "authentication_error");
    CHECK(auth["request_id"].is_string());
}

TEST_CASE("mock: Gemini bodies have the documented shape", "[transport][mock]") {
    MockProvider mock;
    CurlTransport http;
    mock.route("gem")
        .then(Fault::ok("hi"))
        .then(Fault::tool_call("lookup", {{"id", 7}}))
        .then(Fault::safety_block())
        .then(Fault::content_filter())
        .then(Fault::status(429).retry_after("3"))
        .then(Fault::quota_exhausted());
    const std::string url = mock.url("gem") + "/v1beta/models/gemini-2.0-flash:generateContent";

    Json ok = send_json(http, post(url, gemini_body, {{"x-goog-api-key", "AIza-test-123456"}}));
    CHECK(ok["candidates"][0]["content"]["parts"][0]["text"] == "hi");
    CHECK(ok["candidates"][0]["content"]["role"] == "model");
    CHECK(ok["candidates"][0]["finishReason"] == "STOP");
    CHECK(ok["modelVersion"] == "gemini-2.0-flash");
    const Json& u = ok["usageMetadata"];
    CHECK(u["totalTokenCount"] == u["promptTokenCount"].get<int>() + u["candidatesTokenCount"].get<int>());

    Json tool = send_json(http, post(url, gemini_body));
    CHECK(tool["candidates"][0]["content"]["parts"][0]["functionCall"]["args"] == Json{{"id", 7}});

    Json blocked = send_json(http, post(url, gemini_body));
    CHECK(blocked["promptFeedback"]["blockReason"] == "SAFETY");
    CHECK_FALSE(blocked.contains("candidates"));

    Json unsafe = send_json(http, post(url, gemini_body));
    CHECK(unsafe["candidates"][0]["finishReason"] == "SAFETY");

    Json limited = send_json(http, post(url, gemini_body), 429);
    CHECK(limited["error"]["status"] == "RESOURCE_EXHAUSTED");
    CHECK(limited["error"]["code"] == 429);
    CHECK(limited["error"]["details"][0]["retryDelay"] == "3s");

    Json quota = send_json(http, post(url, gemini_body), 429);
    CHECK(quota["error"]["details"][0]["violations"][0]["quotaId"].get<std::string>().find("PerDay") !=
          std::string::npos);
}
