// SPDX-License-Identifier: MIT
// The generic classifier: status and header rules of the taxonomy, Retry-After
// in every form, x-should-retry, the portable body matchers on the real error
// shapes of OpenAI, Azure, Anthropic, Gemini, vLLM, llama.cpp and Ollama,
// message sanitising, and a seeded fuzz loop proving that garbage in any field
// still yields a Failure consistent with the status.
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <failover/classifier.hpp>

#include "support/catch.hpp"

using namespace failover;
using namespace std::chrono_literals;

namespace {

// 2026-01-01T00:00:00Z, a Thursday.
const std::chrono::system_clock::time_point kNow = std::chrono::sys_days{std::chrono::year{2026} / 1 / 1};

HttpResponse resp(int status, std::string body = {}, Headers headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    return r;
}

std::optional<std::chrono::milliseconds> retry_after_of(Headers h, std::chrono::system_clock::time_point now = kNow) {
    return parse_retry_after(resp(429, {}, std::move(h)), now);
}

bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        i += n;
    }
    return true;
}

bool has_control_bytes(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return true;
    return false;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

bool icontains(std::string_view hay, std::string_view needle) {
    const auto lower = [](std::string_view v) {
        std::string out(v);
        for (char& c : out)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        return out;
    };
    return contains(lower(hay), lower(needle));
}

// The taxonomy as the README states it, for statuses alone.
struct Expected {
    Reason reason;
    FailureKind kind;
};
Expected by_status(int s) {
    if (s < 100 || s > 599 || s < 300) return {Reason::malformed_response, FailureKind::transient};
    if (s < 400) return {Reason::malformed_response, FailureKind::terminal};
    switch (s) {
        case 401: case 403: return {Reason::auth, FailureKind::terminal};
        case 402: return {Reason::quota_exhausted, FailureKind::terminal};
        case 404: return {Reason::not_found, FailureKind::terminal};
        case 408: return {Reason::timeout, FailureKind::transient};
        case 409: return {Reason::conflict, FailureKind::transient};
        case 429: return {Reason::rate_limited, FailureKind::transient};
        case 503: case 529: return {Reason::overloaded, FailureKind::transient};
        case 504: return {Reason::timeout, FailureKind::transient};
        default: break;
    }
    if (s < 500) return {Reason::bad_request, FailureKind::terminal};
    return {Reason::server_error, FailureKind::transient};
}

}  // namespace

TEST_CASE("classifier: is_success is exactly 2xx", "[classifier]") {
    STATIC_REQUIRE(is_success(200));
    STATIC_REQUIRE(is_success(204));
    STATIC_REQUIRE(is_success(299));
    STATIC_REQUIRE_FALSE(is_success(199));
    STATIC_REQUIRE_FALSE(is_success(300));
    STATIC_REQUIRE_FALSE(is_success(0));
    STATIC_REQUIRE_FALSE(is_success(429));
}

TEST_CASE("classifier: every status row of the taxonomy", "[classifier]") {
    struct Row {
        int status;
        Reason reason;
        FailureKind kind;
    };
    const Row rows[] = {
        {400, Reason::bad_request, FailureKind::terminal},      {401, Reason::auth, FailureKind::terminal},
        {402, Reason::quota_exhausted, FailureKind::terminal},  {403, Reason::auth, FailureKind::terminal},
        {404, Reason::not_found, FailureKind::terminal},        {405, Reason::bad_request, FailureKind::terminal},
        {408, Reason::timeout, FailureKind::transient},         {409, Reason::conflict, FailureKind::transient},
        {413, Reason::bad_request, FailureKind::terminal},      {422, Reason::bad_request, FailureKind::terminal},
        {429, Reason::rate_limited, FailureKind::transient},    {451, Reason::bad_request, FailureKind::terminal},
        {500, Reason::server_error, FailureKind::transient},    {501, Reason::server_error, FailureKind::transient},
        {502, Reason::server_error, FailureKind::transient},    {503, Reason::overloaded, FailureKind::transient},
        {504, Reason::timeout, FailureKind::transient},         {529, Reason::overloaded, FailureKind::transient},
        {599, Reason::server_error, FailureKind::transient},    {100, Reason::malformed_response, FailureKind::transient},
        {204, Reason::malformed_response, FailureKind::transient}, {301, Reason::malformed_response, FailureKind::terminal},
        {0, Reason::malformed_response, FailureKind::transient},   {-1, Reason::malformed_response, FailureKind::transient},
        {600, Reason::malformed_response, FailureKind::transient}, {99, Reason::malformed_response, FailureKind::transient},
    };
    for (const Row& row : rows) {
        CAPTURE(row.status);
        const Failure f = classify_response(resp(row.status, R"({"error":{"message":"boom"}})"), kNow);
        CHECK(f.reason == row.reason);
        CHECK(f.kind == row.kind);
        CHECK(f.status == row.status);
        CHECK(starts_with(f.message, "HTTP " + std::to_string(row.status)));
        CHECK_FALSE(f.retry_after.has_value());
    }
    CHECK(contains(classify_response(resp(413, R"({"error":{"message":"Request exceeds the maximum size"}})"), kNow).message,
                   "HTTP 413: request too large: Request exceeds the maximum size"));
}

TEST_CASE("classifier: a redirect names its target without query or user info", "[classifier]") {
    const Failure f = classify_response(
        resp(302, "<html>moved</html>",
             {{"Location", "https://user:s3cret@api.example.com/v1/chat?key=AIzaSyA-1234567890abcdefghijklmnopqrstu#x"}}),
        kNow);
    CHECK(f.reason == Reason::malformed_response);
    CHECK(f.kind == FailureKind::terminal);
    CHECK(contains(f.message, "HTTP 302: unexpected redirect to https://api.example.com/v1/chat"));
    CHECK(contains(f.message, "check the base URL"));
    CHECK_FALSE(contains(f.message, "s3cret"));
    CHECK_FALSE(contains(f.message, "key="));
    CHECK_FALSE(contains(f.message, "AIza"));
}

TEST_CASE("classifier: Retry-After as delta-seconds", "[classifier][retry-after]") {
    CHECK(retry_after_of({{"Retry-After", "120"}}) == 120000ms);
    CHECK(retry_after_of({{"retry-after", "0"}}) == 0ms);
    CHECK(retry_after_of({{"RETRY-AFTER", "1.5"}}) == 1500ms);
    CHECK(retry_after_of({{"Retry-After", "0.0001"}}) == 1ms);  // rounds up: never earlier than asked
    CHECK(retry_after_of({{"Retry-After", "2."}}) == 2000ms);
    CHECK(retry_after_of({{"Retry-After", ".25"}}) == 250ms);
    CHECK(retry_after_of({{"Retry-After", "  7  "}}) == 7000ms);  // HTTP strips surrounding whitespace
    CHECK(retry_after_of({{"Retry-After", "\t37\t"}}) == 37000ms);
    CHECK(retry_after_of({{"Retry-After", "86400"}}) == 24h);
    // Longer than a day, however absurd, is clamped to a day.
    CHECK(retry_after_of({{"Retry-After", "86401"}}) == 24h);
    CHECK(retry_after_of({{"Retry-After", "99999999999999999999999999999999"}}) == 24h);
    CHECK(retry_after_of({{"Retry-After", std::string(10000, '9')}}) == 24h);
    CHECK(retry_after_of({{"Retry-After", "3.0000000000000000000001"}}) == 3001ms);
}

TEST_CASE("classifier: Retry-After garbage gives no hint", "[classifier][retry-after]") {
    const std::vector<std::string> garbage = {"soon", "-5", "+5", "1e400", "1e3", "", "   ", "inf", "nan", "-0", "5s", "1,5", "0x10",
                                  "1.2.3", ".", "5 5", "5\r\nX-Injected: 1", std::string("5\0", 2),
                                  std::string(10000, 'a'), "\xff\xfe", "Sun, 06 Nov 1994 08:49:37",
                                  "Sun, 31 Feb 2026 00:00:00 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
                                  "Sun, 06 Xyz 1994 08:49:37 GMT", "Funday, 06-Nov-94 08:49:37 GMT",
                                  "Sun, 06-Nov-994 08:49:37 GMT", "Sun Nov  6 08:49:37 1994 GMT"};
    for (const std::string& bad : garbage) {
        CAPTURE(bad);
        CHECK_FALSE(retry_after_of({{"Retry-After", bad}}).has_value());
    }
    CHECK_FALSE(retry_after_of({}).has_value());
    CHECK_FALSE(retry_after_of({{"X-Retry-After", "5"}}).has_value());
}

TEST_CASE("classifier: Retry-After as an HTTP-date in all three formats", "[classifier][retry-after]") {
    // kNow is Thu, 01 Jan 2026 00:00:00 GMT.
    CHECK(retry_after_of({{"Retry-After", "Thu, 01 Jan 2026 00:00:30 GMT"}}) == 30000ms);       // IMF-fixdate
    CHECK(retry_after_of({{"Retry-After", "Thursday, 01-Jan-26 00:01:00 GMT"}}) == 60000ms);    // RFC 850
    CHECK(retry_after_of({{"Retry-After", "Thu Jan  1 00:00:45 2026"}}) == 45000ms);            // asctime
    CHECK(retry_after_of({{"Retry-After", "thu, 01 jan 2026 01:00:00 gmt"}}) == 1h);            // names ignore case
    CHECK(retry_after_of({{"Retry-After", "Thu, 01 Jan 2026 00:00:30 GMT"}}, kNow + 250ms) == 29750ms);
    CHECK(retry_after_of({{"Retry-After", "Thu, 01 Jan 2026 00:00:30 GMT"}}, kNow + 29999999us) == 1ms);

    SECTION("a date in the past means retry now") {
        CHECK(retry_after_of({{"Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"}}) == 0ms);
        CHECK(retry_after_of({{"Retry-After", "Sunday, 06-Nov-94 08:49:37 GMT"}}) == 0ms);
        CHECK(retry_after_of({{"Retry-After", "Sun Nov  6 08:49:37 1994"}}) == 0ms);
        CHECK(retry_after_of({{"Retry-After", "Thu, 01 Jan 2026 00:00:00 GMT"}}) == 0ms);
        // Centuries back: far outside a nanosecond duration's range, still just "now".
        CHECK(retry_after_of({{"Retry-After", "Mon, 01 Jan 0001 00:00:00 GMT"}}) == 0ms);
        CHECK(retry_after_of({{"Retry-After", "Sat, 01 Jan 1600 00:00:00 GMT"}}) == 0ms);
    }
    SECTION("a date far ahead is clamped to a day") {
        CHECK(retry_after_of({{"Retry-After", "Fri, 01 Jan 2027 00:00:00 GMT"}}) == 24h);
        CHECK(retry_after_of({{"Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"}}) == 24h);
    }
    SECTION("RFC 850 two-digit years are never more than 50 years ahead") {
        // 76 -> 2076 (exactly 50 years ahead), 77 -> 1977 (in the past).
        CHECK(retry_after_of({{"Retry-After", "Wednesday, 01-Jan-76 00:00:00 GMT"}}) == 24h);
        CHECK(retry_after_of({{"Retry-After", "Saturday, 01-Jan-77 00:00:00 GMT"}}) == 0ms);
    }
}

TEST_CASE("classifier: retry-after-ms wins over Retry-After", "[classifier][retry-after]") {
    CHECK(retry_after_of({{"Retry-After", "10"}, {"retry-after-ms", "250"}}) == 250ms);
    CHECK(retry_after_of({{"retry-after-ms", "0"}, {"Retry-After", "10"}}) == 0ms);  // 0 is a valid answer
    CHECK(retry_after_of({{"Retry-After-Ms", "1.2"}}) == 2ms);
    CHECK(retry_after_of({{"retry-after-ms", "abc"}, {"Retry-After", "3"}}) == 3000ms);  // unusable: fall back
    CHECK(retry_after_of({{"retry-after-ms", "-1"}, {"Retry-After", "Thu, 01 Jan 2026 00:00:05 GMT"}}) == 5000ms);
    CHECK_FALSE(retry_after_of({{"retry-after-ms", "-1"}}).has_value());
    CHECK(retry_after_of({{"retry-after-ms", "999999999999"}}) == 24h);

    const Failure f = classify_response(resp(429, R"({"error":{"message":"slow down"}})", {{"retry-after-ms", "1500"}}), kNow);
    CHECK(f.reason == Reason::rate_limited);
    REQUIRE(f.retry_after.has_value());
    CHECK(*f.retry_after == 1500ms);
}

TEST_CASE("classifier: x-should-retry overrides the status's kind, not body causes", "[classifier]") {
    const auto with = [](int status, std::string hint, std::string body = R"({"error":{"message":"m"}})") {
        return classify_response(resp(status, std::move(body), {{"X-Should-Retry", std::move(hint)}}), kNow);
    };
    Failure f = with(429, "false");
    CHECK(f.reason == Reason::rate_limited);
    CHECK(f.kind == FailureKind::terminal);

    f = with(503, "FALSE");
    CHECK(f.reason == Reason::overloaded);
    CHECK(f.kind == FailureKind::terminal);

    f = with(400, " true ");
    CHECK(f.reason == Reason::bad_request);
    CHECK(f.kind == FailureKind::transient);

    f = with(401, "true");
    CHECK(f.reason == Reason::auth);
    CHECK(f.kind == FailureKind::transient);

    f = with(500, "maybe");
    CHECK(f.kind == FailureKind::transient);
    f = with(400, "1");
    CHECK(f.kind == FailureKind::terminal);

    // A body that names the cause wins: retrying cannot fix it.
    f = with(429, "true", R"({"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}})");
    CHECK(f.reason == Reason::quota_exhausted);
    CHECK(f.kind == FailureKind::terminal);
    f = with(400, "true", R"({"error":{"code":"content_filter","message":"filtered"}})");
    CHECK(f.kind == FailureKind::policy);
    f = with(400, "true", R"({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208656 tokens > 200000 maximum"}})");
    CHECK(f.reason == Reason::context_too_long);
    CHECK(f.kind == FailureKind::terminal);
}

TEST_CASE("classifier: OpenAI and Azure error bodies", "[classifier][providers]") {
    SECTION("context_length_exceeded") {
        const Failure f = classify_response(
            resp(400, R"({"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}})"),
            kNow);
        CHECK(f.reason == Reason::context_too_long);
        CHECK(f.kind == FailureKind::terminal);
        CHECK(f.provider_code == "context_length_exceeded");
        CHECK(starts_with(f.message, "HTTP 400: This model's maximum context length is 128000 tokens."));
    }
    SECTION("insufficient_quota is terminal at any status") {
        for (int status : {429, 400, 403, 500}) {
            CAPTURE(status);
            const Failure f = classify_response(
                resp(status, R"({"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}})",
                     {{"Retry-After", "20"}}),
                kNow);
            CHECK(f.reason == Reason::quota_exhausted);
            CHECK(f.kind == FailureKind::terminal);
            CHECK(f.provider_code == "insufficient_quota");
            CHECK(f.retry_after == 20000ms);
        }
    }
    SECTION("a plain rate limit stays transient") {
        const Failure f = classify_response(
            resp(429, R"({"error":{"message":"Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 2s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}})"),
            kNow);
        CHECK(f.reason == Reason::rate_limited);
        CHECK(f.kind == FailureKind::transient);
        CHECK(f.provider_code == "rate_limit_exceeded");
    }
    SECTION("a key echoed in a 401 never reaches the message") {
        const Failure f = classify_response(
            resp(401, R"({"error":{"message":"Incorrect API key provided: sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})"),
            kNow);
        CHECK(f.reason == Reason::auth);
        CHECK(f.provider_code == "invalid_api_key");
        CHECK_FALSE(contains(f.message, "AbCdEfGh"));
        CHECK(contains(f.message, "Incorrect API key provided: [redacted]"));
    }
    SECTION("Azure content filter is policy") {
        const Failure f = classify_response(
            resp(400, R"({"error":{"code":"content_filter","param":"prompt","status":400,"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"violence":{"filtered":true,"severity":"high"},"jailbreak":{"filtered":false,"detected":false}}}}})"),
            kNow);
        CHECK(f.reason == Reason::content_filter);
        CHECK(f.kind == FailureKind::policy);
        CHECK(f.provider_code == "content_filter");
        CHECK(starts_with(f.message, "HTTP 400: The response was filtered"));
    }
    SECTION("Azure 429 with a string code and DeploymentNotFound") {
        Failure f = classify_response(
            resp(429, R"({"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 37 seconds."}})",
                 {{"Retry-After", "37"}}),
            kNow);
        CHECK(f.reason == Reason::rate_limited);
        CHECK(f.provider_code == "429");
        CHECK(f.retry_after == 37s);
        f = classify_response(
            resp(404, R"({"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}})"),
            kNow);
        CHECK(f.reason == Reason::not_found);
        CHECK(f.provider_code == "DeploymentNotFound");
    }
}

TEST_CASE("classifier: Anthropic error bodies", "[classifier][providers]") {
    Failure f = classify_response(
        resp(529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"})"),
        kNow);
    CHECK(f.reason == Reason::overloaded);
    CHECK(f.kind == FailureKind::transient);
    CHECK(f.provider_code == "overloaded_error");
    CHECK(f.message == "HTTP 529: Overloaded");

    f = classify_response(
        resp(400, R"({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208656 tokens > 200000 maximum"},"request_id":"req_1"})"),
        kNow);
    CHECK(f.reason == Reason::context_too_long);
    CHECK(f.provider_code == "invalid_request_error");

    f = classify_response(
        resp(400, R"({"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed context limit: 178959 + 64000 > 200000, decrease input length or `max_tokens` and try again"}})"),
        kNow);
    CHECK(f.reason == Reason::context_too_long);

    f = classify_response(
        resp(402, R"({"type":"error","error":{"type":"billing_error","message":"Your credit balance is too low."}})"), kNow);
    CHECK(f.reason == Reason::quota_exhausted);
    CHECK(f.kind == FailureKind::terminal);
    CHECK(f.provider_code == "billing_error");

    f = classify_response(
        resp(429, R"({"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}})",
             {{"retry-after", "12"}, {"x-should-retry", "true"}}),
        kNow);
    CHECK(f.reason == Reason::rate_limited);
    CHECK(f.kind == FailureKind::transient);
    CHECK(f.retry_after == 12s);

    f = classify_response(resp(400, R"({"type":"error","error":{"type":"invalid_request_error","message":"temperature: range: 0..1"}})"), kNow);
    CHECK(f.reason == Reason::bad_request);
    CHECK(f.kind == FailureKind::terminal);
    CHECK(f.message == "HTTP 400: temperature: range: 0..1");
}

TEST_CASE("classifier: Gemini error bodies", "[classifier][providers]") {
    Failure f = classify_response(
        resp(400, R"({"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}})"),
        kNow);
    CHECK(f.reason == Reason::context_too_long);
    CHECK(f.provider_code == "INVALID_ARGUMENT");

    // A quota metric name is not the "input token count" phrase: still a rate limit
    // here (the Gemini adapter decides about daily quotas).
    f = classify_response(
        resp(429, R"({"error":{"code":429,"message":"You exceeded your current quota. Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_input_token_count, limit: 250000","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"36s"}]}})"),
        kNow);
    CHECK(f.reason == Reason::rate_limited);
    CHECK(f.kind == FailureKind::transient);
    CHECK(f.provider_code == "RESOURCE_EXHAUSTED");

    // The streaming endpoint without alt=sse wraps errors in an array.
    f = classify_response(
        resp(503, R"([{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}])"),
        kNow);
    CHECK(f.reason == Reason::overloaded);
    CHECK(f.provider_code == "UNAVAILABLE");
    CHECK(f.message == "HTTP 503: The model is overloaded. Please try again later.");

    f = classify_response(resp(403, R"({"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}})"), kNow);
    CHECK(f.reason == Reason::auth);
    CHECK(f.provider_code == "PERMISSION_DENIED");
}

TEST_CASE("classifier: local OpenAI-compatible servers", "[classifier][providers]") {
    SECTION("vLLM, current and old shapes") {
        Failure f = classify_response(
            resp(400, R"({"error":{"message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion).","type":"BadRequestError","param":null,"code":400}})"),
            kNow);
        CHECK(f.reason == Reason::context_too_long);
        CHECK(f.provider_code == "BadRequestError");
        f = classify_response(
            resp(400, R"({"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","param":null,"code":400})"),
            kNow);
        CHECK(f.reason == Reason::context_too_long);
        CHECK(f.provider_code == "BadRequestError");
        CHECK(starts_with(f.message, "HTTP 400: This model's maximum context length is 4096 tokens."));
        f = classify_response(resp(404, R"({"object":"error","message":"The model `llama9` does not exist.","type":"NotFoundError","param":null,"code":404})"), kNow);
        CHECK(f.reason == Reason::not_found);
        CHECK(f.message == "HTTP 404: The model `llama9` does not exist.");
        f = classify_response(resp(404, R"({"detail":"Not Found"})"), kNow);
        CHECK(f.message == "HTTP 404: Not Found");
    }
    SECTION("llama.cpp") {
        Failure f = classify_response(
            resp(400, R"({"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}})"),
            kNow);
        CHECK(f.reason == Reason::context_too_long);
        CHECK(f.provider_code == "exceed_context_size_error");
        f = classify_response(resp(503, R"({"error":{"code":503,"message":"Loading model","type":"unavailable_error"}})"), kNow);
        CHECK(f.reason == Reason::overloaded);
        CHECK(f.kind == FailureKind::transient);
        CHECK(f.provider_code == "unavailable_error");
        f = classify_response(resp(501, R"({"error":{"code":501,"message":"This server does not support embeddings.","type":"not_supported_error"}})"), kNow);
        CHECK(f.reason == Reason::server_error);
        CHECK(f.provider_code == "not_supported_error");
    }
    SECTION("Ollama") {
        Failure f = classify_response(
            resp(404, R"({"error":{"message":"model \"llama9\" not found, try pulling it first","type":"not_found_error","param":null,"code":null}})"),
            kNow);
        CHECK(f.reason == Reason::not_found);
        CHECK(f.provider_code == "not_found_error");
        CHECK(f.message == "HTTP 404: model \"llama9\" not found, try pulling it first");
        f = classify_response(
            resp(400, R"({"error":{"message":"the input length exceeds the context length","type":"exceed_context_size_error","param":null,"code":null}})"),
            kNow);
        CHECK(f.reason == Reason::context_too_long);
        f = classify_response(resp(500, R"({"error":"llama runner process has terminated: signal: killed"})"), kNow);
        CHECK(f.reason == Reason::server_error);
        CHECK(f.message == "HTTP 500: llama runner process has terminated: signal: killed");
    }
}

TEST_CASE("classifier: body signals are portable across statuses", "[classifier]") {
    // A proxy may put a content filter on a 5xx: still policy, never retried.
    Failure f = classify_response(resp(500, R"({"error":{"code":"content_filter","message":"blocked"}})"), kNow);
    CHECK(f.reason == Reason::content_filter);
    CHECK(f.kind == FailureKind::policy);
    // Matching is case-insensitive on the message.
    f = classify_response(resp(400, R"({"error":{"message":"PROMPT IS TOO LONG"}})"), kNow);
    CHECK(f.reason == Reason::context_too_long);
    // Message text counts on request errors and plain 500s (Gemini's INTERNAL), not
    // on a rate limit or an overload; a code counts everywhere.
    f = classify_response(resp(500, R"({"error":{"code":500,"message":"The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).","status":"INTERNAL"}})"), kNow);
    CHECK(f.reason == Reason::context_too_long);
    f = classify_response(resp(429, R"({"error":{"message":"maximum context length of your tier reached, slow down"}})"), kNow);
    CHECK(f.reason == Reason::rate_limited);
    f = classify_response(resp(503, R"({"error":{"message":"prompt is too long for the queue"}})"), kNow);
    CHECK(f.reason == Reason::overloaded);
    f = classify_response(resp(503, R"({"error":{"type":"exceed_context_size_error","message":"x"}})"), kNow);
    CHECK(f.reason == Reason::context_too_long);
    // An ordinary 400 is a bad request, with the provider's type as its code.
    f = classify_response(resp(400, R"({"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":null}})"), kNow);
    CHECK(f.reason == Reason::bad_request);
    CHECK(f.provider_code == "invalid_request_error");
    // Signals on a redirect or an informational status are not error bodies.
    f = classify_response(resp(307, R"({"error":{"code":"content_filter"}})"), kNow);
    CHECK(f.reason == Reason::malformed_response);
    CHECK(f.provider_code.empty());
}

TEST_CASE("classifier: messages are short, one line and safe", "[classifier]") {
    SECTION("long provider text is cut at a UTF-8 boundary") {
        std::string text;
        for (int i = 0; i < 1000; ++i) text += "\xC3\xA9";  // é
        const Failure f = classify_response(resp(500, R"({"error":{"message":")" + text + R"("}})"), kNow);
        CHECK(starts_with(f.message, "HTTP 500: \xC3\xA9"));
        CHECK(f.message.size() <= std::string("HTTP 500: ").size() + 300 + 3);
        CHECK(f.message.size() > 250);
        CHECK(f.message.substr(f.message.size() - 3) == "...");
        CHECK(valid_utf8(f.message));
    }
    SECTION("control characters and invalid UTF-8 are replaced") {
        const Failure f = classify_response(
            resp(400, "{\"error\":{\"message\":\"line one\\nline two\\r\\n\\tthree\\u0000four\\u001b[31mred\\u007f \\u2028x\"}}"), kNow);
        CHECK(f.message == "HTTP 400: line one line two three four [31mred x");
        const Failure g = classify_response(resp(502, "bad \xFF\xFE bytes\r\n\x01"), kNow);
        CHECK(g.message == "HTTP 502: body is not valid JSON: bad ?? bytes");
        CHECK(valid_utf8(g.message));
    }
    SECTION("a body that is not JSON is quoted briefly") {
        std::string html = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>";
        html += std::string(5000, 'x') + "</body></html>";
        const Failure f = classify_response(resp(502, html, {{"Content-Type", "text/html"}}), kNow);
        CHECK(f.reason == Reason::server_error);
        CHECK(starts_with(f.message, "HTTP 502: body is not valid JSON: <html> <head><title>502 Bad Gateway</title></head> <body>x"));
        CHECK(f.message.size() <= std::string("HTTP 502: body is not valid JSON: ").size() + 100 + 3);
        CHECK(f.provider_code.empty());
    }
    SECTION("empty and whitespace bodies") {
        CHECK(classify_response(resp(503), kNow).message == "HTTP 503: empty body");
        CHECK(classify_response(resp(504, " \r\n\t"), kNow).message == "HTTP 504: empty body");
    }
    SECTION("credentials in provider text are redacted") {
        const Failure f = classify_response(
            resp(401, R"({"error":{"message":"bad key AIzaSyA-1234567890abcdefghijklmnopqrstu and header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc and sk-ant-api03-0123456789abcdefghij"}})"),
            kNow);
        CHECK_FALSE(contains(f.message, "AIzaSy"));
        CHECK_FALSE(contains(f.message, "eyJhbGci"));
        CHECK_FALSE(contains(f.message, "api03"));
        CHECK(contains(f.message, "Bearer [redacted]"));
    }
    SECTION("JSON without a usable message") {
        for (const char* body : {R"({"error":42})", R"({"error":[1,2,3]})", R"({"error":null})", R"({"error":{}})",
                                 R"([])", R"([1])", R"("just a string")", R"({"type":"error","error":null})", R"({"error":{"message":{"nested":true}}})",
                                 R"({"error":{"message":1e308,"code":123456789012345678901234567890}})"}) {
            CAPTURE(body);
            const Failure f = classify_response(resp(500, body), kNow);
            CHECK(f.reason == Reason::server_error);
            CHECK(f.kind == FailureKind::transient);
            CHECK(f.provider_code.empty());
            CHECK(valid_utf8(f.message));
            CHECK(starts_with(f.message, "HTTP 500: "));
        }
        CHECK(classify_response(resp(500, R"({"error":{}})"), kNow).message ==
              "HTTP 500: JSON body without an error message: {\"error\":{}}");
        CHECK(classify_response(resp(529, R"({"type":"error","error":{"type":"overloaded_error"}})"), kNow).message ==
              "HTTP 529: overloaded_error");
        // A huge number is not JSON nlohmann accepts: quoted as text.
        const Failure f = classify_response(resp(500, R"({"error":{"code":1e400}})"), kNow);
        CHECK(starts_with(f.message, "HTTP 500: body is not valid JSON: "));
    }
}

TEST_CASE("classifier: hostile bodies and headers are classified, not fatal", "[classifier]") {
    SECTION("100,000 nested brackets") {
        const Failure f = classify_response(resp(503, std::string(100000, '[')), kNow);
        CHECK(f.reason == Reason::overloaded);
        CHECK(starts_with(f.message, "HTTP 503: JSON body nested too deeply: [[["));
        const Failure g = classify_response(resp(400, std::string(100000, '{') + "\"error\":1"), kNow);
        CHECK(g.reason == Reason::bad_request);
    }
    SECTION("a body over 1 MiB is not parsed") {
        std::string big = R"({"error":{"code":"content_filter","message":")" + std::string(2u << 20, 'a') + R"("}})";
        const Failure f = classify_response(resp(500, big), kNow);
        CHECK(f.reason == Reason::server_error);  // the filter code was never looked at
        CHECK(contains(f.message, "body too large to inspect"));
    }
    SECTION("nesting just inside the limit still parses") {
        std::string deep = R"({"error":{"code":"content_filter","x":)" + std::string(60, '[') + std::string(60, ']') + "}}";
        CHECK(classify_response(resp(400, deep), kNow).reason == Reason::content_filter);
    }
    SECTION("CR/LF, NUL and 10 KB header values") {
        const Failure f = classify_response(
            resp(429, R"({"error":{"message":"x"}})",
                 {{"Retry-After", "5\r\nSet-Cookie: a=b"},
                  {"x-should-retry", std::string("true\0", 5)},
                  {"retry-after-ms", std::string(10240, 'z')},
                  {"Location", std::string(10240, '/')}}),
            kNow);
        CHECK(f.reason == Reason::rate_limited);
        CHECK(f.kind == FailureKind::transient);
        CHECK_FALSE(f.retry_after.has_value());
        const Failure g = classify_response(resp(308, "", {{"Location", "https://x.example/" + std::string(10240, 'p')}}), kNow);
        CHECK(g.message.size() < 450);
    }
    SECTION("invalid UTF-8 inside JSON strings") {
        const Failure f = classify_response(resp(400, "{\"error\":{\"message\":\"caf\xE9\",\"code\":\"content_filter\"}}"), kNow);
        CHECK(f.reason == Reason::bad_request);  // not JSON nlohmann accepts, so no body signal
        CHECK(valid_utf8(f.message));
    }
}

TEST_CASE("classifier: malformed() for unusable 2xx bodies", "[classifier]") {
    Failure f = malformed("choices[0].message.content is missing");
    CHECK(f.reason == Reason::malformed_response);
    CHECK(f.kind == FailureKind::transient);
    CHECK(f.status == 0);
    CHECK(f.message == "choices[0].message.content is missing");
    CHECK(malformed("").message == "malformed response");
    f = malformed("body: {\"x\":\n\"" + std::string(5000, 'y') + "\xFF");
    CHECK(f.message.size() <= 603);
    CHECK_FALSE(has_control_bytes(f.message));
    CHECK(valid_utf8(f.message));
}

namespace {

// Random JSON-ish text built from error-body vocabulary, sometimes broken.
struct BodyGen {
    std::mt19937& rng;

    std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); }
    bool chance(double p) { return std::bernoulli_distribution(p)(rng); }

    std::string random_bytes(std::size_t max_len) {
        std::string s(pick(max_len + 1), '\0');
        for (char& c : s) c = static_cast<char>(pick(256));
        return s;
    }
    std::string scalar() {
        static const char* const strings[] = {
            "\"content_filter\"", "\"insufficient_quota\"", "\"context_length_exceeded\"",
            "\"exceed_context_size_error\"", "\"This model's Maximum Context Length is 10\"",
            "\"prompt is too long\"", "\"rate_limit_exceeded\"", "\"error\"", "\"\"", "\"overloaded_error\"",
            "\"RESOURCE_EXHAUSTED\"", "\"Limit 30000 tokens per min, Requested 35000 tokens\"", "\"\\u0000\\n\\t\"", "\"caf\xC3\xA9\"", "\"bad \xFF utf8\"",
        };
        static const char* const others[] = {"0", "-1", "400", "1e308", "1e400", "123456789012345678901234567890",
                                             "3.14", "null", "true", "false", "-0.0e-5"};
        if (chance(0.3)) return strings[pick(6)];  // the body signals, often
        if (chance(0.6)) return strings[pick(std::size(strings))];
        return others[pick(std::size(others))];
    }
    std::string value(int depth) {
        if (depth > 3 || chance(0.4)) return scalar();
        static const char* const keys[] = {"error", "message", "type", "code", "status", "object",
                                           "detail", "param", "details", "innererror", "request_id"};
        std::string out;
        if (chance(0.7)) {
            out = "{";
            const std::size_t n = pick(5);
            for (std::size_t i = 0; i < n; ++i) {
                if (i) out += ',';
                out += '"';
                out += keys[pick(std::size(keys))];
                out += "\":" + value(depth + 1);
            }
            out += '}';
        } else {
            out = "[";
            const std::size_t n = pick(4);
            for (std::size_t i = 0; i < n; ++i) out += (i ? "," : "") + value(depth + 1);
            out += ']';
        }
        return out;
    }
    // The shapes real providers use, filled with random vocabulary.
    std::string error_shaped() {
        static const char* const fields[] = {"message", "type", "code", "status"};
        std::string members;
        const std::size_t n = 1 + pick(3);
        for (std::size_t i = 0; i < n; ++i)
            members += std::string(i ? "," : "") + "\"" + fields[pick(std::size(fields))] + "\":" + scalar();
        if (chance(0.2)) return "{\"object\":\"error\"," + members + "}";
        if (chance(0.1)) return "[{\"error\":{" + members + "}}]";
        return "{\"type\":\"error\",\"error\":{" + members + "}}";
    }
    std::string body() {
        switch (pick(12)) {
            case 5:
            case 6:
            case 7:
            case 8: return error_shaped();
            case 0: return {};
            case 1: return random_bytes(512);
            case 2: {  // deep nesting, sometimes very deep
                const std::size_t n = chance(0.1) ? 100000 : pick(200) + 1;
                return chance(0.5) ? std::string(n, '[') : [&] {
                    std::string s;
                    for (std::size_t i = 0; i < n; ++i) s += "{\"error\":";
                    return s;
                }();
            }
            case 3: {  // truncated JSON
                std::string v = value(0);
                return v.substr(0, pick(v.size() + 1));
            }
            case 4: {  // JSON with a flipped byte
                std::string v = value(0);
                if (!v.empty()) v[pick(v.size())] = static_cast<char>(pick(256));
                return v;
            }
            default: return value(0);
        }
    }
    std::string header_value() {
        switch (pick(8)) {
            case 0: return random_bytes(64);
            case 1: return std::to_string(static_cast<long long>(pick(200000)) - 1000);
            case 2: return "Thu, 01 Jan 2026 00:0" + std::to_string(pick(10)) + ":00 GMT";
            case 3: return chance(0.5) ? "true" : "FALSE";
            case 4: return std::string(10240, static_cast<char>('0' + pick(10)));
            case 5: return std::to_string(pick(100)) + "." + std::to_string(pick(1000000));
            case 6: return "Sunday, 0" + std::to_string(pick(10)) + "-Nov-" + std::to_string(pick(100)) + " 08:49:37 GMT";
            default: return "1e400";
        }
    }
};

}  // namespace

TEST_CASE("classifier: 2,000 random responses never throw and stay consistent", "[classifier][fuzz]") {
    std::mt19937 rng(20260101u);
    BodyGen gen{rng};
    static const int statuses[] = {0,   -7,  100, 200, 204, 301, 302, 400, 401, 402, 403, 404, 405, 408, 409,
                                   413, 418, 422, 429, 500, 501, 502, 503, 504, 529, 599, 600, 999, 65536};
    static const char* const names[] = {"Retry-After", "retry-after-ms", "x-should-retry", "Location",
                                        "Content-Type", "X-Other"};
    for (int iter = 0; iter < 2000; ++iter) {
        HttpResponse r;
        r.status = gen.chance(0.7)    ? statuses[gen.pick(std::size(statuses))]
                   : gen.chance(0.9) ? 400 + static_cast<int>(gen.pick(200))
                                     : static_cast<int>(gen.pick(2000)) - 1000;
        const std::size_t n_headers = gen.pick(5);
        for (std::size_t h = 0; h < n_headers; ++h)
            r.headers.emplace_back(names[gen.pick(std::size(names))], gen.header_value());
        r.body = gen.body();

        Failure f;
        REQUIRE_NOTHROW(f = classify_response(r, kNow));

        // Cheap invariants first; only report (and build a CAPTURE) on failure.
        const Expected want = by_status(r.status);
        const bool error_status = r.status >= 400 && r.status <= 599;
        const std::string* hint = r.header("x-should-retry");
        bool ok = f.status == r.status && starts_with(f.message, "HTTP ") && f.message.size() < 512 &&
                  !has_control_bytes(f.message) && valid_utf8(f.message) && valid_utf8(f.provider_code) &&
                  (!f.retry_after || (*f.retry_after >= 0ms && *f.retry_after <= 24h));
        if (f.reason == Reason::content_filter) {
            ok = ok && error_status && contains(r.body, "content_filter") && f.kind == FailureKind::policy;
        } else if (f.reason == Reason::quota_exhausted && want.reason != Reason::quota_exhausted) {
            ok = ok && error_status && contains(r.body, "insufficient_quota") && f.kind == FailureKind::terminal;
        } else if (f.reason == Reason::context_too_long) {
            const bool by_code =
                contains(r.body, "context_length_exceeded") || contains(r.body, "exceed_context_size_error");
            const bool text_counts = r.status != 429 && (r.status < 500 || r.status == 500);
            ok = ok && error_status && f.kind == FailureKind::terminal &&
                 (by_code || (text_counts && (icontains(r.body, "maximum context length") ||
                                              icontains(r.body, "prompt is too long"))));
        } else {
            FailureKind kind = want.kind;
            if (hint && (*hint == "true")) kind = FailureKind::transient;
            if (hint && (*hint == "FALSE")) kind = FailureKind::terminal;
            // A 402 whose body also says insufficient_quota is terminal whatever the hint.
            const bool quota_body = want.reason == Reason::quota_exhausted && contains(r.body, "insufficient_quota") &&
                                    f.kind == FailureKind::terminal;
            ok = ok && f.reason == want.reason && (f.kind == kind || quota_body);
        }
        if (!ok) {
            const std::string body_start = r.body.substr(0, 200);
            const std::string_view reason = to_string(f.reason), kind = to_string(f.kind);
            CAPTURE(iter, r.status, body_start, f.message, reason, kind);
            FAIL("inconsistent classification");
        }
    }
}
