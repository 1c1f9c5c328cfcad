// SPDX-License-Identifier: MIT
// libFuzzer target for Schema::parse and Schema::validate, built with ASan and
// UBSan. An input is a schema's JSON text, optionally followed by a 0x1E byte
// and a value's JSON text (the seeds, written from the JSON-Schema-Test-Suite,
// look like that); without a value, a few fixed values and the schema's own
// document are validated. A finding is any crash, sanitizer report, hang
// (-timeout), or broken invariant (abort): parse throws nothing but
// std::invalid_argument, the text and nlohmann::json overloads agree,
// validate() never throws, accepts() agrees with validate() unless the work
// budget ran out, and every error pointer exists in the value. The budget is
// small here (200,000 steps) so each input stays fast. It also holds the request
// writer (detail/json_write.hpp) to json::dump(): the same bytes for the parsed
// document, and for the raw input taken as one string (which need not be UTF-8)
// the same bytes or the same refusal.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <failover/detail/json_write.hpp>
#include <failover/schema.hpp>

namespace {

[[noreturn]] void finding(const char* what) {
    (void)what;
    std::abort();
}

void check_value(const failover::Schema& schema, const nlohmann::json& value) {
    const auto errors = schema.validate(value);
    const bool accepted = schema.accepts(value);
    const bool stopped = !errors.empty() && errors.front().message.rfind("validation stopped", 0) == 0;
    if (accepted != errors.empty() && !stopped) finding("accepts() and validate() disagree");
    for (const auto& e : errors)
        if (!value.contains(nlohmann::json::json_pointer(e.pointer))) finding("an error points outside the value");
}

// json_write gives dump()'s bytes, or refuses where dump() throws.
void check_writer(const nlohmann::json& value) {
    std::string dumped;
    bool dump_refused = false;
    try {
        dumped = value.dump();
    } catch (const nlohmann::json::type_error&) {
        dump_refused = true;
    }
    std::string written;
    const bool ok = failover::detail::json_write(value, written);
    if (ok == dump_refused) finding("json_write and dump() disagree on refusing");
    if (ok && written != dumped) finding("json_write wrote other bytes than dump()");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t sep = input.find('\x1e');
    const std::string_view schema_text = input.substr(0, sep);

    failover::SchemaOptions options;
    options.max_steps = 200000;
    options.max_errors = 20;

    std::shared_ptr<const failover::Schema> schema;
    bool text_refused = false;
    try {
        schema = failover::Schema::parse(schema_text, options);
    } catch (const std::invalid_argument&) {
        text_refused = true;
    }
    // The nlohmann::json overload must reach the same verdict on the same document.
    check_writer(nlohmann::json(std::string(input)));
    const nlohmann::json doc = nlohmann::json::parse(schema_text, nullptr, false);
    if (!doc.is_discarded()) {
        check_writer(doc);
        bool json_refused = false;
        try {
            (void)failover::Schema::parse(doc, options);
        } catch (const std::invalid_argument&) {
            json_refused = true;
        }
        if (json_refused != text_refused) finding("parse(text) and parse(json) disagree");
    }
    if (!schema) return 0;

    if (sep != std::string_view::npos) {
        const nlohmann::json value = nlohmann::json::parse(input.substr(sep + 1), nullptr, false);
        if (!value.is_discarded()) check_value(*schema, value);
        return 0;
    }
    for (const nlohmann::json& value :
         {nlohmann::json(nullptr), nlohmann::json(0), nlohmann::json(-1.5), nlohmann::json("abc"),
          nlohmann::json::array({1, "a", nullptr}), nlohmann::json::object({{"a", 1}}), schema->document()})
        check_value(*schema, value);
    return 0;
}
