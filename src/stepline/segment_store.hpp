// What a metrics segment holds (metrics_segment.cpp): its records, their values and their keys, in flat arrays.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <new>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "json_text.hpp"

namespace segment_store {

using json_text::FLOAT;
using json_text::Number;

struct Value {
    int key;  // in the segment's keys
    Number number;
};

struct Record {
    double time;
    long long step;
    Number epoch;
    Py_ssize_t first_value;  // its values are values[first_value : next record's first_value]
};

struct Key {
    PyObject* text;  // held by the segment: utf8 points into it, or into the body add_lines read
    const char* utf8;
    Py_ssize_t size;
};

constexpr uint64_t NO_EPOCH_BITS = 0x7FF800000E90C000ULL;

inline double as_double(const Number& number) {
    return number.kind == FLOAT ? number.real : static_cast<double>(number.integer);
}

// What a segment holds. A segment's store goes back to a few kept for the next segments when it is done: their
// memory is in use already, so filling one costs no page faults and no growing (which made one call in a hundred
// take 100 us).
struct Store {
    std::vector<Record> records;
    std::vector<Value> values;
    std::vector<Key> keys;
    std::unordered_map<std::string_view, int> key_ids;  // views of the keys' utf8
    std::vector<long long> seqs;                        // each record's, for records read by add_lines
};

constexpr size_t KEPT_STORES = 4;
constexpr size_t KEPT_VALUES = 1 << 20;  // a store that grew past this many values is not kept
inline std::vector<Store*> kept_stores;       // changed with the interpreter lock held only

inline Store* take_store() {
    if (kept_stores.empty()) return new (std::nothrow) Store();
    Store* store = kept_stores.back();
    kept_stores.pop_back();
    return store;
}

inline void give_back(Store* store) {
    if (kept_stores.size() >= KEPT_STORES || store->values.capacity() > KEPT_VALUES) {
        delete store;
        return;
    }
    store->records.clear();
    store->values.clear();
    store->keys.clear();
    store->key_ids.clear();
    store->seqs.clear();
    kept_stores.push_back(store);
}

}  // namespace segment_store
