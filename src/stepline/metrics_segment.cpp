// stepline.metrics_segment: plain metrics calls, read when they are made and written out in a batch, with the
// interpreter lock released while their lines are written.
//
//     segment = Segment(limit[, value_limit])
//     segment.add(time, step, epoch, values) -> TAKEN | CLOSED | NOT_PLAIN   (at each run.log, in the caller)
//     segment.close() -> records held; segment.held_bytes()                  (the writer, taking it)
//     segment.encode(first_seq) -> (lines, steps, times, epochs, keys, kinds, exact, floats, integers, places,
//                                   counts)
//     segment.records(first_seq) -> [record dicts]                           (the Python path, a backlog)
//     segment.add_records(records) -> taken; segment.columns() -> encode's, without the lines (an index)
//     segment.add_lines(body) -> (taken, end, first_seq, last_seq); segment.seqs(); segment.records()
//                                                                        (a server reading what a client sent)
//     scan_lines(text, limit) -> (end, lines, empty)                     (a shipper cutting a file's lines)
//
// Why: a run's queue held a tuple and a dict per call, which the writer thread read back on another core under
// the interpreter lock the training loop needs: cache misses on every object, then a dict per record and its
// encoding, all while the loop waited for the lock. A segment reads the numbers at the call, while they are in the
// caller's cache, into flat arrays (the caller's dict is not kept, nor copied); the writer formats them without
// the lock and without touching a Python object.
//
// add takes a record only when every value is a float, a bool or a 64-bit int, every key is text UTF-8 can hold
// (not empty), the time a finite float, the step a 64-bit int and the epoch None, a float or a 64-bit int:
// NOT_PLAIN otherwise, and the caller takes its Python path (which coerces, warns, or writes what this does not).
// CLOSED: the writer took the segment, or it holds `limit` records; the caller starts another.
//
// The lines are those of stepline.events.encode (docs/format.md): keys in the call's order, NaN and the
// infinities by name, floats as the shortest text that reads back the same double, in orjson's layout.
// steps, times, epochs: n int64 / float64 / float64 (a record without an epoch: columns.NO_EPOCH's bits).
// keys: the keys logged, in the order first logged; kinds and exact say how the index keeps each (see
// fill_columns); floats and integers hold each key's values as float64 and as int64 (integers None when every
// key is a float column), a key's values after another's. With the same keys in every record (most segments),
// each key has n values and places and counts are None; otherwise places (uint32) gives each value's record and
// counts how many values each key has. Where the keys differ, the index was built from records in Python, a
// third as fast: a run that logs eval metrics every 100 steps drained at 1.1 M points/s against 3.3 M.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "index_columns.hpp"
#include "json_lines.hpp"
#include "json_text.hpp"
#include "segment_store.hpp"

namespace {

using json_text::BOOL;
using json_text::FLOAT;
using json_text::INT;
using json_text::MAX_NUMBER;
using json_text::NONE;
using json_text::Number;
using json_text::put;
using json_text::put_double;
using json_text::put_integer;
using json_text::put_key;
using json_text::put_number;
using index_columns::Columns;
using index_columns::fill_columns;
using segment_store::as_double;
using segment_store::give_back;
using segment_store::Key;
using segment_store::NO_EPOCH_BITS;
using segment_store::Record;
using segment_store::Store;
using segment_store::take_store;
using segment_store::Value;

enum Answer { TAKEN, CLOSED, NOT_PLAIN };

// Reads a metric value or an epoch; false for what this encoder leaves to Python.
bool read_number(PyObject* object, Number& number) {
    if (PyFloat_CheckExact(object)) {
        number.kind = FLOAT;
        number.real = PyFloat_AS_DOUBLE(object);
        return true;
    }
    if (PyBool_Check(object)) {
        number.kind = BOOL;
        number.integer = object == Py_True;
        return true;
    }
    if (PyLong_CheckExact(object)) {
        int overflow = 0;
        number.integer = PyLong_AsLongLongAndOverflow(object, &overflow);
        if (overflow || (number.integer == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return false;  // past int64 (up to uint64 is valid): Python's path writes it
        }
        number.kind = INT;
        return true;
    }
    return false;
}

struct Segment {
    PyObject_HEAD
    Store* store;
    std::vector<Record>* records;  // the store's, named for short
    std::vector<Value>* values;
    std::vector<Key>* keys;
    std::unordered_map<std::string_view, int>* key_ids;
    Py_ssize_t limit;
    // Values it takes from log calls before it closes: the queue counts a segment's memory once it is closed, so a
    // loop logging thousands of metrics a call must not fill one with 2,000 of them.
    Py_ssize_t value_limit;
    Py_ssize_t bound;  // the most bytes the lines can take
    bool closed;
    PyObject* source;  // the body add_lines read, which its keys point into
};

constexpr Py_ssize_t RECORD_BOUND = 64 + 3 * MAX_NUMBER + 24;  // the fixed text, seq, time, step, epoch

// A key the segment holds: text that is not empty and that UTF-8 can hold (a lone surrogate cannot: the Python
// path escapes it and says so). Its UTF-8, or null.
const char* key_text(PyObject* key, Py_ssize_t& size) {
    if (!PyUnicode_CheckExact(key) || PyUnicode_GET_LENGTH(key) == 0) return nullptr;
    const char* utf8 = PyUnicode_AsUTF8AndSize(key, &size);
    if (utf8 == nullptr) PyErr_Clear();
    return utf8;
}

// The key's number in the segment: the previous record's key at this place (values[previous], -1 for none) when
// it is the same object (a training loop's keys are), else found by its text, else added; false for a key the
// segment does not hold.
bool key_id(Segment* self, PyObject* key, Py_ssize_t previous, int& id) {
    if (previous >= 0) {
        const int candidate = (*self->values)[previous].key;
        if ((*self->keys)[candidate].text == key) {
            id = candidate;
            return true;
        }
    }
    Py_ssize_t size;
    const char* utf8 = key_text(key, size);
    if (utf8 == nullptr) return false;
    auto found = self->key_ids->find(std::string_view(utf8, size));
    if (found != self->key_ids->end()) {
        id = found->second;
        return true;
    }
    id = static_cast<int>(self->keys->size());
    Py_INCREF(key);
    self->keys->push_back(Key{key, utf8, size});
    self->key_ids->emplace(std::string_view(utf8, size), id);
    return true;
}

// Whether add would take the call, for a segment that takes no more: a call that is not plain must not make the
// caller open a segment it will not use.
// Reads a call's time, step and epoch, and checks its values are a dict that is not empty; false for a call the
// segment does not hold (add_call checks the values themselves).
bool read_head(PyObject* time, PyObject* step, PyObject* epoch, PyObject* dict, Record& record) {
    if (!PyFloat_CheckExact(time) || !std::isfinite(record.time = PyFloat_AS_DOUBLE(time)) ||
        !PyLong_CheckExact(step) || !PyDict_CheckExact(dict) || PyDict_GET_SIZE(dict) == 0)
        return false;
    int overflow = 0;
    record.step = PyLong_AsLongLongAndOverflow(step, &overflow);
    if (overflow || (record.step == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return false;
    }
    record.epoch.kind = NONE;
    if (epoch == Py_None) return true;
    // a bool: the Python path makes it the number it stands for (an epoch is a number wherever it goes)
    return read_number(epoch, record.epoch) && record.epoch.kind != BOOL;
}

bool plain(PyObject* time, PyObject* step, PyObject* epoch, PyObject* dict) {
    Record record;
    Number number;
    if (!read_head(time, step, epoch, dict, record)) return false;
    Py_ssize_t position = 0, size;
    PyObject *key, *value;
    while (PyDict_Next(dict, &position, &key, &value)) {
        if (!read_number(value, number) || key_text(key, size) == nullptr) return false;
    }
    return true;
}

// Takes one call into the segment (open, with room); NOT_PLAIN, and nothing taken, for a call it does not hold.
Answer add_call(Segment* self, PyObject* time, PyObject* step, PyObject* epoch, PyObject* dict) {
    Record record;
    if (!read_head(time, step, epoch, dict, record)) return NOT_PLAIN;
    auto& values = *self->values;
    record.first_value = static_cast<Py_ssize_t>(values.size());
    // the previous record's values, to match keys by place
    const Py_ssize_t previous = self->records->empty() ? 0 : self->records->back().first_value;
    const Py_ssize_t previous_end = record.first_value;
    Py_ssize_t position = 0, place = 0, bound = RECORD_BOUND;
    PyObject *key, *value;
    while (PyDict_Next(dict, &position, &key, &value)) {
        Value entry;
        const Py_ssize_t same_place = previous + place < previous_end ? previous + place : -1;
        if (!read_number(value, entry.number) || !key_id(self, key, same_place, entry.key)) {
            values.resize(record.first_value);  // none of the call's values: the Python path takes them all
            return NOT_PLAIN;
        }
        bound += 6 * (*self->keys)[entry.key].size + 4 + MAX_NUMBER;
        values.push_back(entry);
        ++place;
    }
    self->records->push_back(record);
    self->bound += bound;
    return TAKEN;
}

bool taking(const Segment* self) {
    return !self->closed && static_cast<Py_ssize_t>(self->records->size()) < self->limit;
}

PyObject* segment_add(Segment* self, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "add(time, step, epoch, values) takes 4 arguments");
        return nullptr;
    }
    if (static_cast<Py_ssize_t>(self->values->size()) >= self->value_limit) self->closed = true;
    if (!taking(self)) return PyLong_FromLong(plain(args[0], args[1], args[2], args[3]) ? CLOSED : NOT_PLAIN);
    return PyLong_FromLong(add_call(self, args[0], args[1], args[2], args[3]));
}

template <typename T>
PyObject* bytes_of(const std::vector<T>& array) {
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(array.data()),
                                     static_cast<Py_ssize_t>(array.size() * sizeof(T)));
}

PyObject *TIME, *STEP, *EPOCH, *VALUES;  // the record fields' names, made once

// Records as the logbook holds them, parsed ({"type": "metrics", "seq", "time", "step", ["epoch",] "values"}),
// taken from the first while each is plain: how many were (a server indexing what a client sent).
PyObject* segment_add_records(Segment* self, PyObject* list) {
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "add_records takes a list of records");
        return nullptr;
    }
    const Py_ssize_t n = PyList_GET_SIZE(list);
    Py_ssize_t taken = 0;
    for (; taken < n && taking(self); ++taken) {
        PyObject* record = PyList_GET_ITEM(list, taken);
        if (!PyDict_CheckExact(record)) break;
        PyObject* time = PyDict_GetItemWithError(record, TIME);
        PyObject* step = time ? PyDict_GetItemWithError(record, STEP) : nullptr;
        PyObject* values = step ? PyDict_GetItemWithError(record, VALUES) : nullptr;
        PyObject* epoch = values ? PyDict_GetItemWithError(record, EPOCH) : nullptr;
        if (PyErr_Occurred()) return nullptr;
        if (values == nullptr || add_call(self, time, step, epoch ? epoch : Py_None, values) != TAKEN) break;
    }
    return PyLong_FromSsize_t(taken);
}

// The key's number in the segment, for a key read from a line: the previous record's key at this place
// (values[previous], -1 for none) when it is the same text, else found, else added, pointing into the body (its
// text is made once the lock is held again).
int line_key_id(Segment* self, std::string_view key, Py_ssize_t previous) {
    if (previous >= 0) {
        const int candidate = (*self->values)[previous].key;
        const Key& known = (*self->keys)[candidate];
        if (std::string_view(known.utf8, known.size) == key) return candidate;
    }
    auto found = self->key_ids->find(key);
    if (found != self->key_ids->end()) return found->second;
    const int id = static_cast<int>(self->keys->size());
    self->keys->push_back(Key{nullptr, key.data(), static_cast<Py_ssize_t>(key.size())});
    self->key_ids->emplace(key, id);
    return id;
}

// Takes lines from p while each is a metrics record in stepline's layout whose seq is past the line before's, up
// to the segment's limit; where the first line not taken starts. Runs without the interpreter lock.
const char* read_lines(Segment* self, const char* p, const char* end) {
    auto& records = *self->records;
    auto& values = *self->values;
    auto& seqs = self->store->seqs;
    std::vector<Py_ssize_t> named_by;  // per key, the last record that named it: a key named twice is refused
    json_lines::Head head;
    while (p < end && static_cast<Py_ssize_t>(records.size()) < self->limit) {
        const Py_ssize_t number = static_cast<Py_ssize_t>(records.size());
        const Py_ssize_t first_value = static_cast<Py_ssize_t>(values.size());
        const Py_ssize_t previous = records.empty() ? 0 : records.back().first_value;
        auto take = [&](std::string_view key, const Number& value) {
            const Py_ssize_t place = static_cast<Py_ssize_t>(values.size()) - first_value;
            const int id = line_key_id(self, key, previous + place < first_value ? previous + place : -1);
            if (static_cast<size_t>(id) >= named_by.size()) named_by.resize(id + 1, -1);
            if (named_by[id] == number) return false;
            named_by[id] = number;
            values.push_back(Value{id, value});
            return true;
        };
        const char* next = json_lines::read_line(p, end, head, take);
        if (next == nullptr || head.seq < 1 || (!seqs.empty() && head.seq <= seqs.back())) {
            values.resize(first_value);
            break;
        }
        records.push_back(Record{head.time, head.step, head.epoch, first_value});
        seqs.push_back(head.seq);
        p = next;
    }
    return p;
}

PyObject* segment_add_lines(Segment* self, PyObject* body) {
    if (!PyBytes_CheckExact(body)) {
        PyErr_SetString(PyExc_TypeError, "add_lines takes bytes");
        return nullptr;
    }
    if (!self->records->empty() || self->source != nullptr) {
        PyErr_SetString(PyExc_ValueError, "add_lines reads into an empty segment");
        return nullptr;
    }
    self->source = Py_NewRef(body);  // the keys point into it
    const char* text = PyBytes_AS_STRING(body);
    const char* end = text + PyBytes_GET_SIZE(body);
    const char* next;
    Py_BEGIN_ALLOW_THREADS  // body is immutable, and the segment is the caller's alone until it returns
    next = read_lines(self, text, end);
    Py_END_ALLOW_THREADS
    self->closed = true;
    for (Key& key : *self->keys) {
        if (key.text == nullptr && (key.text = PyUnicode_DecodeUTF8(key.utf8, key.size, "strict")) == nullptr)
            return nullptr;
    }
    const auto& seqs = self->store->seqs;
    return Py_BuildValue("(nnLL)", static_cast<Py_ssize_t>(seqs.size()), static_cast<Py_ssize_t>(next - text),
                         seqs.empty() ? 0LL : seqs.front(), seqs.empty() ? 0LL : seqs.back());
}

PyObject* segment_seqs(Segment* self, PyObject*) {
    return bytes_of(self->store->seqs);
}

char* write_lines(char* out, const Segment* self, long long first_seq) {
    const auto& records = *self->records;
    const auto& values = *self->values;
    const auto& keys = *self->keys;
    const Py_ssize_t n = static_cast<Py_ssize_t>(records.size());
    for (Py_ssize_t i = 0; i < n; ++i) {
        const Record& record = records[i];
        const Py_ssize_t end = i + 1 < n ? records[i + 1].first_value : static_cast<Py_ssize_t>(values.size());
        out = put(out, "{\"type\":\"metrics\",\"seq\":");
        out = put_integer(out, first_seq + i);
        out = put(out, ",\"time\":");
        out = put_double(out, record.time);
        out = put(out, ",\"step\":");
        out = put_integer(out, record.step);
        if (record.epoch.kind != NONE) {
            out = put(out, ",\"epoch\":");
            out = put_number(out, record.epoch);
        }
        out = put(out, ",\"values\":{");
        for (Py_ssize_t v = record.first_value; v < end; ++v) {
            if (v != record.first_value) *out++ = ',';
            const Key& key = keys[values[v].key];
            out = put_key(out, key.utf8, key.size);
            out = put_number(out, values[v].number);
        }
        out = put(out, "}}\n");
    }
    return out;
}

PyObject* number_object(const Number& number) {
    switch (number.kind) {
        case FLOAT: return PyFloat_FromDouble(number.real);
        case INT: return PyLong_FromLongLong(number.integer);
        case BOOL: return PyBool_FromLong(static_cast<long>(number.integer));
        case NONE: break;
    }
    Py_RETURN_NONE;
}

// The keys logged, with each one's kind and exactness (see fill_columns): (keys, kinds, exact).
PyObject* key_columns(const Segment* self, const Columns& columns) {
    const Py_ssize_t width = static_cast<Py_ssize_t>(columns.keys.size());
    PyObject* keys = PyTuple_New(width);
    PyObject* kinds = PyTuple_New(width);
    PyObject* exact = PyTuple_New(width);
    if (keys == nullptr || kinds == nullptr || exact == nullptr) {
        Py_XDECREF(keys);
        Py_XDECREF(kinds);
        Py_XDECREF(exact);
        return nullptr;
    }
    for (Py_ssize_t j = 0; j < width; ++j) {
        PyTuple_SET_ITEM(keys, j, Py_NewRef((*self->keys)[columns.keys[j]].text));
        PyTuple_SET_ITEM(exact, j, Py_NewRef(columns.exact[j] ? Py_True : Py_False));
        PyObject* kind = PyUnicode_InternFromString(columns.kinds[j]);
        if (kind == nullptr) {
            Py_DECREF(keys);
            Py_DECREF(kinds);
            Py_DECREF(exact);
            return nullptr;
        }
        PyTuple_SET_ITEM(kinds, j, kind);
    }
    return Py_BuildValue("(NNN)", keys, kinds, exact);
}

PyObject* counts_of(const Columns& columns) {
    PyObject* counts = PyTuple_New(static_cast<Py_ssize_t>(columns.counts.size()));
    for (size_t k = 0; counts != nullptr && k < columns.counts.size(); ++k) {
        PyObject* count = PyLong_FromSsize_t(columns.counts[k]);
        if (count == nullptr) Py_CLEAR(counts);
        else PyTuple_SET_ITEM(counts, static_cast<Py_ssize_t>(k), count);
    }
    return counts;
}

constexpr Py_ssize_t COLUMN_PARTS = 10;

// The answer of encode (with lines) and columns (without): (lines, steps, times, epochs, keys, kinds, exact,
// floats, integers, places, counts), lines left out when null.
PyObject* answer_of(const Segment* self, PyObject* lines, const Columns& columns) {
    bool all_floats = true;
    for (const char* kind : columns.kinds) all_floats &= kind[0] == 'f';
    const bool grouped = !columns.counts.empty();
    PyObject* parts[COLUMN_PARTS] = {
        bytes_of(columns.steps), bytes_of(columns.times), bytes_of(columns.epochs), nullptr, nullptr, nullptr,
        bytes_of(columns.floats), all_floats ? Py_NewRef(Py_None) : bytes_of(columns.integers),
        grouped ? bytes_of(columns.places) : Py_NewRef(Py_None), grouped ? counts_of(columns) : Py_NewRef(Py_None)};
    PyObject* keyed = key_columns(self, columns);
    if (keyed != nullptr) {
        for (Py_ssize_t i = 0; i < 3; ++i) parts[3 + i] = Py_NewRef(PyTuple_GET_ITEM(keyed, i));
        Py_DECREF(keyed);
    }
    const Py_ssize_t first = lines ? 1 : 0;
    PyObject* answer = PyTuple_New(first + COLUMN_PARTS);
    for (PyObject* part : parts) {
        if (part == nullptr) Py_CLEAR(answer);
    }
    if (answer == nullptr) {
        for (PyObject* part : parts) Py_XDECREF(part);
        Py_XDECREF(lines);
        return nullptr;
    }
    if (lines) PyTuple_SET_ITEM(answer, 0, lines);
    for (Py_ssize_t i = 0; i < COLUMN_PARTS; ++i) PyTuple_SET_ITEM(answer, first + i, parts[i]);
    return answer;
}

PyObject* segment_encode(Segment* self, PyObject* arg) {
    if (self->source != nullptr) {
        PyErr_SetString(PyExc_TypeError, "encode numbers a segment of calls; the lines read are the body's");
        return nullptr;
    }
    const long long first_seq = PyLong_AsLongLong(arg);
    if (first_seq == -1 && PyErr_Occurred()) return nullptr;
    self->closed = true;  // nothing is added to what is being written
    PyObject* lines = PyBytes_FromStringAndSize(nullptr, self->bound);
    if (lines == nullptr) return nullptr;
    char* start = PyBytes_AS_STRING(lines);
    char* end;
    Columns columns;
    Py_BEGIN_ALLOW_THREADS  // the segment is closed: nothing changes it while the lock is let go
    end = write_lines(start, self, first_seq);
    fill_columns(*self->store, columns);
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&lines, end - start) < 0) return nullptr;
    return answer_of(self, lines, columns);
}

PyObject* segment_columns(Segment* self, PyObject*) {
    self->closed = true;
    Columns columns;
    Py_BEGIN_ALLOW_THREADS
    fill_columns(*self->store, columns);
    Py_END_ALLOW_THREADS
    return answer_of(self, nullptr, columns);
}

// One record as the Python path writes it: {"type", "seq", "time", "step", ["epoch",] "values"}.
PyObject* record_object(const Segment* self, Py_ssize_t i, long long seq, PyObject* metrics) {
    const Record& record = (*self->records)[i];
    const auto& values = *self->values;
    const Py_ssize_t end = i + 1 < static_cast<Py_ssize_t>(self->records->size())
                               ? (*self->records)[i + 1].first_value
                               : static_cast<Py_ssize_t>(values.size());
    PyObject* dict = PyDict_New();
    if (dict == nullptr) return nullptr;
    for (Py_ssize_t v = record.first_value; v < end; ++v) {
        PyObject* number = number_object(values[v].number);
        if (number == nullptr || PyDict_SetItem(dict, (*self->keys)[values[v].key].text, number) < 0) {
            Py_XDECREF(number);
            Py_DECREF(dict);
            return nullptr;
        }
        Py_DECREF(number);
    }
    if (record.epoch.kind == NONE)
        return Py_BuildValue("{s:O,s:L,s:d,s:L,s:N}", "type", metrics, "seq", seq, "time", record.time, "step",
                             record.step, "values", dict);
    return Py_BuildValue("{s:O,s:L,s:d,s:L,s:N,s:N}", "type", metrics, "seq", seq, "time", record.time, "step",
                         record.step, "epoch", number_object(record.epoch), "values", dict);
}

// records(first_seq): numbered from first_seq; records(): a segment of read lines, with their seqs.
PyObject* segment_records(Segment* self, PyObject* const* args, Py_ssize_t nargs) {
    const auto& seqs = self->store->seqs;
    long long first_seq = 0;
    if (nargs > 1 || (nargs == 0) != (self->source != nullptr)) {
        PyErr_SetString(PyExc_TypeError, "records(first_seq) numbers a segment of calls; records() one of lines");
        return nullptr;
    }
    if (nargs == 1 && (first_seq = PyLong_AsLongLong(args[0])) == -1 && PyErr_Occurred()) return nullptr;
    self->closed = true;
    const Py_ssize_t n = static_cast<Py_ssize_t>(self->records->size());
    PyObject* metrics = PyUnicode_InternFromString("metrics");
    PyObject* list = metrics ? PyList_New(n) : nullptr;
    for (Py_ssize_t i = 0; list != nullptr && i < n; ++i) {
        PyObject* record = record_object(self, i, nargs ? first_seq + i : seqs[i], metrics);
        if (record == nullptr) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, record);
    }
    Py_XDECREF(metrics);
    return list;
}

PyObject* segment_close(Segment* self, PyObject*) {
    self->closed = true;
    return PyLong_FromSsize_t(static_cast<Py_ssize_t>(self->records->size()));
}

PyObject* segment_held_bytes(Segment* self, PyObject*) {
    return PyLong_FromSize_t(self->records->size() * sizeof(Record) + self->values->size() * sizeof(Value));
}

Py_ssize_t segment_length(Segment* self) {
    return static_cast<Py_ssize_t>(self->records->size());
}

PyObject* segment_new(PyTypeObject* type, PyObject* args, PyObject*) {
    Py_ssize_t limit, value_limit = PY_SSIZE_T_MAX;
    if (!PyArg_ParseTuple(args, "n|n:Segment", &limit, &value_limit)) return nullptr;
    Segment* self = reinterpret_cast<Segment*>(type->tp_alloc(type, 0));
    if (self == nullptr) return nullptr;
    self->store = take_store();
    if (self->store == nullptr) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->records = &self->store->records;
    self->values = &self->store->values;
    self->keys = &self->store->keys;
    self->key_ids = &self->store->key_ids;
    self->limit = limit;
    self->value_limit = value_limit;
    self->bound = 0;
    self->closed = false;
    self->source = nullptr;
    return reinterpret_cast<PyObject*>(self);
}

void segment_dealloc(Segment* self) {
    if (self->store != nullptr) {
        for (const Key& key : self->store->keys) Py_XDECREF(key.text);
        give_back(self->store);
    }
    Py_XDECREF(self->source);
    Py_TYPE(self)->tp_free(reinterpret_cast<PyObject*>(self));
}

PyMethodDef segment_methods[] = {
    {"add", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(segment_add)), METH_FASTCALL,
     "add(time, step, epoch, values) -> TAKEN | CLOSED | NOT_PLAIN: one log call, read now"},
    {"held_bytes", reinterpret_cast<PyCFunction>(segment_held_bytes), METH_NOARGS,
     "held_bytes() -> int: the memory its records and values take (what the queue's byte bound counts)"},
    {"close", reinterpret_cast<PyCFunction>(segment_close), METH_NOARGS,
     "close() -> the records held; nothing is added after it"},
    {"encode", reinterpret_cast<PyCFunction>(segment_encode), METH_O,
     "encode(first_seq) -> (lines, steps, times, epochs, keys, kinds, exact, floats, integers, places, counts)"},
    {"add_records", reinterpret_cast<PyCFunction>(segment_add_records), METH_O,
     "add_records(records) -> how many of the parsed metrics records were taken, from the first"},
    {"columns", reinterpret_cast<PyCFunction>(segment_columns), METH_NOARGS,
     "columns() -> (steps, times, epochs, keys, kinds, exact, floats, integers, places, counts): encode's, "
     "without the lines"},
    {"records", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(segment_records)), METH_FASTCALL,
     "records(first_seq) -> the records as dicts, as the Python path writes them; records() for read lines"},
    {"add_lines", reinterpret_cast<PyCFunction>(segment_add_lines), METH_O,
     "add_lines(body) -> (taken, end, first_seq, last_seq): metrics lines in stepline's layout, from the first"},
    {"seqs", reinterpret_cast<PyCFunction>(segment_seqs), METH_NOARGS,
     "seqs() -> the seqs of the lines read, int64 bytes"},
    {nullptr, nullptr, 0, nullptr},
};

// Of the first `limit` lines of text that end with a newline: where the last of them ends (past its newline), how
// many there are, and whether one is empty. One memchr a line, without the interpreter lock: a shipper's scans of
// each 4 MB batch in Python (counting, cutting, looking for an empty line) held the lock the training loop needs
// for 5 ms.
PyObject* scan_lines(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "scan_lines(text: bytes, limit: int)");
        return nullptr;
    }
    const Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred()) return nullptr;
    const char* start = PyBytes_AS_STRING(args[0]);
    const char* end = start + PyBytes_GET_SIZE(args[0]);
    const char* next = start;
    Py_ssize_t lines = 0;
    bool empty = false;
    Py_BEGIN_ALLOW_THREADS
    for (; lines < limit; ++lines) {
        const char* newline = static_cast<const char*>(std::memchr(next, '\n', end - next));
        if (newline == nullptr) break;
        empty |= newline == next;
        next = newline + 1;
    }
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(nnO)", static_cast<Py_ssize_t>(next - start), lines, empty ? Py_True : Py_False);
}

PyMethodDef module_functions[] = {
    {"scan_lines", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(scan_lines)), METH_FASTCALL,
     "scan_lines(text, limit) -> (end, lines, empty): of text's first limit whole lines"},
    {nullptr, nullptr, 0, nullptr},
};

PySequenceMethods segment_sequence = {reinterpret_cast<lenfunc>(segment_length)};

PyTypeObject SegmentType = {PyVarObject_HEAD_INIT(nullptr, 0) "stepline.metrics_segment.Segment"};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "stepline.metrics_segment",
                      "Plain metrics calls read at the call and encoded in a batch off the interpreter lock.", -1,
                      module_functions};

}  // namespace

PyMODINIT_FUNC PyInit_metrics_segment() {
    SegmentType.tp_basicsize = sizeof(Segment);
    SegmentType.tp_flags = Py_TPFLAGS_DEFAULT;
    SegmentType.tp_doc = "Segment(limit): up to limit plain metrics calls, read at the call";
    SegmentType.tp_new = segment_new;
    SegmentType.tp_dealloc = reinterpret_cast<destructor>(segment_dealloc);
    SegmentType.tp_methods = segment_methods;
    SegmentType.tp_as_sequence = &segment_sequence;
    if (PyType_Ready(&SegmentType) < 0) return nullptr;
    TIME = PyUnicode_InternFromString("time");
    STEP = PyUnicode_InternFromString("step");
    EPOCH = PyUnicode_InternFromString("epoch");
    VALUES = PyUnicode_InternFromString("values");
    if (!TIME || !STEP || !EPOCH || !VALUES) return nullptr;
    PyObject* m = PyModule_Create(&module);
    if (m == nullptr) return nullptr;
    if (PyModule_AddObjectRef(m, "Segment", reinterpret_cast<PyObject*>(&SegmentType)) < 0 ||
        PyModule_AddIntConstant(m, "TAKEN", TAKEN) < 0 || PyModule_AddIntConstant(m, "CLOSED", CLOSED) < 0 ||
        PyModule_AddIntConstant(m, "NOT_PLAIN", NOT_PLAIN) < 0) {
        Py_DECREF(m);
        return nullptr;
    }
    return m;
}
