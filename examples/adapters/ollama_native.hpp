// SPDX-License-Identifier: MIT
// A provider adapter written outside the library, as a template to copy: Ollama's
// native chat API (POST {base}/api/chat with "stream": false). An adapter only
// translates; the router does everything else (sending, timeouts, retries,
// breakers, schema validation, metrics). It is three const methods:
//   encode()   ChatRequest -> HttpRequest. No I/O. Refuse what the API cannot express.
//   decode()   a 2xx HttpResponse -> ChatResponse, or a Failure for a 2xx that is unusable.
//   classify() optional: refine the router's generic reading of a non-2xx response.
// None of them may throw on account of what a server sent: errors are values, and
// each Failure's Reason decides what the router does (transient: retry then fail
// over; terminal: fail over now; policy: stop and tell the caller). The methods
// are called from many threads at once, so they must not modify the adapter.
// Only public failover API is used (nothing from failover::detail), so this file
// keeps compiling as the library evolves.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <failover/failover.hpp>

namespace example {

/// What an OllamaNative route needs to know.
struct OllamaNativeOptions {
    std::string base_url = "http://127.0.0.1:11434";  ///< the server root; requests go to {base_url}/api/chat
    std::string model{};                              ///< required: a model the server has pulled
};

/// Ollama's native /api/chat. Satisfies failover::HttpAdapter and failover::ClassifyingAdapter.
class OllamaNative {
public:
    /// Bad configuration fails here, at start-up, naming the field (never at request time).
    explicit OllamaNative(OllamaNativeOptions o) : url_(std::move(o.base_url)), model_(std::move(o.model)) {
        while (!url_.empty() && url_.back() == '/') url_.pop_back();
        if (url_.rfind("http://", 0) != 0 && url_.rfind("https://", 0) != 0)
            throw std::invalid_argument("OllamaNative: base_url must start with http:// or https://, got '" + url_ +
                                        "'");
        if (model_.empty()) throw std::invalid_argument("OllamaNative: model must not be empty");
        url_ += "/api/chat";
    }

    /// Request -> wire. A request this API cannot express is a bad_request (terminal: the
    /// router fails over to a route that can), never a silently dropped field. Optional knobs
    /// the request leaves unset are left out, so the server's own defaults apply.
    failover::Result<failover::HttpRequest> encode(const failover::ChatRequest& req) const {
        using nlohmann::json;
        if (!req.tools.empty()) return unsendable("tools are not supported by this adapter");
        json messages = json::array();
        for (const auto& m : req.messages)
            messages.push_back({{"role", failover::to_string(m.role)}, {"content", m.content}});
        json body = {{"model", model_}, {"messages", std::move(messages)}, {"stream", false}};
        json options = json::object();
        if (req.max_tokens) options["num_predict"] = *req.max_tokens;
        if (req.temperature) options["temperature"] = *req.temperature;
        if (!req.stop.empty()) options["stop"] = req.stop;
        if (!options.empty()) body["options"] = std::move(options);
        if (req.schema) body["format"] = req.schema->document();  // Ollama takes the JSON Schema as is
        failover::HttpRequest http;
        http.url = url_;
        http.headers = {{"Content-Type", "application/json"}};
        try {
            http.body = body.dump();  // throws on text that is not valid UTF-8
        } catch (const nlohmann::json::exception&) {
            return unsendable("the request contains text that is not valid UTF-8");
        }
        return http;
    }

    /// 2xx -> answer. Called only for 2xx statuses. Anything unusable is malformed_response
    /// (transient: the router retries, then fails over); failover::malformed() cleans and
    /// shortens the text it is given, so provider text is safe to put in it. A provider with a
    /// refusal or content-filter signal would return Failure::of(Reason::refusal, ...) here
    /// (policy: the chain stops); Ollama has none.
    failover::Result<failover::ChatResponse> decode(const failover::ChatRequest& req,
                                                    const failover::HttpResponse& res) const {
        try {
            const auto body = nlohmann::json::parse(res.body, nullptr, /*allow_exceptions=*/false);
            if (!body.is_object()) return failover::malformed("ollama: response body is not a JSON object");
            if (auto e = body.find("error"); e != body.end() && e->is_string())
                return failover::malformed("ollama: error in a 2xx response: " + e->get<std::string>());
            const auto msg = body.find("message");
            if (msg == body.end() || !msg->is_object() || !msg->contains("content") || !(*msg)["content"].is_string())
                return failover::malformed("ollama: response has no message.content");
            if (body.value("done", false) != true) return failover::malformed("ollama: response is not done");

            failover::ChatResponse out;
            out.text = (*msg)["content"].get<std::string>();
            const std::string why = body.value("done_reason", std::string("stop"));
            out.finish_reason = why == "stop"     ? failover::FinishReason::stop
                                : why == "length" ? failover::FinishReason::length
                                                  : failover::FinishReason::other;
            out.usage.input_tokens = count(body, "prompt_eval_count");
            out.usage.output_tokens = count(body, "eval_count");
            out.model = body.value("model", model_);
            if (req.schema) {
                // The model's answer is untrusted input too: bound its nesting before parsing it
                // (a deep value would recurse when copied; the same bound as the schema gate's).
                if (!failover::json_depth_within(out.text, failover::Schema::max_depth))
                    return failover::malformed("ollama: the structured answer nests too deeply");
                auto answer = nlohmann::json::parse(out.text, nullptr, /*allow_exceptions=*/false);
                if (!answer.is_discarded()) out.json = std::move(answer);
                else if (out.finish_reason == failover::FinishReason::length)  // cut off: a retry may fit
                    return failover::malformed("ollama: structured output truncated at num_predict");
                // Complete but not JSON: leave .json null. The router's schema gate makes it
                // schema_invalid and sends this text back to the model in a repair turn.
            }
            return out;
        } catch (const std::exception& e) {  // e.g. a field of an unexpected type
            return failover::malformed(std::string("ollama: unexpected response structure: ") + e.what());
        }
    }

    /// Optional (without it the generic classification stands). The router has already
    /// classified the status (404 not_found, 429 rate_limited + Retry-After, 5xx transient, ...)
    /// and put the cleaned {"error":"text"} in f.message; `e` holds the body it parsed (e.body,
    /// e.fields.message, ...), so there is no need to parse it again. Refine only with what this
    /// provider's own words mean; leave everything else alone (x-should-retry is applied after
    /// this, by the router). Must not throw.
    void classify(const failover::ErrorReply& e, failover::Failure& f) const noexcept {
        const std::string_view m = f.message;
        const int status = e.response.status;
        if (status == 404 || (contains(m, "model \"") && contains(m, "not found"))) {
            f.kind = failover::FailureKind::terminal;  // not pulled: retrying cannot help, fail over now
            f.reason = failover::Reason::not_found;
        } else if ((status == 500 || (status < 500 && status != 429)) && contains(m, "context length")) {
            f.kind = failover::FailureKind::terminal;  // "the input length exceeds the context length"
            f.reason = failover::Reason::context_too_long;
        }
    }

    /// gen_ai.system in metrics.
    std::string_view provider() const noexcept { return "ollama"; }
    /// The model requested, for metrics.
    std::string_view model() const noexcept { return model_; }

private:
    static failover::Failure unsendable(std::string why) {
        return failover::Failure::of(failover::Reason::bad_request, "ollama: " + std::move(why));
    }
    static std::int64_t count(const nlohmann::json& j, const char* key) {
        const auto it = j.find(key);
        return it != j.end() && it->is_number_integer() ? std::max<std::int64_t>(0, it->get<std::int64_t>()) : 0;
    }
    static bool contains(std::string_view hay, std::string_view needle) noexcept {
        return hay.find(needle) != std::string_view::npos;
    }

    std::string url_;
    std::string model_;
};

static_assert(failover::ClassifyingAdapter<OllamaNative>, "OllamaNative must satisfy the adapter concepts");

}  // namespace example
