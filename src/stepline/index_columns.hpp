// The index's columns of a segment's records (stepline.logbook.columns takes them): each record's step, time and
// epoch, and each key's values with the kind the index keeps them as, read from the segment's flat arrays.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "segment_store.hpp"

namespace index_columns {

using json_text::FLOAT;
using json_text::INT;
using json_text::NONE;
using json_text::Number;
using segment_store::as_double;
using segment_store::NO_EPOCH_BITS;
using segment_store::Store;
using segment_store::Value;

// How many keys every record has, the first record's in its order; 0 when they differ.
inline Py_ssize_t common_width(const Store& store) {
    const auto& records = store.records;
    const auto& values = store.values;
    const Py_ssize_t n = static_cast<Py_ssize_t>(records.size());
    const Py_ssize_t width = n > 1 ? records[1].first_value : static_cast<Py_ssize_t>(values.size());
    if (width == 0 || static_cast<Py_ssize_t>(values.size()) != n * width) return 0;
    for (Py_ssize_t i = 1; i < n; ++i) {
        if (records[i].first_value != i * width) return 0;
        for (Py_ssize_t j = 0; j < width; ++j)
            if (values[i * width + j].key != values[j].key) return 0;
    }
    return width;
}

struct Columns {
    std::vector<long long> steps, integers;
    std::vector<double> times, epochs, floats;
    std::vector<int> keys;           // the segment's keys the values name, in the order first logged
    std::vector<const char*> kinds;  // per key: "float", "int" or "bool", what numpy makes of the values
    std::vector<bool> exact;         // per key: whether float64 rows hold every value as logged
    // Where the records' keys differ: each value's record (its place in the segment), a key's after another's,
    // and how many values each key has. Empty where every record has every key, in the same order.
    std::vector<uint32_t> places;
    std::vector<Py_ssize_t> counts;
};

constexpr long long EXACT_INTEGERS = 1LL << 53;  // a float64 holds every integer below this exactly

inline bool is_large(const Number& number) {
    return number.kind == INT && (number.integer >= EXACT_INTEGERS || number.integer <= -EXACT_INTEGERS);
}

// Every record has the same keys in the same order (width of them): a key's n values after another's.
inline void fill_alike(const Store& store, Py_ssize_t width, Columns& columns) {
    const auto& values = store.values;
    const Py_ssize_t n = static_cast<Py_ssize_t>(store.records.size());
    columns.floats.resize(n * width);
    columns.integers.resize(n * width);
    for (Py_ssize_t j = 0; j < width; ++j) {
        bool floats = false, integers = false, large = false;
        for (Py_ssize_t i = 0; i < n; ++i) {
            const Number& number = values[i * width + j].number;
            columns.floats[j * n + i] = as_double(number);
            columns.integers[j * n + i] = number.kind == FLOAT ? 0 : number.integer;
            floats |= number.kind == FLOAT;
            integers |= number.kind == INT;
            large |= is_large(number);
        }
        const bool float_first = values[j].number.kind == FLOAT;
        columns.keys.push_back(values[j].key);
        columns.kinds.push_back(float_first || floats ? "float" : integers ? "int" : "bool");
        columns.exact.push_back(float_first || !large);
    }
}

// Records whose keys differ: per key, in the order first logged, its values and the places of their records.
inline void fill_grouped(const Store& store, Columns& columns) {
    const auto& records = store.records;
    const auto& values = store.values;
    std::vector<Py_ssize_t> slot(store.keys.size(), -1);  // a key's place among the keys logged
    for (const Value& value : values) {
        Py_ssize_t& found = slot[value.key];
        if (found < 0) {
            found = static_cast<Py_ssize_t>(columns.keys.size());
            columns.keys.push_back(value.key);
            columns.counts.push_back(0);
        }
        ++columns.counts[found];
    }
    const size_t width = columns.keys.size();
    std::vector<Py_ssize_t> next(width);  // where each key's next value goes
    for (size_t k = 1; k < width; ++k) next[k] = next[k - 1] + columns.counts[k - 1];
    std::vector<unsigned char> floats(width), integers(width), large(width);  // per key: what its values hold
    columns.places.resize(values.size());
    columns.floats.resize(values.size());
    columns.integers.resize(values.size());
    const Py_ssize_t n = static_cast<Py_ssize_t>(records.size());
    for (Py_ssize_t i = 0; i < n; ++i) {
        const Py_ssize_t end = i + 1 < n ? records[i + 1].first_value : static_cast<Py_ssize_t>(values.size());
        for (Py_ssize_t v = records[i].first_value; v < end; ++v) {
            const Py_ssize_t k = slot[values[v].key];
            const Number& number = values[v].number;
            const Py_ssize_t at = next[k]++;
            columns.places[at] = static_cast<uint32_t>(i);
            columns.floats[at] = as_double(number);
            columns.integers[at] = number.kind == FLOAT ? 0 : number.integer;
            floats[k] |= number.kind == FLOAT;
            integers[k] |= number.kind == INT;
            large[k] |= is_large(number);
        }
    }
    for (size_t k = 0; k < width; ++k) {
        columns.kinds.push_back(floats[k] ? "float" : integers[k] ? "int" : "bool");
        columns.exact.push_back(!large[k]);
    }
}

// The index's columns (stepline.logbook.columns): each record's step, time and epoch, and each key's values as
// float64 and as int64 with the kind the index keeps them as. With the same keys in every record, a key whose
// first value is a float is a float column; any other key (every key, where the records' keys differ) is as numpy
// reads its values: float if any is, else int if any is, else bool.
inline void fill_columns(const Store& store, Columns& columns) {
    const auto& records = store.records;
    const Py_ssize_t n = static_cast<Py_ssize_t>(records.size());
    columns.steps.resize(n);
    columns.times.resize(n);
    columns.epochs.resize(n);
    for (Py_ssize_t i = 0; i < n; ++i) {
        columns.steps[i] = records[i].step;
        columns.times[i] = records[i].time;
        if (records[i].epoch.kind == NONE) {
            std::memcpy(&columns.epochs[i], &NO_EPOCH_BITS, sizeof(double));
        } else {
            columns.epochs[i] = as_double(records[i].epoch);
        }
    }
    const Py_ssize_t width = common_width(store);
    if (width > 0) {
        fill_alike(store, width, columns);
    } else {
        fill_grouped(store, columns);
    }
}

}  // namespace index_columns
