// Reading back the metrics lines stepline writes (json_text.hpp), strictly: exactly that layout, nothing else.
//
//     {"type":"metrics","seq":7,"time":1764100000.25,"step":3[,"epoch":1.5],"values":{"loss":0.25,"ok":true}}
//
// A server receives most of its records as such lines (a shipper sends them as they are on disk). Reading them
// here, rather than with a JSON parser into dicts and then checking the dicts, is what lets a server keep up with
// its clients. Whatever is not exactly this layout (a space, another field order, an escape in a key, an integer
// past 64 bits, a value of another type) is not read: the caller leaves those lines to the general parser and its
// checks, which say what is wrong. What is read is read as that parser reads it: numbers correctly rounded, NaN
// and the infinities by name. A record that names a key twice (that parser keeps the last) is left to it too.
#pragma once

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <system_error>

#include "json_text.hpp"

namespace json_lines {

using json_text::BOOL;
using json_text::FLOAT;
using json_text::INT;
using json_text::NONE;
using json_text::Number;

inline bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Whether text starts at p, and p moved past it.
template <size_t N>
inline bool skip(const char*& p, const char* end, const char (&text)[N]) {
    if (end - p < static_cast<std::ptrdiff_t>(N - 1) || std::memcmp(p, text, N - 1) != 0) return false;
    p += N - 1;
    return true;
}

// A JSON number: an INT when written without a fraction or an exponent and within 64 bits, else a finite FLOAT.
inline bool read_number(const char*& p, const char* end, Number& number) {
    const char* start = p;
    const char* q = p;
    if (q < end && *q == '-') ++q;
    if (q == end || !is_digit(*q)) return false;
    if (*q == '0') {
        ++q;
    } else {
        while (q < end && is_digit(*q)) ++q;
    }
    bool integer = true;
    if (q < end && *q == '.') {
        ++q;
        if (q == end || !is_digit(*q)) return false;
        while (q < end && is_digit(*q)) ++q;
        integer = false;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        ++q;
        if (q < end && (*q == '+' || *q == '-')) ++q;
        if (q == end || !is_digit(*q)) return false;
        while (q < end && is_digit(*q)) ++q;
        integer = false;
    }
    if (integer) {
        const auto found = std::from_chars(start, q, number.integer);
        if (found.ec != std::errc() || found.ptr != q) return false;  // past int64: the general parser's
        number.kind = INT;
    } else {
        const auto found = std::from_chars(start, q, number.real);
        // out of range: an infinity or a denormal lost to zero, which the general parser decides about
        if (found.ec != std::errc() || found.ptr != q || !std::isfinite(number.real)) return false;
        number.kind = FLOAT;
    }
    p = q;
    return true;
}

// Whether the bytes are UTF-8 that Python's strict decoder takes (no surrogate, no overlong form).
inline bool valid_utf8(const unsigned char* s, const unsigned char* end) {
    while (s < end) {
        const unsigned char c = *s;
        if (c < 0x80) {
            ++s;
            continue;
        }
        int more;
        unsigned int low = 0x80, high = 0xBF;  // the second byte's range
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0) low = 0xA0;
            if (c == 0xED) high = 0x9F;  // surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0) low = 0x90;
            if (c == 0xF4) high = 0x8F;
        } else {
            return false;
        }
        if (end - s <= more || s[1] < low || s[1] > high) return false;
        for (int i = 2; i <= more; ++i)
            if ((s[i] & 0xC0) != 0x80) return false;
        s += more + 1;
    }
    return true;
}

// A key: text in quotes, not empty, without escapes or control characters, valid UTF-8; its bytes.
inline bool read_key(const char*& p, const char* end, std::string_view& key) {
    if (p == end || *p != '"') return false;
    const char* start = ++p;
    bool ascii = true;
    for (; p < end && *p != '"'; ++p) {
        const unsigned char c = static_cast<unsigned char>(*p);
        if (c < 0x20 || c == '\\') return false;
        ascii &= c < 0x80;
    }
    if (p == end || p == start) return false;
    if (!ascii && !valid_utf8(reinterpret_cast<const unsigned char*>(start), reinterpret_cast<const unsigned char*>(p)))
        return false;
    key = std::string_view(start, p - start);
    ++p;
    return true;
}

// A metric's value: a number, true or false, or NaN or an infinity by name.
inline bool read_value(const char*& p, const char* end, Number& number) {
    if (p == end) return false;
    switch (*p) {
        case 't':
            number.kind = BOOL;
            number.integer = 1;
            return skip(p, end, "true");
        case 'f':
            number.kind = BOOL;
            number.integer = 0;
            return skip(p, end, "false");
        case '"':
            number.kind = FLOAT;
            if (skip(p, end, "\"NaN\"")) {
                number.real = std::numeric_limits<double>::quiet_NaN();
                return true;
            }
            number.real = std::numeric_limits<double>::infinity();
            if (skip(p, end, "\"Infinity\"")) return true;
            number.real = -number.real;
            return skip(p, end, "\"-Infinity\"");
        default:
            return read_number(p, end, number);
    }
}

struct Head {
    long long seq;
    double time;
    long long step;
    Number epoch;  // NONE without one (or null)
};

// One line from p: its head, and take(key, number) for each value in order (take answers false to refuse the
// record). Where the line's next one starts (past its newline, or the end of the text), or null for a line that
// is not a metrics record in exactly stepline's layout.
template <typename Take>
const char* read_line(const char* p, const char* end, Head& head, Take&& take) {
    Number number;
    if (!skip(p, end, "{\"type\":\"metrics\",\"seq\":") || !read_number(p, end, number) || number.kind != INT)
        return nullptr;
    head.seq = number.integer;
    if (!skip(p, end, ",\"time\":") || !read_number(p, end, number)) return nullptr;
    head.time = number.kind == INT ? static_cast<double>(number.integer) : number.real;
    if (!skip(p, end, ",\"step\":") || !read_number(p, end, number) || number.kind != INT) return nullptr;
    head.step = number.integer;
    head.epoch.kind = NONE;
    if (skip(p, end, ",\"epoch\":") && !skip(p, end, "null") &&
        (!read_value(p, end, head.epoch) || head.epoch.kind == BOOL))  // a number, or NaN or an infinity by name
        return nullptr;
    if (!skip(p, end, ",\"values\":{")) return nullptr;
    std::string_view key;
    do {
        if (!read_key(p, end, key) || !skip(p, end, ":") || !read_value(p, end, number) || !take(key, number))
            return nullptr;
    } while (skip(p, end, ","));
    if (!skip(p, end, "}}")) return nullptr;
    if (p == end) return p;
    return *p == '\n' ? p + 1 : nullptr;
}

}  // namespace json_lines
