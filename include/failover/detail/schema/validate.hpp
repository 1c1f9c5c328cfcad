// SPDX-License-Identifier: MIT
// Runs a compiled Program against a value. One Evaluator per validation call
// (cheap to build), so a Program is shared by any number of threads.
//
// Cost is bounded three ways. Every step (a schema applied to a value, a
// property or item visited, a node hashed or compared, a regex search charged
// at its worst case, a format check by length) is counted against a budget,
// and crossing it stops the validation with an error that says so: an
// exponential anyOf/$ref blow-up over a deep value becomes a clear failure,
// never a stall. Recursion is one eval() per schema applied; the value's depth
// is checked before (Schema::max_depth) and the chain of schemas applied to one
// value is finite (the compiler refuses in-place cycles), and a hard cap on the
// eval() depth stops anything that still goes too deep. uniqueItems hashes
// (sort by hash, compare only equal hashes), enum looks the value's hash up.
//
// Errors carry RFC 6901 pointers into the value. Subschemas whose verdict is
// all that matters (not, if, contains, propertyNames, the branches of anyOf
// and oneOf) run quietly and stop at their first failure. When an anyOf/oneOf
// fails, its branches run once more to collect their errors (prefixed with the
// branch), for the outermost such combinator on the path only: collecting
// details never changes the cost beyond a constant factor.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/detail/schema/compile.hpp"
#include "failover/detail/schema/formats.hpp"
#include "failover/detail/schema/numbers.hpp"
#include "failover/detail/schema/values.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail::schema {

/// One validation error: a JSON pointer into the value and a message.
struct Issue {
    std::string pointer;
    std::string message;
};

/// Bounds of one validation call.
struct Limits {
    std::uint64_t max_steps = 0;
    std::size_t max_errors = 0;
    std::size_t max_eval_depth = 0;
};

/// Validates values against a Program; one instance per call.
class Evaluator {
public:
    Evaluator(const Program& program, const Limits& limits) noexcept
        : p_(program), limits_(limits), steps_left_(limits.max_steps) {}

    /// True when `v` is valid. With `out`, the errors (at most max_errors, then a
    /// note); without, it stops at the first failure.
    bool run(const nlohmann::json& v, std::vector<Issue>* out) {
        Sink root;
        bool ok = false;
        try {
            ok = eval(p_.root, v, out ? &root : nullptr);
        } catch (const Stop& stop) {
            if (out) {
                out->push_back({"", stop.message});
                for (auto& e : root.list) out->push_back(std::move(e));
            }
            return false;
        }
        if (out) {
            *out = std::move(root.list);
            if (root.truncated)
                out->push_back({"", "more errors not listed (at most " + std::to_string(limits_.max_errors) + " are)"});
            if (!ok && out->empty()) out->push_back({"", "value does not match the schema"});
        }
        return ok;
    }

    /// Steps used so far.
    std::uint64_t steps_used() const noexcept { return limits_.max_steps - steps_left_; }

private:
    struct Stop {
        std::string message;
    };
    struct Sink {
        std::vector<Issue> list;
        bool truncated = false;
    };
    struct PathItem {
        const std::string* key;  // null: an array index
        std::size_t index;
    };

    void charge(std::uint64_t n) {
        if (n > steps_left_) [[unlikely]]
            budget_exceeded();
        steps_left_ -= n;
    }

    [[noreturn, gnu::noinline, gnu::cold]] void budget_exceeded() {
        steps_left_ = 0;
        throw Stop{"validation stopped: the work budget of " + std::to_string(limits_.max_steps) +
                   " steps was exceeded (Schema::Options::max_steps); the value counts as invalid"};
    }

    std::string pointer() const {
        std::string p;
        for (const PathItem& item : path_) {
            if (item.key) append_token(p, *item.key);
            else p += "/" + std::to_string(item.index);
        }
        return p;
    }

    // Building an error costs work too (its pointer grows with the path).
    void report(Sink* s, std::string message) {
        if (!s) return;
        if (s->list.size() >= limits_.max_errors) {
            s->truncated = true;
            return;
        }
        charge(1 + path_.size());
        s->list.push_back({pointer(), std::move(message)});
    }

    void append(Sink* s, Sink& from, const std::string& prefix) {
        if (!s) return;
        for (Issue& e : from.list) {
            if (s->list.size() >= limits_.max_errors) {
                s->truncated = true;
                return;
            }
            charge(1);
            s->list.push_back({std::move(e.pointer), prefix + e.message});
        }
        s->truncated = s->truncated || from.truncated;
    }

    // The errors of every branch of a failed anyOf/oneOf, each prefixed with its
    // branch. Only for the outermost such combinator on the path: deeper ones
    // report their summary line alone, so collecting details never multiplies
    // the work (a quiet pass has already decided the verdict).
    void branch_details(Sink* s, const std::vector<std::uint32_t>& branches, const nlohmann::json& v, const char* kw) {
        if (!s || details_ > 0 || s->list.size() >= limits_.max_errors) return;
        ++details_;
        for (std::size_t i = 0; i < branches.size(); ++i) {
            Sink one;
            if (!eval(branches[i], v, &one)) append(s, one, std::string("(") + kw + " #" + std::to_string(i) + ") ");
        }
        --details_;
    }

    const Node& target(std::uint32_t n) const noexcept {
        const Node& node = p_.nodes[n];
        return node.ref != no_node ? p_.nodes[node.ref] : node;
    }

    static bool is_false(const Node& n) noexcept { return n.is_boolean && !n.boolean; }

    // A schema's value (const, enum) as short JSON text for a message.
    static std::string brief(const nlohmann::json& j) {
        std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (text.size() <= 80) return text;
        std::size_t cut = 77;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0u) == 0x80u) --cut;
        text.resize(cut);
        return text + "...";
    }

    // ---- messages ---------------------------------------------------------------------------
    // Built out of line: string temporaries would otherwise sit in the frames of
    // the functions on the recursion path (eval, eval_node, arrays, objects,
    // logic, child), and those frames, times the eval depth, are the stack a
    // validation needs.

    // "<what> <n> <unit> (got <got>)"
    [[gnu::noinline, gnu::cold]] void report_count(Sink* s, const char* what, std::uint64_t n, const char* unit,
                                                   std::uint64_t got) {
        report(s, std::string(what) + " " + std::to_string(n) + " " + unit + " (got " + std::to_string(got) + ")");
    }

    // before + the quoted text + after
    [[gnu::noinline, gnu::cold]] void report_quoted(Sink* s, const char* before, const std::string& text,
                                                    const char* after) {
        report(s, before + quote(text) + after);
    }

    // "<a><i><b><j><c>"
    [[gnu::noinline, gnu::cold]] void report_indexes(Sink* s, const char* a, std::size_t i, const char* b,
                                                     std::size_t j, const char* c) {
        report(s, a + std::to_string(i) + b + std::to_string(j) + c);
    }

    [[gnu::noinline, gnu::cold]] void report_type(Sink* s, std::uint8_t types, const nlohmann::json& v) {
        report(s, type_message(types, v));
    }

    [[gnu::noinline, gnu::cold]] void report_literal(Sink* s, const char* message) { report(s, message); }

    [[noreturn, gnu::noinline, gnu::cold]] void depth_exceeded() {
        throw Stop{"validation stopped: schemas applied " + std::to_string(limits_.max_eval_depth) +
                   " levels deep (a long chain of $ref/allOf over a deep value); the value counts as invalid"};
    }

    // ---- the recursion ----------------------------------------------------------------------

    bool eval(std::uint32_t n, const nlohmann::json& v, Sink* s) {
        charge(1);
        if (depth_ >= limits_.max_eval_depth) [[unlikely]]
            depth_exceeded();
        ++depth_;
        const bool ok = eval_node(target(n), v, s);
        --depth_;
        return ok;
    }

    bool eval_node(const Node& node, const nlohmann::json& v, Sink* s) {
        if (node.is_boolean) {
            if (!node.boolean)
                report_literal(s, depth_ == 1 ? "the schema is false: no value is valid"
                                              : "no value is allowed here (the schema is false)");
            return node.boolean;
        }
        bool ok = true;
        const auto failed = [&]() {
            ok = false;
            return s == nullptr;  // quiet: stop at the first failure
        };
        if (node.types && !type_ok(node.types, v)) {
            if (failed()) return false;
            report_type(s, node.types, v);
        }
        if (node.value && !values(*node.value, v, s) && failed()) return false;
        switch (v.type()) {
            case nlohmann::json::value_t::number_integer:
            case nlohmann::json::value_t::number_unsigned:
            case nlohmann::json::value_t::number_float:
                if (node.number && !numbers(*node.number, v, s) && failed()) return false;
                break;
            case nlohmann::json::value_t::string:
                if (node.string && !strings(*node.string, v.get_ref<const std::string&>(), s) && failed()) return false;
                break;
            case nlohmann::json::value_t::array:
                if (node.array && !arrays(*node.array, v, s) && failed()) return false;
                break;
            case nlohmann::json::value_t::object:
                if (node.object && !objects(*node.object, v, s) && failed()) return false;
                break;
            default:
                break;
        }
        if (node.logic && !logic(*node.logic, v, s) && failed()) return false;
        return ok;
    }

    // A subschema applied to a member or item of the value (which path_ names).
    bool child(std::uint32_t n, const nlohmann::json& v, Sink* s, const PathItem& at, const char* refused) {
        path_.push_back(at);
        bool ok;
        if (refused && is_false(target(n))) {
            charge(1);
            report_literal(s, refused);
            ok = false;
        } else {
            ok = eval(n, v, s);
        }
        path_.pop_back();
        return ok;
    }

    // ---- keyword groups ---------------------------------------------------------------------

    static bool type_ok(std::uint8_t types, const nlohmann::json& v) noexcept {
        switch (v.type()) {
            case nlohmann::json::value_t::null: return types & type_null;
            case nlohmann::json::value_t::boolean: return types & type_boolean;
            case nlohmann::json::value_t::object: return types & type_object;
            case nlohmann::json::value_t::array: return types & type_array;
            case nlohmann::json::value_t::string: return types & type_string;
            case nlohmann::json::value_t::number_integer:
            case nlohmann::json::value_t::number_unsigned: return types & (type_number | type_integer);
            case nlohmann::json::value_t::number_float:
                return (types & type_number) || ((types & type_integer) && Number::of(v).is_integer());
            default: return false;
        }
    }

    static std::string type_message(std::uint8_t types, const nlohmann::json& v) {
        static constexpr std::pair<std::uint8_t, const char*> names[] = {
            {type_object, "object"}, {type_array, "array"},  {type_string, "string"},  {type_number, "number"},
            {type_integer, "integer"}, {type_boolean, "boolean"}, {type_null, "null"}};
        std::string want;
        int count = 0;
        for (const auto& [bit, name] : names) {
            if (!(types & bit)) continue;
            want += (count++ ? ", " : "") + std::string(name);
        }
        return (count > 1 ? "wrong type: expected one of " : "wrong type: expected ") + want + ", got " +
               json_type_name(v);
    }

    bool values(const ValueRules& r, const nlohmann::json& v, Sink* s) {
        bool ok = true;
        if (r.const_value) {
            std::uint64_t work = 0;
            const bool equal = json_equal(v, *r.const_value, work);
            charge(work);
            if (!equal) {
                ok = false;
                if (!s) return false;
                report(s, "value is not the const value " + brief(*r.const_value));
            }
        }
        if (r.has_enum) {
            std::uint64_t work = 0;
            const std::uint64_t h = json_hash(v, work);
            charge(work);
            bool found = false;
            auto it = std::lower_bound(r.enum_hashes.begin(), r.enum_hashes.end(), std::make_pair(h, std::uint32_t{0}));
            for (; !found && it != r.enum_hashes.end() && it->first == h; ++it) {
                work = 0;
                found = json_equal(v, *r.enum_values[it->second], work);
                charge(work);
            }
            if (!found) {
                ok = false;
                if (!s) return false;
                std::string allowed;
                for (std::size_t i = 0; i < r.enum_values.size() && i < 10; ++i)
                    allowed += (i ? ", " : "") + brief(*r.enum_values[i]);
                if (r.enum_values.size() > 10) allowed += ", ...";
                report(s, "value is not one of the enum values [" + allowed + "]");
            }
        }
        return ok;
    }

    bool numbers(const NumberRules& r, const nlohmann::json& v, Sink* s) {
        const Number x = Number::of(v);
        bool ok = true;
        const auto check = [&](bool pass, const char* what, const Number& bound) {
            if (pass) return true;
            ok = false;
            report(s, std::string("must be ") + what + " " + bound.text() + " (got " + x.text() + ")");
            return s != nullptr;
        };
        if (r.minimum && !check(std::is_gteq(compare(x, *r.minimum)), "greater than or equal to", *r.minimum)) return false;
        if (r.maximum && !check(std::is_lteq(compare(x, *r.maximum)), "less than or equal to", *r.maximum)) return false;
        if (r.exclusive_minimum && !check(std::is_gt(compare(x, *r.exclusive_minimum)), "greater than", *r.exclusive_minimum))
            return false;
        if (r.exclusive_maximum && !check(std::is_lt(compare(x, *r.exclusive_maximum)), "less than", *r.exclusive_maximum))
            return false;
        if (r.multiple_of) {
            const auto d = decimal_of(x);
            if (!check(d && is_multiple(*d, *r.multiple_of), "a multiple of", r.multiple_of_value)) return false;
        }
        return ok;
    }

    bool strings(const StringRules& r, const std::string& str, Sink* s) {
        bool ok = true;
        const auto fail = [&](std::string msg) {
            ok = false;
            report(s, std::move(msg));
            return s != nullptr;
        };
        if (r.min_length || r.max_length) {
            charge(1 + str.size() / 64);
            const std::size_t len = utf8_length(str);
            if (r.min_length && len < *r.min_length &&
                !fail("string is shorter than " + std::to_string(*r.min_length) + " characters (got " + std::to_string(len) + ")"))
                return false;
            if (r.max_length && len > *r.max_length &&
                !fail("string is longer than " + std::to_string(*r.max_length) + " characters (got " + std::to_string(len) + ")"))
                return false;
        }
        if (r.pattern) {
            charge(r.pattern->cost(str.size()));
            if (!r.pattern->search(str) && !fail("string does not match the pattern " + quote(r.pattern_text, 200)))
                return false;
        }
        if (r.format != Format::none) {
            charge(format_cost(r.format, str.size()));
            if (!check_format(r.format, str) && !fail("string is not a valid " + r.format_name + " (format)"))
                return false;
        }
        if (r.encoding != Encoding::none || r.json_media) {
            charge(1 + str.size() / 8);
            std::string problem = check_content(str, r.encoding, r.json_media);
            if (!problem.empty() && !fail("string is " + problem)) return false;
        }
        return ok;
    }

    bool arrays(const ArrayRules& r, const nlohmann::json& v, Sink* s) {
        bool ok = true;
        const auto failed = [&]() {
            ok = false;
            return s == nullptr;
        };
        const std::size_t size = v.size();
        if (r.min_items && size < *r.min_items) {
            if (failed()) return false;
            report_count(s, "array has fewer than", *r.min_items, "items", size);
        }
        if (r.max_items && size > *r.max_items) {
            if (failed()) return false;
            report_count(s, "array has more than", *r.max_items, "items", size);
        }
        const auto item = [&](std::uint32_t schema, std::size_t i, const char* refused) {
            if (child(schema, v[i], s, PathItem{nullptr, i}, refused)) return true;
            ok = false;
            return s != nullptr;
        };
        if (r.is_tuple) {
            const std::size_t n = std::min(size, r.tuple.size());
            for (std::size_t i = 0; i < n; ++i)
                if (!item(r.tuple[i], i, "item not allowed here (its schema in items is false)")) return false;
            if (r.additional_items != no_node)
                for (std::size_t i = r.tuple.size(); i < size; ++i)
                    if (!item(r.additional_items, i, "item not allowed (additionalItems is false)")) return false;
        } else if (r.items != no_node) {
            for (std::size_t i = 0; i < size; ++i)
                if (!item(r.items, i, "item not allowed (items is false)")) return false;
        }
        if (r.unique_items && size > 1) {
            std::size_t a = 0, b = 0;
            if (!unique(v, a, b)) {
                if (failed()) return false;
                report_indexes(s, "array items ", a, " and ", b, " are equal (uniqueItems)");
            }
        }
        if (r.contains != no_node) {
            bool found = false;
            for (std::size_t i = 0; i < size && !found; ++i) {
                path_.push_back(PathItem{nullptr, i});
                found = eval(r.contains, v[i], nullptr);
                path_.pop_back();
            }
            if (!found) {
                if (failed()) return false;
                report_literal(s, "no item matches the contains schema");
            }
        }
        return ok;
    }

    // True when all items differ; else a and b are the first equal pair found.
    bool unique(const nlohmann::json& v, std::size_t& a, std::size_t& b) {
        std::vector<std::pair<std::uint64_t, std::size_t>> hashed;
        hashed.reserve(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) {
            std::uint64_t work = 0;
            hashed.emplace_back(json_hash(v[i], work), i);
            charge(work + 1);
        }
        std::sort(hashed.begin(), hashed.end());
        for (std::size_t i = 0; i < hashed.size();) {
            std::size_t j = i + 1;
            while (j < hashed.size() && hashed[j].first == hashed[i].first) ++j;
            for (std::size_t x = i; x < j; ++x) {
                for (std::size_t y = x + 1; y < j; ++y) {
                    std::uint64_t work = 0;
                    const bool equal = json_equal(v[hashed[x].second], v[hashed[y].second], work);
                    charge(work + 1);
                    if (equal) {
                        a = std::min(hashed[x].second, hashed[y].second);
                        b = std::max(hashed[x].second, hashed[y].second);
                        return false;
                    }
                }
            }
            i = j;
        }
        return true;
    }

    [[gnu::noinline, gnu::cold]] void report_dependency(Sink* s, const std::string& property, const std::string& name) {
        report(s, "property " + quote(property) + " requires property " + quote(name) + " (dependencies)");
    }

    // propertyNames applies to the key as a JSON string (a copy: out of line).
    [[gnu::noinline]] bool property_name_ok(std::uint32_t schema, const std::string& key) {
        const nlohmann::json name(key);
        return eval(schema, name, nullptr);
    }

    bool objects(const ObjectRules& r, const nlohmann::json& v, Sink* s) {
        bool ok = true;
        const auto failed = [&]() {
            ok = false;
            return s == nullptr;
        };
        const std::size_t size = v.size();
        if (r.min_properties && size < *r.min_properties) {
            if (failed()) return false;
            report_count(s, "object has fewer than", *r.min_properties, "properties", size);
        }
        if (r.max_properties && size > *r.max_properties) {
            if (failed()) return false;
            report_count(s, "object has more than", *r.max_properties, "properties", size);
        }
        const bool walk = !r.properties.empty() || !r.pattern_properties.empty() ||
                          r.additional_properties != no_node || r.property_names != no_node;
        if (!walk) {
            for (const std::string& name : r.required) {
                charge(1);
                if (v.find(name) == v.end()) {
                    if (failed()) return false;
                    report_quoted(s, "missing required property ", name, "");
                }
            }
        } else {
            // The value's keys (a std::map) and the schema's property and required
            // names are all sorted the same way: one merge walk finds every match.
            auto prop = r.properties.begin();
            auto req = r.required_sorted.begin();
            const auto missing = [&](const std::string& name) {
                charge(1);
                if (failed()) return false;
                report_quoted(s, "missing required property ", name, "");
                return true;
            };
            for (auto it = v.begin(); it != v.end(); ++it) {
                charge(1);
                const std::string& key = it.key();
                for (; req != r.required_sorted.end() && *req < key; ++req)
                    if (!missing(*req)) return false;
                if (req != r.required_sorted.end() && *req == key) ++req;
                while (prop != r.properties.end() && prop->first < key) ++prop;
                const std::uint32_t ps = prop != r.properties.end() && prop->first == key ? prop->second : no_node;
                const PathItem at{&key, 0};
                bool matched = false;
                if (ps != no_node) {
                    matched = true;
                    if (!child(ps, it.value(), s, at, "property not allowed (its schema in properties is false)")) {
                        ok = false;
                        if (!s) return false;
                    }
                }
                for (const PatternProperty& pp : r.pattern_properties) {
                    charge(pp.regex->cost(key.size()));
                    if (!pp.regex->search(key)) continue;
                    matched = true;
                    if (!child(pp.schema, it.value(), s, at, "property not allowed (its schema in patternProperties is false)")) {
                        ok = false;
                        if (!s) return false;
                    }
                }
                if (!matched && r.additional_properties != no_node &&
                    !child(r.additional_properties, it.value(), s, at, "property not allowed (additionalProperties is false)")) {
                    ok = false;
                    if (!s) return false;
                }
                if (r.property_names != no_node && !property_name_ok(r.property_names, key)) {
                    if (failed()) return false;
                    report_quoted(s, "property name ", key, " does not match the propertyNames schema");
                }
            }
            for (; req != r.required_sorted.end(); ++req)
                if (!missing(*req)) return false;
        }
        for (const Dependency& d : r.dependencies) {
            charge(1);
            if (v.find(d.property) == v.end()) continue;
            for (const std::string& name : d.required) {
                charge(1);
                if (v.find(name) == v.end()) {
                    if (failed()) return false;
                    report_dependency(s, d.property, name);
                }
            }
            if (d.schema != no_node && !eval(d.schema, v, s)) {
                ok = false;
                if (!s) return false;
            }
        }
        return ok;
    }

    [[gnu::noinline]] bool any_of(const std::vector<std::uint32_t>& branches, const nlohmann::json& v, Sink* s) {
        for (const std::uint32_t b : branches)
            if (eval(b, v, nullptr)) return true;
        if (s) {
            report(s, "value matches none of the " + std::to_string(branches.size()) + " schemas in anyOf");
            branch_details(s, branches, v, "anyOf");
        }
        return false;
    }

    [[gnu::noinline]] bool one_of(const std::vector<std::uint32_t>& branches, const nlohmann::json& v, Sink* s) {
        std::size_t matches = 0, first = 0, second = 0;
        for (std::size_t i = 0; i < branches.size() && matches < 2; ++i) {
            if (!eval(branches[i], v, nullptr)) continue;
            (matches == 0 ? first : second) = i;
            ++matches;
        }
        if (matches == 1) return true;
        if (s && matches == 0) {
            report(s, "value matches none of the " + std::to_string(branches.size()) + " schemas in oneOf");
            branch_details(s, branches, v, "oneOf");
        } else if (s) {
            report_indexes(s, "value matches more than one schema in oneOf (#", first, " and #", second,
                           "); exactly one must match");
        }
        return false;
    }

    bool logic(const LogicRules& r, const nlohmann::json& v, Sink* s) {
        bool ok = true;
        for (const std::uint32_t b : r.all_of) {
            if (!eval(b, v, s)) {
                ok = false;
                if (!s) return false;
            }
        }
        if (!r.any_of.empty() && !any_of(r.any_of, v, s)) {
            ok = false;
            if (!s) return false;
        }
        if (!r.one_of.empty() && !one_of(r.one_of, v, s)) {
            ok = false;
            if (!s) return false;
        }
        if (r.not_ != no_node && eval(r.not_, v, nullptr)) {
            ok = false;
            if (!s) return false;
            report_literal(s, "value must not match the schema in not");
        }
        if (r.if_ != no_node) {
            const std::uint32_t branch = eval(r.if_, v, nullptr) ? r.then_ : r.else_;
            if (branch != no_node && !eval(branch, v, s)) {
                ok = false;
                if (!s) return false;
            }
        }
        return ok;
    }

    const Program& p_;
    Limits limits_;
    std::uint64_t steps_left_;
    std::size_t depth_ = 0;
    int details_ = 0;  // > 0 while collecting the errors of anyOf/oneOf branches
    std::vector<PathItem> path_;
};

}  // namespace detail::schema

FAILOVER_END_NAMESPACE
