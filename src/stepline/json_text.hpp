// The JSON text of metric values and keys, as orjson writes it: the lines stepline's metrics segment writes
// (metrics_segment.cpp) read back as, and are byte for byte, the lines its Python path writes with orjson.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstring>

namespace json_text {

enum Kind : unsigned char { FLOAT, INT, BOOL, NONE };

struct Number {
    Kind kind;
    union {
        double real;
        long long integer;
    };
};

// Every put_* writes at the cursor and returns it moved past what it wrote; the caller made room
// (at most MAX_NUMBER bytes for a number, 6 a byte of a key and 3 more).
constexpr std::ptrdiff_t MAX_NUMBER = 32;

inline char* put(char* out, const char* text, size_t size) {
    std::memcpy(out, text, size);
    return out + size;
}

template <size_t N>
inline char* put(char* out, const char (&text)[N]) {
    return put(out, text, N - 1);
}

// The shortest decimal that reads back as the same double, laid out as orjson lays it out: plain up to 16 digits
// before the point or 5 zeros after it, otherwise with an exponent ("1e+16", "1.5e-7").
inline char* put_double(char* out, double value) {
    if (value == 0) return std::signbit(value) ? put(out, "-0.0") : put(out, "0.0");
    char text[40];
    const char* end = std::to_chars(text, text + sizeof text, value, std::chars_format::scientific).ptr;
    const char* p = text;
    if (*p == '-') {
        *out++ = '-';
        ++p;
    }
    char digits[20];
    int length = 0;
    for (; *p != 'e'; ++p) {
        if (*p != '.') digits[length++] = *p;
    }
    int exponent = 0;
    std::from_chars(p[1] == '+' ? p + 2 : p + 1, end, exponent);
    const int point = exponent + 1;  // digits before the decimal point
    if (length <= point && point <= 16) {
        out = put(out, digits, length);
        std::memset(out, '0', point - length);
        return put(out + point - length, ".0");
    }
    if (0 < point && point <= 16) {
        out = put(out, digits, point);
        *out++ = '.';
        return put(out, digits + point, length - point);
    }
    if (-5 < point && point <= 0) {
        out = put(out, "0.");
        std::memset(out, '0', -point);
        return put(out - point, digits, length);
    }
    *out++ = digits[0];
    if (length > 1) {
        *out++ = '.';
        out = put(out, digits + 1, length - 1);
    }
    out = exponent > 0 ? put(out, "e+") : put(out, "e");
    return std::to_chars(out, out + 8, exponent).ptr;
}

inline char* put_integer(char* out, long long value) {
    return std::to_chars(out, out + 24, value).ptr;
}

inline char* put_number(char* out, const Number& number) {
    switch (number.kind) {
        case FLOAT:
            if (std::isnan(number.real)) return put(out, "\"NaN\"");
            if (std::isinf(number.real)) return number.real > 0 ? put(out, "\"Infinity\"") : put(out, "\"-Infinity\"");
            return put_double(out, number.real);
        case INT: return put_integer(out, number.integer);
        case BOOL: return number.integer ? put(out, "true") : put(out, "false");
        case NONE: break;
    }
    return put(out, "null");
}

inline char* put_key(char* out, const char* key, std::ptrdiff_t size) {
    static const char hex[] = "0123456789abcdef";
    *out++ = '"';
    for (std::ptrdiff_t i = 0; i < size; ++i) {
        const unsigned char c = static_cast<unsigned char>(key[i]);
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = static_cast<char>(c);
            continue;
        }
        *out++ = '\\';
        switch (c) {
            case '"': *out++ = '"'; break;
            case '\\': *out++ = '\\'; break;
            case '\n': *out++ = 'n'; break;
            case '\r': *out++ = 'r'; break;
            case '\t': *out++ = 't'; break;
            case '\b': *out++ = 'b'; break;
            case '\f': *out++ = 'f'; break;
            default: {
                const char escape[] = {'u', '0', '0', hex[c >> 4], hex[c & 15]};
                out = put(out, escape, sizeof escape);
            }
        }
    }
    return put(out, "\":");
}

}  // namespace json_text
