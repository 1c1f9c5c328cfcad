// SPDX-License-Identifier: MIT
// A byte-level parser of Server-Sent Events (text/event-stream), following the
// WHATWG HTML "event stream interpretation" rules: lines end in LF, CRLF or CR
// (a CR at the end of one chunk and an LF at the start of the next are one
// line end); a line starting with ':' is a comment; `event`, `data`, `id` and
// `retry` are the fields, one leading space after the colon is dropped, a line
// without a colon is a field with an empty value, unknown fields are ignored;
// several data lines are joined with "\n"; a blank line dispatches the event,
// and an event whose data buffer is empty is not dispatched; a UTF-8 BOM at the
// very start is skipped; an event cut off by the end of the stream is not
// dispatched (mid_event() tells the caller one was pending).
//
// Contract: the events are the same however the bytes are split between feed()
// calls (one at a time or all at once). Memory is bounded: the event being
// built (its field lines together) may not exceed StreamLimits::max_event_bytes
// and the stream may not exceed max_total_bytes; either gives a
// response_too_large Failure, after which the parser accepts nothing. Comment
// lines are skipped without being stored, so a keep-alive comment costs no
// memory. Input never makes it throw. One parser per stream, not thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "failover/failure.hpp"
#include "failover/stream.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// One dispatched server-sent event.
struct SseEvent {
    std::string type = "message";  ///< the `event` field; "message" when the event named none
    std::string data{};            ///< the data lines joined with "\n"
    std::string id{};              ///< the last event id seen so far (the `id` field persists across events)
};

/// One dispatched server-sent event, as views that are valid during the callback only (what
/// the stream decoders read: an event whose data is one line that arrived whole in one feed,
/// as a token stream's events do, has its data read in place, not copied).
struct SseEventView {
    std::string_view type{};  ///< the `event` field; "message" when the event named none
    std::string_view data{};  ///< the data lines joined with "\n"
    std::string_view id{};    ///< the last event id seen so far
};

/// Turns the bytes of a text/event-stream body into events, whatever the split.
/// @code
/// SseParser sse;
/// std::vector<SseEvent> events;
/// if (auto f = sse.feed(chunk, events)) return *f;   // response_too_large
/// for (const SseEvent& e : events) use(e.type, e.data);
/// @endcode
class SseParser {
public:
    /// A parser bounded by `limits` (event size and total bytes).
    explicit SseParser(StreamLimits limits = {}) noexcept : limits_(limits) {}

    /// Feeds the next bytes; calls `on_event(const SseEvent&)` (or `on_event(const
    /// SseEventView&)`: no copy) for every event they complete. A callback that takes either
    /// (`const auto&`) gets the views: keep no view past the call.
    /// `on_event` may return bool: false stops parsing (the rest of `bytes` is dropped and the
    /// parser should not be fed again). Returns a response_too_large Failure when a limit is
    /// exceeded (the events before the offending byte are still delivered); after that every
    /// call returns the same Failure.
    template <class OnEvent>
    std::optional<Failure> feed(std::string_view bytes, OnEvent&& on_event) {
        if (failed_) return failed_;
        const std::size_t room = limits_.max_total_bytes - std::min(total_, limits_.max_total_bytes);
        const bool over = bytes.size() > room;
        if (over) bytes = bytes.substr(0, room);
        total_ += bytes.size();
        // A UTF-8 byte order mark is skipped at the very start only; it may arrive split.
        while (!bom_done_ && !bytes.empty()) {
            if (bytes.front() == kBom[bom_matched_]) {
                bytes.remove_prefix(1);
                if (++bom_matched_ == kBom.size()) bom_done_ = true;
            } else {
                bom_done_ = true;
                if (!lines(kBom.substr(0, bom_matched_), on_event)) return failed_;
            }
        }
        if (!lines(bytes, on_event)) return failed_;
        if (over) {
            fail("the event stream is larger than the limit of " + std::to_string(limits_.max_total_bytes) + " bytes");
            return failed_;
        }
        return std::nullopt;
    }

    /// feed() collecting the events into `out` (appended).
    std::optional<Failure> feed(std::string_view bytes, std::vector<SseEvent>& out) {
        return feed(bytes, [&out](const SseEvent& e) { out.push_back(e); });
    }

    /// True when bytes of an event not yet dispatched are pending: at the end of the stream
    /// they are discarded, so the stream was cut in the middle of an event.
    bool mid_event() const noexcept {
        return (line_started_ && !skipping_) || !data_.empty() || !type_.empty() || (!bom_done_ && bom_matched_ > 0);
    }
    /// Bytes fed so far (up to the total limit).
    std::size_t bytes() const noexcept { return total_; }
    /// The last event id set by an `id` field ("" when none).
    const std::string& last_event_id() const noexcept { return last_id_; }
    /// The reconnection time the stream asked for with a `retry` field, if any.
    std::optional<std::chrono::milliseconds> retry() const noexcept { return retry_; }
    /// The failure that stopped the parser, if any.
    const std::optional<Failure>& failure() const noexcept { return failed_; }

private:
    static constexpr std::string_view kBom = "\xEF\xBB\xBF";

    void fail(std::string why) {
        failed_ = Failure::of(Reason::response_too_large, std::move(why));
        line_.clear();
        data_.clear();
        type_.clear();
        data_here_ = false;
    }

    /// Splits `s` into lines; false when parsing stopped (a limit, or on_event said so).
    /// An event's first data line read in place from `s` is kept as a view into it until the
    /// event is dispatched or `s` is done with: then it is copied, so no view outlives the feed.
    template <class OnEvent>
    bool lines(std::string_view s, OnEvent& on_event) {
        bool go = true;
        try {
            go = split(s, on_event);
        } catch (...) {  // for want of memory: the data line is dropped with `s`
            data_here_ = false;
            throw;
        }
        if (data_here_) own_data();
        return go;
    }

    template <class OnEvent>
    bool split(std::string_view s, OnEvent& on_event) {
        std::size_t i = 0;
        while (i < s.size()) {
            if (cr_) {  // CR LF is one line end, even across feeds
                cr_ = false;
                if (s[i] == '\n') {
                    ++i;
                    continue;
                }
            }
            const std::size_t stop = line_end(s, i);
            std::string_view piece = s.substr(i, stop - i);
            if (stop == s.size()) {  // the line goes on in the next feed
                if (!piece.empty() && !append(piece)) return false;
                break;
            }
            const bool in_place = !line_started_;
            if (line_started_) {  // its start came in an earlier feed: the whole line is in line_
                if (!piece.empty() && !append(piece)) return false;
                piece = line_;
            } else if (!piece.empty()) {  // the whole line is here: read in place, not copied
                line_started_ = true;
                skipping_ = piece.front() == ':';
                if (!skipping_ && !fits(piece.size())) return false;
            }
            cr_ = s[stop] == '\r';
            if (!end_line(piece, in_place, on_event)) return false;
            i = stop + 1;
        }
        return true;
    }

    /// Where the line starting at `i` ends: its first CR or LF, or s.size(). (memchr scans
    /// many bytes a step; a CR is looked for only before the LF.)
    static std::size_t line_end(std::string_view s, std::size_t i) noexcept {
        const char* p = s.data() + i;
        const std::size_t n = s.size() - i;
        const void* lf = std::memchr(p, '\n', n);
        const std::size_t upto = lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - p) : n;
        const void* cr = upto ? std::memchr(p, '\r', upto) : nullptr;
        return i + (cr ? static_cast<std::size_t>(static_cast<const char*>(cr) - p) : upto);
    }

    /// True when `more` bytes of field lines still fit in the event; else fails.
    bool fits(std::size_t more) {
        const std::size_t data = data_here_ ? data_view_.size() + 1 : data_.size();
        if (line_.size() + data + type_.size() + more + 1 <= limits_.max_event_bytes) return true;
        fail("a server-sent event is larger than the limit of " + std::to_string(limits_.max_event_bytes) + " bytes");
        return false;
    }

    /// Adds bytes to the current line (comment lines are dropped as they come).
    bool append(std::string_view piece) {
        if (!line_started_) {
            line_started_ = true;
            skipping_ = piece.front() == ':';
        }
        if (skipping_) return true;
        if (!fits(piece.size())) return false;
        line_.append(piece);
        return true;
    }

    /// A line ended; `line` is its text, in the input (`in_place`) or in line_.
    template <class OnEvent>
    bool end_line(std::string_view line, bool in_place, OnEvent& on_event) {
        bool go = true;
        if (!line_started_) go = dispatch(on_event);
        else if (!skipping_) field(line, in_place);
        line_.clear();
        line_started_ = false;
        skipping_ = false;
        return go;
    }

    void field(std::string_view line, bool in_place) {
        const std::size_t colon = line.find(':');
        const std::string_view name = line.substr(0, colon);
        std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        if (name == "data") {
            if (in_place && !data_here_ && data_.empty()) {  // the event's first data line: a view for now
                data_view_ = value;
                data_here_ = true;
                return;
            }
            if (data_here_) own_data();
            data_.append(value);
            data_ += '\n';
        } else if (name == "event") {
            type_.assign(value);
        } else if (name == "id") {
            if (value.find('\0') == std::string_view::npos) id_.assign(value);
        } else if (name == "retry") {
            if (value.empty()) return;
            std::uint64_t ms = 0;
            for (char c : value) {
                if (c < '0' || c > '9') return;
                if (ms < (std::uint64_t{1} << 40)) ms = ms * 10 + static_cast<std::uint64_t>(c - '0');
            }
            retry_ = std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(ms));
        }
    }

    /// The data line held as a view becomes the first line of data_.
    void own_data() {
        data_here_ = false;
        data_.assign(data_view_);
        data_ += '\n';
    }

    template <class OnEvent>
    bool dispatch(OnEvent& on_event) {
        last_id_ = id_;
        if (!data_here_ && data_.empty()) {
            type_.clear();
            return true;
        }
        // What the event holds moves out before the callback runs: whether it returns or
        // throws, the parser is then between events and keeps no view into the caller's bytes.
        const bool data_here = std::exchange(data_here_, false);
        if (!data_here) {
            data_.pop_back();  // the LF after the last data line
            std::swap(event_.data, data_);
        }
        std::swap(event_.type, type_);
        data_.clear();
        type_.clear();
        if constexpr (std::is_invocable_v<OnEvent&, const SseEventView&>) {
            SseEventView view;
            view.data = data_here ? data_view_ : std::string_view(event_.data);
            view.type = event_.type.empty() ? std::string_view("message") : std::string_view(event_.type);
            view.id = last_id_;
            return deliver(on_event, static_cast<const SseEventView&>(view));
        } else {
            if (data_here) event_.data.assign(data_view_);
            if (event_.type.empty()) event_.type.assign("message");
            event_.id = last_id_;
            return deliver(on_event, static_cast<const SseEvent&>(event_));
        }
    }

    template <class OnEvent, class Event>
    static bool deliver(OnEvent& on_event, const Event& e) {
        if constexpr (std::is_same_v<std::invoke_result_t<OnEvent&, const Event&>, bool>) {
            return on_event(e);
        } else {
            on_event(e);
            return true;
        }
    }

    StreamLimits limits_;
    std::size_t total_ = 0;
    std::size_t bom_matched_ = 0;
    bool bom_done_ = false;
    bool cr_ = false;            // the last byte was a CR
    bool line_started_ = false;  // a byte of the current line has been seen
    bool skipping_ = false;      // the current line is a comment
    std::string line_{};         // the current line, without its end
    std::string data_{};         // data lines so far, each followed by LF
    std::string type_{};         // the event field so far
    std::string id_{};           // the id field (the last event ID buffer)
    std::string last_id_{};
    // The event's only data line so far, read in place from the bytes being fed (see lines()).
    std::string_view data_view_{};
    bool data_here_ = false;
    std::optional<std::chrono::milliseconds> retry_{};
    SseEvent event_{};
    std::optional<Failure> failed_{};
};

FAILOVER_END_NAMESPACE
